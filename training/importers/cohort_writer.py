"""Write imported cases as a training cohort (the layout :mod:`training.dataset` reads).

::

    DIR/<patient_id>/image.nii.gz   CT in HU (int16 where the values are whole, else float32)
    DIR/<patient_id>/label.nii.gz   uint8 label map, the values of pancreas_contracts.labels,
                                    on the image's grid
    DIR/truth.csv                   patient_id, nccn_label, has_tumor, labelled, import_source
    DIR/clinical.csv                patient_id + the 17 clinical variables (empty = unknown)
    DIR/import.json                 provenance

``labelled`` is the contract with the trainer: the project label names (no background) the
case's label map annotates, joined by ``;``. A structure missing from it is *not labelled*
(unknown), not background. ``has_tumor`` is ``1`` / ``0`` where ``tumor`` is labelled (voxels
or none), empty where it is not. ``nccn_label`` is empty unless a clinical CSV gives it.

Nothing here writes a DICOM patient identifier: cases carry only their case id.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inference.volume import Volume, write_nifti
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from pancreas_contracts.labels import LABELS, label_by_name
from training._cohort_files import require_empty_folder, tool_version
from training.importers.mapping import LabelMapping

__all__ = [
    "CASE_ID_PATTERN",
    "TRUTH_COLUMNS",
    "ClinicalLookup",
    "ImportSummary",
    "ImportedCase",
    "labelled_names",
    "read_clinical_csv",
    "redact_identifiers",
    "write_cohort",
]

TRUTH_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "nccn_label",
    "has_tumor",
    "labelled",
    "import_source",
)
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A case id: a safe folder name (letters, digits, ``.``, ``_``, ``-``; at most 64)."""

_ORDER = {label.name: label.value for label in LABELS}
_VARIABLES = tuple(spec.name for spec in CLINICAL_VARIABLES)


