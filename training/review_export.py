"""Reviewed cases back into training: ``pancreas-node export-cases --reviewed`` (issue 26).

Every study a radiologist reviewed in OHIF becomes one patient of a cohort folder in the
training layout (:mod:`training.dataset`), so ``pancreas-node train`` (optionally with
``init_from`` = the deployed bundle, to fine-tune) learns from its users:

- **image**: the CT series the node analysed, read from the node's spool
  (``image.nii.gz``, canonical RAS+);
- **label map**: the reviewer's corrected SEG version when the review is a correction the
  node has written, else the node's own SEG the reviewer agreed with or overrode
  (``label.nii.gz``, on the same grid, :func:`inference.seg_reader.label_volume_from_seg`);
- **NCCN label**: the board's decision when one was recorded (the board has the last word),
  else the reviewer's category (override, or a correction that gave one), else the node's
  category the reviewer agreed with. A metastatic board decision has no resectability label:
  such a case is left out and counted. A label map without tumor voxels is a tumor-free
  patient (``has_tumor`` 0);
- **clinical variables**: from the hospital registry through the node's registry bridge, as
  the analysis read them (all missing when no registry is configured: the export says so).

Patients are named ``rev-<16 hex>`` (a hash of the StudyInstanceUID): the export carries no
patient name, ID or accession number. ``truth.csv`` says where each label came from
(``label_source``: ``board``, ``review-override``, ``review-agree``, ``review-correction``;
``segmentation_source``: ``reviewer-corrected`` or ``ai-reviewed``), which the training report
counts. Cases whose inputs are gone (spool purged, correction not written yet) are left out
with the reason in ``export.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from db import (
    CorrectionState,
    NodeDatabase,
    RegistryBridge,
    ReviewedCase,
    get_study,
    reviewed_cases,
    series_instance_paths,
)
from inference.seg_reader import SegReadError, label_volume_from_seg
from inference.volume import write_nifti
from inference.volume_io import VolumeError, read_dicom_series
from pancreas_contracts.boards import BoardCategory, ReviewVerdict
from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables
from pancreas_contracts.labels import label_by_name

__all__ = [
    "LABEL_SOURCES",
    "REVIEW_SEGMENTATION_SOURCES",
    "ExportSummary",
    "export_reviewed_cases",
]

_log = logging.getLogger(__name__)

#: ``truth.csv``'s ``label_source`` values of exported reviewed cases.
LABEL_SOURCES = ("board", "review-override", "review-correction", "review-agree")
#: ``truth.csv``'s ``segmentation_source`` values of exported reviewed cases.
REVIEW_SEGMENTATION_SOURCES = ("reviewer-corrected", "ai-reviewed")

_TUMOR = label_by_name("tumor").value
_NCCN_INDEX = {
    BoardCategory.RESECTABLE: 0,
    BoardCategory.BORDERLINE: 1,
    BoardCategory.LOCALLY_ADVANCED: 2,
}
_SEG = "seg.dcm"  # inference's name for the job's SEG (and a correction's)
_TRUTH_COLUMNS = (
    "patient_id", "nccn_label", "has_tumor", "label_source", "segmentation_source",
    "review_verdict", "board_category", "review_id",
)  # fmt: skip


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote and what it left out (also ``export.json``)."""

    exported: int
    label_sources: dict[str, int]
    segmentation_sources: dict[str, int]
    left_out: dict[str, str] = field(default_factory=dict)
    registry: str = "not configured"


@dataclass(frozen=True)
class _Row:
    truth: dict[str, str]
    clinical: dict[str, str]


def _patient_id(study_instance_uid: str) -> str:
    return "rev-" + hashlib.sha256(study_instance_uid.encode("ascii")).hexdigest()[:16]


def _seg_path(data_dir: Path, case: ReviewedCase) -> tuple[Path, str]:
    """The SEG to export and its source, or raise ``LookupError`` saying why not."""
    review = case.review
    if review.job_id is None:
        raise LookupError("its job is gone")
    results = data_dir / "results" / review.job_id
    if review.verdict is ReviewVerdict.CORRECT:
        if review.correction_state != CorrectionState.WRITTEN:
            raise LookupError(f"its correction is {review.correction_state or 'missing'}")
        return results / "corrections" / str(review.id) / _SEG, "reviewer-corrected"
    return results / _SEG, "ai-reviewed"


def _category(case: ReviewedCase) -> tuple[BoardCategory | None, str]:
    """The case's category and where it came from (``None``: the node's own category)."""
    review = case.review
    if case.board_category is not None:
        return case.board_category, "board"
    if review.verdict is ReviewVerdict.CORRECT:
        return review.category, "review-correction"
    if review.verdict is ReviewVerdict.OVERRIDE:
        return review.category, "review-override"
    return None, "review-agree"


def _nccn(case: ReviewedCase, has_tumor: bool) -> tuple[str, str]:
    """``(nccn_label cell, label_source)``; raise ``LookupError`` when there is none."""
    category, source = _category(case)
    if not has_tumor:
        return "", source
    if category is BoardCategory.METASTATIC:
        raise LookupError("the board decided metastatic disease (no resectability label)")
    if category is not None:
        return str(_NCCN_INDEX[category]), source
    if case.review.ai_category is None:
        raise LookupError("neither the node nor the reviewer gave an NCCN category")
    return str(case.review.ai_category), source


