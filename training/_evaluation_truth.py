"""What ``truth.csv`` says of each patient beyond the NCCN label (``pancreas-node evaluate``).

The evaluation reads the truth table itself, so that it accepts cohorts with and without the
columns the wide and held-out generators add (``has_tumor``, ``tumor_attenuation``,
``tumor_shape``, ``contrast_phase``, ``variant``, ``generator``):

- ``has_tumor``: ``1``/``0``; absent (or empty): every patient has a tumor, as in the first
  phantom cohorts.
- ``nccn_label``: ``0``, ``1``, ``2``; EMPTY for a tumor-free patient (``None`` here), who is
  then left out of the NCCN metrics and counted for "category given to a tumor-free patient".
- ``contact_<vessel>`` (the vessels of :data:`pancreas_contracts.result.KEY_VESSELS`): the true
  tumor-vessel contact angle in degrees; empty: unknown (not scored).
- ``generator``: which phantom generator made the patient; absent: ``phantom`` (the project's
  standard generator).

No torch here.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pancreas_contracts.result import KEY_VESSELS

__all__ = ["DEFAULT_GENERATOR", "PatientTruth", "cohort_generator", "read_truth"]

#: The generator of a cohort whose ``truth.csv`` has no ``generator`` column.
DEFAULT_GENERATOR = "phantom"


@dataclass(frozen=True)
class PatientTruth:
    """One ``truth.csv`` row, as the evaluation scores it.

    Attributes
    ----------
    patient_id
        The patient's folder name.
    has_tumor
        Whether the patient has a tumor.
    nccn_label
        0 resectable, 1 borderline, 2 locally advanced; ``None`` without a tumor, or with
        one whose category is unknown (an imported cohort's empty ``nccn_label``): such a
        patient is left out of the NCCN metrics.
    contact_deg
        True contact angle per key vessel (degrees); only vessels with a value.
    generator
        The generator that made the patient.
    """

    patient_id: str
    has_tumor: bool
    nccn_label: int | None
    contact_deg: Mapping[str, float] = field(default_factory=dict)
    generator: str = DEFAULT_GENERATOR

    def __post_init__(self) -> None:
        if self.nccn_label is not None and self.nccn_label not in (0, 1, 2):
            raise ValueError(f"patient {self.patient_id}: nccn_label must be 0, 1 or 2")
        if not self.has_tumor and self.nccn_label is not None:
            raise ValueError(f"patient {self.patient_id}: a tumor-free patient has no label")
        if any(not 0.0 <= v <= 360.0 for v in self.contact_deg.values()):
            raise ValueError(f"patient {self.patient_id}: contact angles must be 0-360 degrees")


def _cell(row: Mapping[str, str | None], name: str) -> str:
    return (row.get(name) or "").strip()


def _has_tumor(row: Mapping[str, str | None], pid: str) -> bool:
    value = _cell(row, "has_tumor")
    if value in ("", "1", "true", "True"):
        return True
    if value in ("0", "false", "False"):
        return False
    raise ValueError(f"truth.csv: has_tumor of {pid} must be 1 or 0, got {value!r}")


def _float(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"truth.csv: {what} is not a number: {value!r}") from exc


def _row_truth(row: Mapping[str, str | None]) -> PatientTruth:
    pid = _cell(row, "patient_id")
    has_tumor = _has_tumor(row, pid)
    label_cell = _cell(row, "nccn_label")
    label = None if not label_cell else int(_float(label_cell, f"nccn_label of {pid}"))
    contact = {
        v: _float(_cell(row, f"contact_{v}"), f"contact_{v} of {pid}")
        for v in KEY_VESSELS
        if _cell(row, f"contact_{v}")
    }
    generator = _cell(row, "generator") or DEFAULT_GENERATOR
    return PatientTruth(pid, has_tumor, label, contact, generator)


def read_truth(data_dir: Path) -> dict[str, PatientTruth]:
    """``data_dir/truth.csv`` by patient id.

    Raises
    ------
    ValueError
        On a missing table, a duplicate patient or an invalid cell.
    OSError
        If the table cannot be read.
    """
    path = data_dir / "truth.csv"
    if not path.is_file():
        raise ValueError(f"missing truth.csv in {data_dir}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out: dict[str, PatientTruth] = {}
    for row in rows:
        truth = _row_truth(row)
        if truth.patient_id in out:
            raise ValueError(f"truth.csv: patient {truth.patient_id} appears twice")
        out[truth.patient_id] = truth
    return out


def cohort_generator(truths: Sequence[PatientTruth]) -> str:
    """The cohort's generator(s): one name, or the distinct names joined by ``+``."""
    names = sorted({t.generator for t in truths})
    return "+".join(names) if names else DEFAULT_GENERATOR