def labelled_names(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` without background, deduplicated, in label-value order."""
    unique = {name for name in names if name != "background"}
    for name in unique:
        label_by_name(name)  # raises on an unknown name
    return tuple(sorted(unique, key=_ORDER.__getitem__))


@dataclass(frozen=True, eq=False)
class ImportedCase:
    """One case converted to the project's labels, in memory.

    Attributes
    ----------
    case_id
        The cohort's ``patient_id`` (never a DICOM patient identifier).
    image
        The CT in HU.
    label
        uint8 label map on ``image``'s grid (values of :data:`pancreas_contracts.labels.LABELS`).
    labelled
        Project label names the source annotates for this case (see the module docstring).
    registry_key
        The key a clinical registry knows the patient by (the DICOM PatientID for DICOM
        sources, else the case id); used for the look-up only, never written.
    study_date
        The CT's StudyDate, if known (for a registry look-up's time rules).
    identifiers
        The DICOM patient name, id and birth date (memory only): a source folder name that
        holds one is redacted in ``import.json``.
    """

    case_id: str
    image: Volume
    label: Volume
    labelled: tuple[str, ...]
    registry_key: str = field(default="", repr=False)
    study_date: str = ""
    identifiers: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        if not CASE_ID_PATTERN.match(self.case_id):
            raise ValueError(f"case id {self.case_id!r} is not a safe folder name")
        if self.image.shape != self.label.shape or not np.allclose(
            self.image.affine, self.label.affine, atol=1e-3
        ):
            raise ValueError(f"case {self.case_id}: label and image grids differ")
        if self.label.array.dtype != np.uint8:
            raise ValueError(f"case {self.case_id}: label map must be uint8")
        object.__setattr__(self, "labelled", labelled_names(self.labelled))

    def has_tumor(self) -> str:
        """``1``/``0`` where the tumor is labelled, ``""`` where it is not."""
        if "tumor" not in self.labelled:
            return ""
        return "1" if bool(np.any(self.label.array == _ORDER["tumor"])) else "0"


ClinicalLookup = Callable[[ImportedCase], Mapping[str, str]]
"""Clinical values (the 17 variable names and optionally ``nccn_label``) for one case."""


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`write_cohort` wrote.

    Attributes
    ----------
    cases
        Case ids in the order written.
    labelled_counts
        Project label name -> number of cases that label it.
    tumor_cases
        Cases whose label map has tumor voxels.
    skipped
        Cases left out because the mapping maps none of their labels (an empty ``labelled``
        cell would read as "everything labelled").
    """

    cases: tuple[str, ...]
    labelled_counts: Mapping[str, int]
    tumor_cases: int
    skipped: tuple[str, ...] = ()


def read_clinical_csv(path: Path) -> dict[str, dict[str, str]]:
    """A clinical CSV: ``patient_id`` + any of the 17 variables (and ``nccn_label``).

    Other columns are ignored; values are kept as written (stripped), empty = unknown.

    Raises
    ------
    ValueError
        Without a ``patient_id`` column, without any known column, or with a repeated id.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if "patient_id" not in columns:
            raise ValueError(f"clinical CSV {path.name}: no patient_id column")
        known = [c for c in (*_VARIABLES, "nccn_label") if c in columns]
        if not known:
            raise ValueError(f"clinical CSV {path.name}: none of the 17 variables")
        rows: dict[str, dict[str, str]] = {}
        for row in reader:
            key = (row.get("patient_id") or "").strip()
            if not key:
                continue
            if key in rows:
                raise ValueError(f"clinical CSV {path.name}: patient_id {key!r} repeated")
            rows[key] = {c: (row.get(c) or "").strip() for c in known}
    return rows


def redact_identifiers(name: str, identifiers: Iterable[str]) -> str:
    """``name``, or a placeholder where it holds one of ``identifiers`` or a part of one."""
    lower = name.lower()
    for identifier in identifiers:
        parts = [identifier, *identifier.replace("^", " ").split()]
        if any(len(p) >= 3 and p.lower() in lower for p in parts):
            return "(redacted: the folder name holds a patient identifier)"
    return name


def _image_for_disk(image: Volume) -> Volume:
    array = np.asarray(image.array)
    if array.dtype == np.int16:
        return image
    finite = np.isfinite(array).all()
    if (
        finite
        and array.size
        and np.array_equal(array, np.round(array))
        and array.min() >= np.iinfo(np.int16).min
        and array.max() <= np.iinfo(np.int16).max
    ):
        return Volume(array.astype(np.int16), image.affine)
    return Volume(array.astype(np.float32), image.affine)


def write_cohort(
    out: Path,
    cases: Iterable[ImportedCase],
    *,
    import_source: str,
    source_name: str,
    mapping: LabelMapping,
    clinical: ClinicalLookup | None = None,
    on_case: Callable[[ImportedCase], None] | None = None,
) -> ImportSummary:
    """Write ``cases`` (read one at a time) as a cohort under ``out``.

    Parameters
    ----------
    out
        The cohort folder: created; must not exist or be empty.
    cases
        The imported cases (an iterator is consumed lazily, one case in memory at a time).
    import_source
        The source format (``msd``, ``dicom-seg``, ``rtstruct``, ``nifti``).
    source_name
        The source folder's name for ``import.json`` (the caller keeps patient names out).
    mapping
        The mapping used (its file name and SHA-256 go to ``import.json``).
    clinical
        Clinical values per case; cells it leaves out are empty.
    on_case
        Called after each case is written (progress).

    Returns
    -------
    ImportSummary

    A case whose ``labelled`` is empty (the mapping maps none of its labels) is skipped and
    listed in the summary and ``import.json``: the trainer reads an empty cell as "all
    labelled".

    Raises
    ------
    ValueError
        If ``out`` holds files, a case id repeats, or no case was imported.
    """
    require_empty_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    truth_rows: list[dict[str, str]] = []
    clinical_rows: list[dict[str, str]] = []
    per_case: list[dict[str, object]] = []
    counts: dict[str, int] = {label.name: 0 for label in LABELS if label.value != 0}
    tumor_cases = 0
    identifiers: set[str] = set()
    skipped: list[str] = []
    for case in cases:
        identifiers |= case.identifiers
        if not case.labelled:
            skipped.append(case.case_id)
            continue
        if any(row["patient_id"] == case.case_id for row in truth_rows):
            raise ValueError(f"case id {case.case_id!r} repeated")
        folder = out / case.case_id
        write_nifti(_image_for_disk(case.image), folder / "image.nii.gz")
        write_nifti(case.label, folder / "label.nii.gz")
        values = dict(clinical(case)) if clinical is not None else {}
        has_tumor = case.has_tumor()
        tumor_cases += has_tumor == "1"
        truth_rows.append(
            {
                "patient_id": case.case_id,
                "nccn_label": values.get("nccn_label", ""),
                "has_tumor": has_tumor,
                "labelled": ";".join(case.labelled),
                "import_source": import_source,
            }
        )
        clinical_rows.append(
            {"patient_id": case.case_id, **{n: values.get(n, "") for n in _VARIABLES}}
        )
        for name in case.labelled:
            counts[name] += 1
        per_case.append({"patient_id": case.case_id, "labelled": list(case.labelled)})
        if on_case is not None:
            on_case(case)
    if not truth_rows:
        raise ValueError(
            "no case was imported"
            + (f" ({len(skipped)} cases: the mapping maps none of their labels)" if skipped else "")
        )
    _write_csv(out / "truth.csv", TRUTH_COLUMNS, truth_rows)
    _write_csv(out / "clinical.csv", ("patient_id", *_VARIABLES), clinical_rows)
    provenance = {
        "format": import_source,
        "source": redact_identifiers(source_name, identifiers),
        "mapping": {
            "file": mapping.file_name,
            "sha256": mapping.sha256,
            "description": mapping.description,
        },
        "tool": "pancreas-node import",
        "tool_version": tool_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "labelled_counts": counts,
        "cases": per_case,
        "skipped_nothing_mapped": skipped,
    }
    (out / "import.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return ImportSummary(
        cases=tuple(row["patient_id"] for row in truth_rows),
        labelled_counts=counts,
        tumor_cases=tumor_cases,
        skipped=tuple(skipped),
    )


def _write_csv(path: Path, columns: Iterable[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
