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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from inference.bundle import sha256_file
from inference.tasks.detection.bundle import load_detection_bundle
from inference.tasks.detection.task import DetectionAnalysis, DetectionModel, DetectionResult
from inference.volume import Volume, nonzero_box
from inference.volume_io import resample_to_reference
from pancreas_contracts.detection import NO_PDAC_NOTE, DetectedLesion, Detection
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import BundleRef

__all__ = [
    "AGREEMENT_MM",
    "Detector",
    "DetectorOutput",
    "PdacDetector",
    "apply_gate",
    "labels_on_image",
]

#: How far the detector's lesion centre may lie from the staging tumor and still agree.
AGREEMENT_MM: Final = 10.0


@dataclass(frozen=True, eq=False)
class DetectorOutput:
    """The detector's answer, its reported lesions on the CT grid and its bundle.

    Attributes
    ----------
    detection
        The answer (without its agreement, which the gate adds).
    lesions
        ``n`` where the ``n``-th reported lesion is, 0 elsewhere, on the CT's grid; ``None``
        when no lesion is reported.
    bundle
        The detection bundle (for the lesion SEG's algorithm identification).
    """

    detection: Detection
    lesions: Volume | None
    bundle: BundleRef


#: What the Analyzer calls: the CT in, the detector's output out.
Detector = Callable[[Volume], DetectorOutput]


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

    def __init__(self, bundle_path: Path, device: torch.device, threshold: float) -> None:
        bundle = load_detection_bundle(bundle_path)
        self._model = DetectionModel(bundle, device)
        self._threshold = threshold
        name, _, version = bundle.version.partition(" ")
        root = bundle_path if bundle_path.is_dir() else bundle_path.parent
        self._ref = BundleRef(
            name=name or "pdac-detection",
            version=version or "0",
            sha256=sha256_file(root / "bundle.json"),
        )

    def __call__(self, image: Volume) -> DetectorOutput:
        """Run the detector on the CT."""
        analysis = self._model.analyse(image)
        detection = to_detection(analysis.result, self._threshold)
        return DetectorOutput(detection, lesion_map(analysis, image), self._ref)


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


def lesion_map(analysis: DetectionAnalysis, image: Volume) -> Volume | None:
    """The reported lesions (``1..n``) on ``image``'s grid; ``None`` when none is reported.

    Candidates come most probable first and the reported lesions are those above the
    bundle's report threshold, so the first ``n`` components are the reported ones. Only the
    part of the CT the detector's cube covers is resampled (nearest neighbour).
    """
    count = len(analysis.result.lesions)
    if count == 0:
        return None
    components = analysis.candidates.components
    kept = np.where(components <= count, components, 0).astype(np.uint8)
    return labels_on_image(Volume(kept, analysis.roi.affine), image)


def labels_on_image(labels: Volume, image: Volume) -> Volume | None:
    """A label map on a cube (``uint8``) resampled onto ``image``'s grid (nearest neighbour).

    Only the part of the CT the cube covers is resampled; ``None`` when no label lands on it.
    """
    roi = labels
    corners = (
        np.array(np.meshgrid(*[[0, n - 1] for n in roi.shape], indexing="ij")).reshape(3, -1).T
    )
    at = image.world_to_voxel(roi.voxel_to_world(corners))
    low = np.clip(np.floor(at.min(axis=0)).astype(int), 0, np.asarray(image.shape))
    high = np.clip(np.ceil(at.max(axis=0)).astype(int) + 1, 0, np.asarray(image.shape))
    out = np.zeros(image.shape, dtype=np.uint8)
    if np.any(high <= low):
        return None
    shift = np.eye(4)
    shift[:3, 3] = low
    window = Volume(np.zeros(tuple(high - low), dtype=np.uint8), image.affine @ shift)
    part = resample_to_reference(roi, window, order=0)
    out[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = part.array
    return Volume(out, image.affine.copy()) if out.any() else None


def _voxels_of(array: npt.NDArray[np.generic], value: int) -> npt.NDArray[np.intp]:
    """``np.argwhere(array == value)``, searched only inside the labels' box (a 300-slice
    grid is 69 M voxels: 0.2-0.3 s for the whole grid, about 0.02 s for the box)."""
    box = nonzero_box(array)
    if box is None:
        return np.empty((0, 3), dtype=np.intp)
    found: npt.NDArray[np.intp] = np.argwhere(array[box] == value)
    return found + np.array([box[0].start, box[1].start, box[2].start], dtype=np.intp)


def apply_gate(
    fields: dict[str, Any], notes: list[str], detection: Detection, label: Volume
) -> Detection:
    """Compare the detector with the staging segmentation ``label``; gate ``fields``.

    ``fields`` (the tasks' result fields) and ``notes`` (the warnings) are updated in place
    when the detector found no PDAC. Returns the detection with its agreement.
    """
    tumor = _voxels_of(label.array, label_by_name("tumor").value)
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
