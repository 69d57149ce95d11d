"""Score a detection model on cases with truth: patient scores and judged lesions per case.

The model runs end to end on each CT as at analysis (stage 1's ROI, not the truth's). Truth
lesions are the connected components (26-connectivity) of the ``tumor`` label on the CT's
grid; the predicted candidates (all of them, also below the report threshold) are resampled
to that grid (nearest neighbour) and judged by IoU (:mod:`training.detection_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from inference.tasks.detection.scoring import SCORE_MODES, PatientScores
from inference.tasks.detection.task import DetectionAnalysis, DetectionModel
from inference.volume import Volume, read_nifti
from inference.volume_io import read_dicom_series, resample_to_reference
from training._detection_data import LESION_LABEL
from training.dataset import CaseRecord
from training.detection_metrics import (
    FP_RATES,
    LesionMatch,
    ablation_table,
    froc,
    iou_matrix,
    lesion_average_precision,
    match_lesions,
)

__all__ = ["CaseOutcome", "evaluate_cases", "summarise"]

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class CaseOutcome:
    """One evaluated patient.

    Attributes
    ----------
    patient_id
        The patient.
    positive
        Whether the patient has a PDAC (truth).
    scores
        The three patient scores.
    match
        Its lesion candidates judged against its truth lesions.
    roi_coverage
        Fraction of the truth lesion voxels inside the stage-2 ROI (1 without a lesion).
    pancreas_found
        Whether stage 1 found a pancreas.
    """

    patient_id: str
    positive: bool
    scores: PatientScores
    match: LesionMatch
    roi_coverage: float
    pancreas_found: bool


def _read(case: CaseRecord) -> tuple[Volume, Volume]:
    if case.label is None:
        raise ValueError(f"patient {case.patient_id}: evaluation needs label.nii.gz")
    if case.image is not None:
        image = read_nifti(case.image)
    elif case.dicom_dir is not None:
        image = read_dicom_series(case.dicom_dir).volume
    else:
        raise ValueError(f"patient {case.patient_id}: no image")
    return image, read_nifti(case.label)


def _coverage(truth: np.ndarray[Any, Any], label: Volume, roi: Volume) -> float:
    points = np.argwhere(truth)
    if len(points) == 0:
        return 1.0
    index = roi.world_to_voxel(label.voxel_to_world(points))
    inside = np.all((index > -0.5) & (index < np.asarray(roi.shape) - 0.5), axis=1)
    return float(inside.mean())


def evaluate_case(model: DetectionModel, case: CaseRecord) -> CaseOutcome:
    """Run ``model`` on one case and judge its output.

    Raises
    ------
    ValueError
        If the case has no readable image or no label map.
    """
    image, label = _read(case)
    analysis: DetectionAnalysis = model.analyse(image)
    truth_mask = np.asarray(label.array) == LESION_LABEL
    truth, _ = ndimage.label(truth_mask, structure=_CONNECTIVITY)
    predicted = Volume(analysis.candidates.components, analysis.roi.affine)
    on_ct = resample_to_reference(predicted, label, 0, fill_value=0)
    count = len(analysis.candidates.probabilities)
    ious = iou_matrix(np.asarray(on_ct.array, dtype=np.int64), truth, count)
    result = analysis.result
    return CaseOutcome(
        patient_id=case.patient_id, positive=case.has_tumor, scores=result.scores,
        match=match_lesions(ious, analysis.candidates.probabilities),
        roi_coverage=_coverage(truth_mask, label, analysis.roi),
        pancreas_found=result.pancreas_found,
    )  # fmt: skip


def evaluate_cases(model: DetectionModel, cases: Sequence[CaseRecord]) -> list[CaseOutcome]:
    """:func:`evaluate_case` for every case, in order."""
    return [evaluate_case(model, case) for case in cases]


def summarise(outcomes: Sequence[CaseOutcome]) -> dict[str, Any]:
    """Patient AUROC/AP per score (the ablation), lesion AP, FROC and ROI checks.

    The headline ``auroc`` and ``ap`` are the combined score's (the reported likelihood).
    """
    labels = [int(o.positive) for o in outcomes]
    scores = {mode: [o.scores.get(mode) for o in outcomes] for mode in SCORE_MODES}
    table = ablation_table(labels, scores)
    matches = [o.match for o in outcomes]
    sensitivity = froc(matches, FP_RATES)
    positives = [o for o in outcomes if o.positive]
    combined = table[SCORE_MODES.index("combined")]
    return {
        "patients": len(outcomes),
        "positives": sum(labels),
        "auroc": combined["auroc"],
        "ap": combined["ap"],
        "ablation": table,
        "lesion_ap": lesion_average_precision(matches),
        "truth_lesions": sum(m.n_truth for m in matches),
        "froc": {f"{rate:g}": value for rate, value in sensitivity.items()},
        "roi_coverage": float(np.mean([o.roi_coverage for o in positives])) if positives else 1.0,
        "pancreas_found": float(np.mean([o.pancreas_found for o in outcomes])),
    }
