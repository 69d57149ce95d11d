"""The survival cohort and its per-patient features.

A survival cohort is a training cohort (:func:`training.dataset.discover_cases`) whose
``truth.csv`` has the follow-up columns (:data:`pancreas_contracts.prognosis.FOLLOW_UP_COLUMNS`:
``os_months``, ``os_event``); tumor-free patients and patients without follow-up are left out
(the paper's cohort is PDAC with follow-up). Per patient, computed as the node computes them
at analysis (:class:`inference.tasks.survival.task.SurvivalModel`) but on the **truth** tumor
mask (the paper's ROIs are drawn by physicians):

* the 1,037 PyRadiomics features;
* the DenseNet's fixed physical cube (CT and tumor mask);
* the clinical row: sex, age and CA 19-9 from ``clinical.csv`` as the registry gives them
  (missing cells stay missing and are imputed from the training folds), T from the truth
  tumor's largest diameter and ``truth.csv``'s constructed arterial contact angles, N from
  ``truth.csv``'s ``n_status`` (the pathology a site's registry would hold; at analysis the
  lymph-node model's estimate), M0 (no phantom patient has distant metastases).

Arrays are cached as ``.npz`` under the run's ``cache/`` folder, named by patient, settings
and the source files' fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.parallel import ordered_map
from inference.tasks.resectability.measurements import max_diameter_mm
from inference.tasks.survival import (
    ARTERIES,
    RadiomicsConfig,
    RadiomicsExtractor,
    RoiConfig,
    clinical_row,
    t_stage,
    tumor_cube,
)
from inference.volume import Volume, read_nifti
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.prognosis import FOLLOW_UP_COLUMNS, StageInput
from training.dataset import CaseRecord, discover_cases, source_fingerprint

__all__ = [
    "NO_FOLLOW_UP",
    "CaseFeatures",
    "SurvivalCase",
    "discover_survival_cases",
    "load_features",
]

TUMOR_LABEL = label_by_name("tumor").value
NO_FOLLOW_UP = (
    "has no follow-up (truth.csv's os_months and os_event): generate it with "
    "`pancreas-node phantom --variation wide --follow-up` or `--generator holdout`"
)


@dataclass(frozen=True)
class SurvivalCase:
    """One PDAC patient with follow-up.

    Attributes
    ----------
    record
        The training case (image, label, clinical values).
    os_months, os_event
        Overall survival in months and whether death was observed.
    staging
        ``T``, ``N`` and ``M`` as the clinical model reads them at training.
    arterial_contact
        ``truth.csv``'s contact angles of the SMA, CA and CHA (for T4).
    hazard_lp
        The generator's linear predictor (``truth.csv`` ``hazard_lp``), the oracle's risk;
        ``None`` when the cohort does not say.
    """

    record: CaseRecord
    os_months: float
    os_event: bool
    staging: dict[str, StageInput]
    arterial_contact: dict[str, float | None]
    hazard_lp: float | None

    @property
    def patient_id(self) -> str:
        """The patient's folder name."""
        return self.record.patient_id


@dataclass(frozen=True, eq=False)
class CaseFeatures:
    """What the survival models read of one patient."""

    radiomics: dict[str, float]
    image: npt.NDArray[np.float32]
    mask: npt.NDArray[np.float32]
    clinical: npt.NDArray[np.float64]


def _float(cell: str | None) -> float | None:
    try:
        value = float(cell or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _n_stage(cell: str | None) -> StageInput:
    value = (cell or "").strip()
    if value not in ("0", "1"):
        return StageInput(value=None, source="missing")
    return StageInput(value="N+" if value == "1" else "N0", source="registry")


def discover_survival_cases(data_dir: Path) -> list[SurvivalCase]:
    """The PDAC patients of a cohort with follow-up.

    Raises
    ------
    ValueError
        If the cohort has no follow-up columns or no PDAC patient with follow-up.
    """
    with (data_dir / "truth.csv").open(newline="", encoding="utf-8") as handle:
        rows = {r["patient_id"]: r for r in csv.DictReader(handle)}
    if not rows or not set(FOLLOW_UP_COLUMNS) <= set(next(iter(rows.values()))):
        raise ValueError(f"cohort {data_dir} {NO_FOLLOW_UP}")
    cases = []
    for record in discover_cases(data_dir):
        row = rows[record.patient_id]
        months, event = _float(row.get("os_months")), (row.get("os_event") or "").strip()
        if not record.has_tumor or months is None or event not in ("0", "1"):
            continue
        staging = {"N": _n_stage(row.get("n_status")),
                   "M": StageInput(value="M0", source="registry")}  # fmt: skip
        contact = {v: _float(row.get(f"contact_{v}")) for v in ARTERIES}
        cases.append(SurvivalCase(record, months, event == "1", staging, contact,
                                  _float(row.get("hazard_lp"))))  # fmt: skip
    if not cases:
        raise ValueError(f"cohort {data_dir} has no PDAC patient with follow-up")
    return cases


def _settings_key(roi: RoiConfig, radiomics: RadiomicsConfig) -> str:
    text = json.dumps([roi.to_dict(), radiomics.to_dict()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _compute(case: SurvivalCase, roi: RoiConfig, radiomics: RadiomicsConfig) -> CaseFeatures:
    record = case.record
    if record.image is None or record.label is None:
        raise ValueError(f"patient {record.patient_id}: needs image.nii.gz and label.nii.gz")
    ct = read_nifti(record.image)
    label = read_nifti(record.label)
    tumor = Volume((np.asarray(label.array) == TUMOR_LABEL).astype(np.uint8), label.affine)
    if not tumor.array.any():
        raise ValueError(f"patient {record.patient_id}: the label map has no tumor")
    features = RadiomicsExtractor(radiomics).extract(ct, tumor)
    cube = tumor_cube(ct, tumor, roi)
    diameter = max_diameter_mm(np.asarray(tumor.array) > 0, tumor.affine)
    staging = {**case.staging, "T": t_stage(diameter, case.arterial_contact)}
    row = clinical_row(record.clinical, staging)
    return CaseFeatures(features, cube.image, cube.mask, row)


def _cached(
    case: SurvivalCase, cache: Path, roi: RoiConfig, radiomics: RadiomicsConfig
) -> CaseFeatures:
    key = f"{case.patient_id}-{_settings_key(roi, radiomics)}-{source_fingerprint(case.record)}"
    file = cache / f"{key}.npz"
    if file.is_file():
        with np.load(file) as data:
            names = [str(n) for n in data["names"]]
            return CaseFeatures(
                dict(zip(names, (float(v) for v in data["values"]), strict=True)),
                data["image"], data["mask"], data["clinical"],
            )  # fmt: skip
    features = _compute(case, roi, radiomics)
    cache.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(file.stem + ".partial.npz")
    np.savez_compressed(
        partial, names=np.array(list(features.radiomics)),
        values=np.array(list(features.radiomics.values())), image=features.image,
        mask=features.mask, clinical=features.clinical,
    )  # fmt: skip
    partial.replace(file)
    return features


def load_features(
    cases: Sequence[SurvivalCase],
    cache: Path,
    roi: RoiConfig,
    radiomics: RadiomicsConfig,
    *,
    workers: int = 1,
) -> list[CaseFeatures]:
    """Every case's features, computed once and cached (in the cases' order).

    Raises
    ------
    ValueError
        If a case lacks its files or its tumor.
    """
    return list(ordered_map(_cached, cases, cache, roi, radiomics, workers=workers))