def _clinical(
    db: NodeDatabase, registry: RegistryBridge | None, study_instance_uid: str
) -> ClinicalVariables:
    if registry is None:
        return ClinicalVariables()
    study = get_study(db, study_instance_uid)
    result = registry.lookup_study(
        patient_id=None if study is None else study.patient_id,
        accession_number=None if study is None else study.accession_number,
        study_date=None if study is None else study.study_date,
    )
    return result.variables


def _export_case(
    db: NodeDatabase,
    case: ReviewedCase,
    *,
    data_dir: Path,
    out: Path,
    registry: RegistryBridge | None,
) -> _Row:
    """Write one case's image and label map; raise ``LookupError`` when it cannot be."""
    if case.series_instance_uid is None:
        raise LookupError("its series is unknown")
    seg_path, seg_source = _seg_path(data_dir, case)
    if not seg_path.is_file():
        raise LookupError(f"its SEG ({seg_source}) is not in the results folder")
    paths = [Path(p) for p in series_instance_paths(db, case.series_instance_uid)]
    present = [p for p in paths if p.is_file()]
    if not present:
        raise LookupError("its CT is no longer in the spool")
    try:
        ct = read_dicom_series(present, series_uid=case.series_instance_uid)
        label = label_volume_from_seg(seg_path, ct)
    except (VolumeError, SegReadError, OSError) as exc:
        raise LookupError(f"its CT or SEG cannot be read ({type(exc).__name__})") from exc
    has_tumor = bool(np.any(label.array == _TUMOR))
    nccn, source = _nccn(case, has_tumor)
    pid = _patient_id(case.review.study_instance_uid)
    folder = out / pid
    folder.mkdir(parents=True, exist_ok=True)
    write_nifti(ct.volume, folder / "image.nii.gz")
    write_nifti(label, folder / "label.nii.gz")
    clinical = _clinical(db, registry, case.review.study_instance_uid)
    return _Row(
        truth={
            "patient_id": pid,
            "nccn_label": nccn,
            "has_tumor": "1" if has_tumor else "0",
            "label_source": source,
            "segmentation_source": seg_source,
            "review_verdict": case.review.verdict.value,
            "board_category": "" if case.board_category is None else case.board_category.value,
            "review_id": str(case.review.id),
        },
        clinical={
            "patient_id": pid,
            **{
                v.name: "" if clinical.values[v.name] is None else repr(clinical.values[v.name])
                for v in CLINICAL_VARIABLES
            },
        },
    )


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def export_reviewed_cases(
    db: NodeDatabase,
    *,
    data_dir: Path,
    out: Path,
    registry: RegistryBridge | None = None,
) -> ExportSummary:
    """Write every reviewed case as a training cohort folder under ``out``.

    Parameters
    ----------
    db
        The node database (reviews, decisions, the spool paths).
    data_dir
        The node's data directory (``results/<job id>/`` holds the SEGs).
    out
        The cohort folder to write (``clinical.csv``, ``truth.csv``, ``<patient>/``,
        ``export.json``); existing patient folders are overwritten.
    registry
        The clinical registry bridge, or ``None`` (every clinical variable missing).

    Returns
    -------
    ExportSummary
        Counts by label source and the cases left out with the reason.

    Raises
    ------
    ValueError
        If no reviewed case could be exported (an empty cohort cannot train).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows: list[_Row] = []
    left_out: dict[str, str] = {}
    for case in reviewed_cases(db):
        pid = _patient_id(case.review.study_instance_uid)
        try:
            rows.append(_export_case(db, case, data_dir=data_dir, out=out, registry=registry))
        except LookupError as exc:
            left_out[pid] = str(exc)
            _log.info("review %d left out of the export: %s", case.review.id, exc)
    summary = ExportSummary(
        exported=len(rows),
        label_sources=dict(Counter(r.truth["label_source"] for r in rows)),
        segmentation_sources=dict(Counter(r.truth["segmentation_source"] for r in rows)),
        left_out=left_out,
        registry="not configured" if registry is None else "looked up",
    )
    if not rows:
        reasons = "; ".join(f"{pid}: {why}" for pid, why in left_out.items())
        raise ValueError(f"no reviewed case could be exported ({reasons or 'none reviewed'})")
    _write_csv(out / "truth.csv", _TRUTH_COLUMNS, [r.truth for r in rows])
    clinical_columns = ("patient_id", *(v.name for v in CLINICAL_VARIABLES))
    _write_csv(out / "clinical.csv", clinical_columns, [r.clinical for r in rows])
    (out / "export.json").write_text(
        json.dumps(
            {
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "exported": summary.exported,
                "label_sources": summary.label_sources,
                "segmentation_sources": summary.segmentation_sources,
                "left_out": summary.left_out,
                "registry": summary.registry,
                "notice": "Investigational, not for clinical use.",
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return summary
