"""Run a detection bundle on one CT: ROI, lesion map, lesions and the PDAC likelihood.

Steps (timed in :attr:`DetectionResult.timings_s`):

1. ``stage1``: the coarse cube around the scan's middle (:mod:`~inference.tasks.detection.roi`),
   the pancreas segmentation and the ROI centre (bounding-box centre of its largest component;
   no pancreas found: the scan's middle, with a warning);
2. ``stage2``: the ROI cube, the lesion probability map (0 where the cube lies outside the
   scan) and the PDAC probability;
3. ``lesions``: lesion candidates (:func:`~inference.tasks.detection.lesions.extract_candidates`),
   the detection map's maximum, the three scores
   (:class:`~inference.tasks.detection.scoring.PatientScores`) and the reported lesions (those
   at or above the bundle's ``report_threshold``).

The input is a :class:`inference.volume.Volume` in HU (any orientation), as the analysis
pipeline's :class:`~inference.tasks.protocol.TaskContext` carries it. The task is not yet part
of the analysis pipeline (:data:`inference.tasks.TASKS`), ``result.json`` or the DICOM writers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.detection.bundle import DetectionBundle
from inference.tasks.detection.lesions import Candidates, Lesion, describe, extract_candidates
from inference.tasks.detection.roi import cube_affine, read_cube, roi_centre, scan_centre
from inference.tasks.detection.scoring import PatientScores
from inference.tasks.protocol import AnalysisError
from inference.timing import timed
from inference.volume import Volume

__all__ = ["DetectionAnalysis", "DetectionModel", "DetectionResult"]

_NO_PANCREAS = "stage 1 found no pancreas: the ROI is centred on the scan's middle"


@dataclass(frozen=True)
class DetectionResult:
    """The detector's answer for one CT (investigational, not for clinical use).

    Attributes
    ----------
    pdac_likelihood
        The combined score (:attr:`PatientScores.combined`), in [0, 1].
    scores
        All three patient scores (classification, detection-map maximum, combined).
    lesions
        Reported lesions, most probable first.
    model_version
        ``name version`` of the bundle's model.
    pancreas_found
        Whether stage 1 found a pancreas to centre the ROI on.
    roi_centre_lps_mm
        Centre of the stage-2 ROI in DICOM patient coordinates (LPS mm).
    warnings
        What the reader should know (e.g. no pancreas found).
    timings_s
        Seconds per step.
    """

    pdac_likelihood: float
    scores: PatientScores
    lesions: tuple[Lesion, ...]
    model_version: str
    pancreas_found: bool
    roi_centre_lps_mm: tuple[float, float, float]
    warnings: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, eq=False)
class DetectionAnalysis:
    """A :class:`DetectionResult` with the maps it was read from (for evaluation).

    Attributes
    ----------
    result
        The answer.
    candidates
        Every lesion candidate on the ROI grid (also those below the report threshold).
    roi
        The stage-2 cube (z-scored values) with its voxel-to-RAS+ affine.
    lesion_probability
        Stage 2's lesion probability on the ROI grid.
    """

    result: DetectionResult
    candidates: Candidates
    roi: Volume
    lesion_probability: npt.NDArray[np.float32]


class DetectionModel:
    """A loaded detection bundle, ready to run on CTs.

    Parameters
    ----------
    bundle
        From :func:`inference.tasks.detection.bundle.load_detection_bundle`.
    device
        Where the networks run (default: CPU).
    """

    def __init__(self, bundle: DetectionBundle, device: torch.device | None = None) -> None:
        self._bundle = bundle
        self._device = device or torch.device("cpu")
        bundle.stage1.to(self._device).eval()
        bundle.stage2.to(self._device).eval()

    def detect(self, image: Volume) -> DetectionResult:
        """The detection result for one CT (see the module docstring).

        Raises
        ------
        AnalysisError
            ``non-finite`` when the CT holds NaN or infinite values after preprocessing.
        """
        return self.analyse(image).result

    def analyse(self, image: Volume) -> DetectionAnalysis:
        """:meth:`detect`, with the lesion map and the candidates.

        Raises
        ------
        AnalysisError
            ``non-finite`` when the CT holds NaN or infinite values after preprocessing.
        """
        timings: dict[str, float] = {}
        centre, found = timed(timings, "stage1", lambda: self._roi_centre(image))
        roi, probability, pdac = timed(timings, "stage2", lambda: self._stage2(image, centre))
        settings = self._bundle.settings
        candidates = timed(
            timings, "lesions", lambda: extract_candidates(probability, settings.extraction)
        )
        scores = PatientScores.of(pdac, candidates.max_probability,
                                  settings.classification_weight)  # fmt: skip
        lesions = describe(candidates, roi, image)
        reported = tuple(x for x in lesions if x.probability >= settings.report_threshold)
        lps = (-centre[0], -centre[1], centre[2])
        result = DetectionResult(
            pdac_likelihood=scores.combined, scores=scores, lesions=reported,
            model_version=self._bundle.version, pancreas_found=found,
            roi_centre_lps_mm=(round(lps[0], 2), round(lps[1], 2), round(lps[2], 2)),
            warnings=() if found else (_NO_PANCREAS,), timings_s=timings,
        )  # fmt: skip
        return DetectionAnalysis(result, candidates, roi, probability)

    def _run(self, network: torch.nn.Module, cube: npt.NDArray[np.float32]) -> object:
        if not np.isfinite(cube).all():
            raise AnalysisError("non-finite", "NaN or infinite values after preprocessing")
        with torch.no_grad():
            return network(torch.from_numpy(cube[None, None].copy()).to(self._device))

    def _roi_centre(self, image: Volume) -> tuple[tuple[float, float, float], bool]:
        config = self._bundle.stage1_config
        middle = scan_centre(image)
        cube = read_cube(image, config, middle).image
        logits = self._run(self._bundle.stage1, cube)
        assert isinstance(logits, torch.Tensor)
        mask = (logits[0].argmax(dim=0) == 1).cpu().numpy()
        centre = roi_centre(mask, cube_affine(middle, config))
        return (middle, False) if centre is None else (centre, True)

    def _stage2(
        self, image: Volume, centre: tuple[float, float, float]
    ) -> tuple[Volume, npt.NDArray[np.float32], float]:
        network = self._bundle.stage2
        cube = read_cube(image, network.config, centre).image
        out = self._run(network, cube)
        seg = torch.softmax(out.seg_logits.float(), dim=1)[0, 1]  # type: ignore[attr-defined]
        pdac = torch.softmax(out.class_logits.float(), dim=1)[0, 1]  # type: ignore[attr-defined]
        roi = Volume(cube, cube_affine(centre, network.config))
        # the cube's padding beyond the scan is no place for a lesion
        probability = np.where(_inside(roi, image), seg.cpu().numpy(), 0.0).astype(np.float32)
        return roi, probability, float(pdac)


def _inside(grid: Volume, image: Volume) -> npt.NDArray[np.bool_]:
    """Which voxels of ``grid`` lie within the field of view of ``image``."""
    index = np.indices(grid.shape).reshape(3, -1).T
    at = image.world_to_voxel(grid.voxel_to_world(index))
    inside = np.all((at > -0.5) & (at < np.asarray(image.shape) - 0.5), axis=1)
    out: npt.NDArray[np.bool_] = inside.reshape(grid.shape)
    return out
