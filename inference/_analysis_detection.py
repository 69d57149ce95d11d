"""The PDAC detection gate of :class:`inference.analysis.Analyzer` (result schema 1.5).

The detector runs first on every CT (``issue 23``; METHOD.md section 2). When its patient
likelihood is below the operating threshold, the NCCN staging is not given: the result's
outcome is ``no-pdac``, its category and rule category ``None``, with
:data:`pancreas_contracts.detection.NO_PDAC_NOTE`. The staging network's segmentation still
runs, so organs and vessels are delivered, and the two answers are compared:
:attr:`~pancreas_contracts.detection.Detection.agreement` says whether both found the tumor at
the same place (the most probable lesion's centre within :data:`AGREEMENT_MM` of a staging
tumor voxel), only one of them found one, or they found it at different places.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import torch

from inference.tasks.detection.bundle import load_detection_bundle
from inference.tasks.detection.task import DetectionModel, DetectionResult
from inference.volume import Volume
from pancreas_contracts.detection import NO_PDAC_NOTE, DetectedLesion, Detection
from pancreas_contracts.labels import label_by_name

__all__ = ["AGREEMENT_MM", "Detector", "PdacDetector", "apply_gate"]

#: How far the detector's lesion centre may lie from the staging tumor and still agree.
AGREEMENT_MM: Final = 10.0

#: What the Analyzer calls: the CT in, the detector's answer (without agreement) out.
Detector = Callable[[Volume], Detection]


class PdacDetector:
    """A detection bundle as the analysis' gate.

    Parameters
    ----------
    bundle_path
        The detection bundle (``inference/tasks/detection``).
    device
        Where it runs.
    threshold
        The operating point: a patient likelihood at or above it is a detected PDAC.
    """

    def __init__(self, bundle_path: Any, device: torch.device, threshold: float) -> None:
        self._model = DetectionModel(load_detection_bundle(bundle_path), device)
        self._threshold = threshold

    def __call__(self, image: Volume) -> Detection:
        """Run the detector on the CT."""
        return to_detection(self._model.detect(image), self._threshold)


def to_detection(result: DetectionResult, threshold: float) -> Detection:
    """The contract's view of the detector's answer."""
    return Detection(
        model_version=result.model_version,
        pdac_likelihood=round(result.pdac_likelihood, 4),
        classification=round(result.scores.classification, 4),
        detection_max=round(result.scores.detection_max, 4),
        threshold=threshold,
        detected=round(result.pdac_likelihood, 4) >= threshold,
        lesions=tuple(
            DetectedLesion(
                centre_lps_mm=lesion.centre_lps_mm,
                diameter_mm=round(lesion.diameter_mm, 1),
                volume_ml=round(lesion.volume_ml, 3),
                probability=round(lesion.probability, 4),
            )
            for lesion in result.lesions
        ),
        warnings=result.warnings,
    )


def apply_gate(
    fields: dict[str, Any], notes: list[str], detection: Detection, label: Volume
) -> Detection:
    """Compare the detector with the staging segmentation ``label``; gate ``fields``.

    ``fields`` (the tasks' result fields) and ``notes`` (the warnings) are updated in place
    when the detector found no PDAC. Returns the detection with its agreement.
    """
    tumor = np.argwhere(label.array == label_by_name("tumor").value)
    distance = None
    if detection.lesions and len(tumor):
        x, y, z = detection.lesions[0].centre_lps_mm
        world = label.voxel_to_world(tumor)
        distance = round(float(np.min(np.linalg.norm(world - [-x, -y, z], axis=1))), 1)
    if detection.detected and len(tumor):
        agreement = "agree" if distance is None or distance <= AGREEMENT_MM else "elsewhere"
    elif detection.detected:
        agreement = "detection-only"
    else:
        agreement = "staging-only" if len(tumor) else "agree"
    if not detection.detected:
        fields.update(outcome="no-pdac", category=None, rule_category=None, disagreement=False)
        notes.append(NO_PDAC_NOTE)
    if agreement != "agree":
        notes.append(f"PDAC detection and the staging segmentation disagree: {agreement}")
    return detection.model_copy(update={"agreement": agreement, "distance_mm": distance})
