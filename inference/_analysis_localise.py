"""Coarse pancreas localisation for :mod:`inference.analysis` (the first of METHOD.md's two stages).

METHOD.md section 2 wants a small low-resolution network in the bundle for this stage: that is
:class:`inference.localiser.LearnedLocaliser` (a 3D U-Net on the whole CT at 5 mm, stored
as ``localiser.safetensors`` with a ``localiser`` section in ``bundle.json``; trained by
``pancreas-node train-localiser`` or by ``train_cohort`` with ``localiser_epochs`` > 0), and
:class:`inference.analysis.Analyzer` uses it whenever the bundle has one. Bundles without one
(all bundles made before it existed) fall back to :class:`LandmarkLocaliser`, which places the
cube from anatomy the phase check already finds
(:func:`inference.contrast_phase.locate_contrast_landmarks`) and says how sure it is. Both
implement :class:`Localiser`; the result's ``localisation.method`` names the one that ran.

Landmark method
---------------
The pancreatic neck lies anterior to the confluence of the superior mesenteric and splenic
veins, where the vertical SMV turns into the portal vein running obliquely up and to the
patient's right towards the liver hilum; the body crosses anterior to the aorta at that level.

1. **Confluence.** Along the portal-vein track (inferior to superior, RAS+), ``x`` is smoothed
   over 3 points; the confluence is the most superior point within 2 mm of the leftmost ``x``
   below the point where the track first veers more than 5 mm to the right of its running
   leftmost ``x`` (below the confluence the SMV runs up, above it the portal vein veers right;
   higher still, at the liver hilum, the left portal branch may run further left again - on
   the NIH Pancreas-CT case 0001 taking the leftmost point of the whole track put the centre
   58 mm from the pancreas, on the left portal branch).
2. **Centre.** ``x``: the aorta's centreline at the confluence level (the body crosses in front
   of it); ``y``: 8 mm anterior to the confluence; ``z``: 5 mm below it.
3. **Box.** The centre +- (65, 30, 35) mm, a typical adult pancreas' extent.
4. **Confidence.** ``0.8 * min(aorta quality, portal-vein quality)`` (the 0.8 says that this is
   a heuristic, not a trained detector); found when at least :data:`MIN_CONFIDENCE`.

Fallbacks (each with a warning): no portal vein but an aorta - ``x``, ``y`` from the aorta
(40 mm anterior), ``z`` the middle of the aorta's track, confidence ``0.3 * quality``, not
found; nothing - the volume centre, confidence 0, not found. On 3 default phantoms the centre
falls 2-15 mm from the true pancreas centroid (9-12 mm on 6 more, seed 7); on the real NIH
Pancreas-CT case 0001 17 mm, with 86 % of the manual mask inside the box
(``tests/inference/test_analysis_localise.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from inference.contrast_phase import ContrastLandmarks, VesselLandmark, locate_contrast_landmarks
from inference.volume import Volume

__all__ = [
    "MAX_DISAGREEMENT_MM",
    "MIN_CONFIDENCE",
    "CrossCheckedLocaliser",
    "LandmarkLocaliser",
    "LocalisationEstimate",
    "Localiser",
    "with_known_landmarks",
]

#: Below this confidence the localisation is reported as not found (and a warning is given).
MIN_CONFIDENCE: Final = 0.3
#: A learned centre farther than this from a found landmark centre is not trusted.
MAX_DISAGREEMENT_MM: Final = 40.0
_HALF_BOX_MM: Final = np.array([65.0, 30.0, 35.0])
_NECK_ANTERIOR_MM: Final = 8.0
_NECK_BELOW_MM: Final = 5.0
_AORTA_TO_PANCREAS_MM: Final = 40.0
_HEURISTIC_CAP: Final = 0.8
_NEAR_LEFTMOST_MM: Final = 2.0
_VEER_RIGHT_MM: Final = 5.0


@dataclass(frozen=True)
class LocalisationEstimate:
    """Where the coarse stage puts the pancreas.

    Parameters
    ----------
    centre_mm
        RAS+ centre for the analysis cube.
    box_mm
        RAS+ box ``(x0, y0, z0, x1, y1, z1)`` expected to hold the pancreas.
    confidence
        0-1.
    found
        Whether the pancreas region was located (``confidence >= MIN_CONFIDENCE``).
    method
        Short name of the method used (recorded in warnings).
    warnings
        Why the estimate is uncertain, if it is.
    disagreement_mm
        How far a cross-checked estimate lay from the landmarks' centre (``None`` when not
        cross-checked); a refusal reports it.
    """

    centre_mm: tuple[float, float, float]
    box_mm: tuple[float, float, float, float, float, float]
    confidence: float
    found: bool
    method: str
    warnings: tuple[str, ...] = ()
    disagreement_mm: float | None = None


class Localiser(Protocol):
    """Finds the pancreas region of a CT volume (HU, any orientation)."""

    def __call__(self, volume: Volume) -> LocalisationEstimate: ...


def _estimate(
    centre: npt.NDArray[np.float64], confidence: float, method: str, warnings: tuple[str, ...]
) -> LocalisationEstimate:
    lo, hi = centre - _HALF_BOX_MM, centre + _HALF_BOX_MM
    box = (float(lo[0]), float(lo[1]), float(lo[2]), float(hi[0]), float(hi[1]), float(hi[2]))
    conf = float(np.clip(confidence, 0.0, 1.0))
    found = conf >= MIN_CONFIDENCE
    if not found and not warnings:
        warnings = (f"pancreas localisation uncertain (confidence {conf:.2f}, {method})",)
    c = (float(centre[0]), float(centre[1]), float(centre[2]))
    return LocalisationEstimate(c, box, conf, found, method, warnings)


def _confluence(portal: VesselLandmark) -> npt.NDArray[np.float64]:
    """The SMV/splenic-vein confluence on the portal-vein track (see the module notes)."""
    track = portal.centreline_ras
    x = track[:, 0]
    if len(x) >= 3:
        x = np.convolve(np.pad(x, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    # Only up to where the track first veers right (the portal vein): above that, in the liver
    # hilum, the left portal branch can run further left than the confluence.
    veer = np.flatnonzero(x - np.minimum.accumulate(x) > _VEER_RIGHT_MM)
    lower = x[: int(veer[0])] if veer.size else x
    near = np.flatnonzero(lower <= lower.min() + _NEAR_LEFTMOST_MM)
    # Tracks run inferior to superior: the last near-leftmost point is the most superior.
    point: npt.NDArray[np.float64] = track[int(near[-1])]
    return point


def _aorta_at(aorta: VesselLandmark, z: float) -> npt.NDArray[np.float64]:
    track = aorta.centreline_ras
    point: npt.NDArray[np.float64] = track[int(np.argmin(np.abs(track[:, 2] - z)))]
    return point


@dataclass(frozen=True)
class LandmarkLocaliser:
    """Anatomical-landmark localiser (no network); see the module notes.

    Parameters
    ----------
    known
        The landmarks of the volume it will be called with, already found (by the node's
        phase check, :mod:`inference.landmark_store`); ``None``: found from the volume.
        Made per volume by :func:`with_known_landmarks`.
    """

    known: ContrastLandmarks | None = None

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        """Locate the pancreas region of ``volume``."""
        marks = locate_contrast_landmarks(volume) if self.known is None else self.known
        aorta, portal = marks.aorta, marks.portal_vein
        if aorta is not None and portal is not None:
            confluence = _confluence(portal)
            centre = np.array(
                [
                    _aorta_at(aorta, float(confluence[2]))[0],
                    confluence[1] + _NECK_ANTERIOR_MM,
                    confluence[2] - _NECK_BELOW_MM,
                ]
            )
            confidence = _HEURISTIC_CAP * min(aorta.quality, portal.quality)
            return _estimate(centre, confidence, "landmarks: SMV/portal confluence", ())
        if aorta is not None:
            mid = _aorta_at(aorta, float(np.median(aorta.centreline_ras[:, 2])))
            centre = mid + np.array([0.0, _AORTA_TO_PANCREAS_MM, 0.0])
            warning = "pancreas localisation fell back to the aorta (no portal vein found)"
            return _estimate(centre, 0.3 * aorta.quality * 0.99, "landmarks: aorta", (warning,))
        middle = (np.asarray(volume.shape, dtype=np.float64) - 1) / 2
        centre = volume.voxel_to_world(middle[None, :])[0]
        warning = "pancreas localisation failed (no aorta found): the volume centre was used"
        return _estimate(centre, 0.0, "volume centre", (warning,))


@dataclass(frozen=True)
class CrossCheckedLocaliser:
    """A learned localiser checked against the anatomical landmarks.

    A network trained on one kind of CT (the demo bundle: phantoms only) can be confidently
    wrong on another: on the real NIH Pancreas-CT case 0001 the phantom-trained localiser put
    its centre 171 mm from the pancreas with confidence 0.91, while the landmarks were 17 mm
    off. So when both find a centre and they lie more than ``max_disagreement_mm`` apart, the
    estimate is reported as not found, its confidence scaled down by
    ``max_disagreement_mm / distance``, with a warning naming the distance; the analysis then
    gives no category (``not-localised``). When the landmarks find nothing, the learned
    estimate stands, with a warning that it could not be checked.
    """

    primary: Localiser
    reference: Localiser
    max_disagreement_mm: float = MAX_DISAGREEMENT_MM

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        learned = self.primary(volume)
        landmarks = self.reference(volume)
        method = f"{learned.method}, checked against landmarks"
        if not landmarks.found:
            note = "the anatomical landmarks were not found: the learned localisation is unchecked"
            return dataclasses.replace(learned, method=method, warnings=(*learned.warnings, note))
        distance = float(np.linalg.norm(np.subtract(learned.centre_mm, landmarks.centre_mm)))
        if distance <= self.max_disagreement_mm:
            return dataclasses.replace(learned, method=method, disagreement_mm=distance)
        note = (
            f"the learned localiser and the anatomical landmarks disagree by {distance:.0f} mm "
            f"(limit {self.max_disagreement_mm:.0f} mm): the pancreas is not reliably located"
        )
        return dataclasses.replace(
            learned,
            method=method,
            found=False,
            confidence=learned.confidence * self.max_disagreement_mm / distance,
            warnings=(*learned.warnings, note),
            disagreement_mm=distance,
        )


def with_known_landmarks(localiser: Localiser, marks: ContrastLandmarks) -> Localiser:
    """``localiser`` for one volume whose contrast landmarks ``marks`` are already found.

    A :class:`LandmarkLocaliser` (also as a :class:`CrossCheckedLocaliser`'s reference) uses
    ``marks`` instead of finding them again; any other localiser is returned as it is. The
    result must only be called with the volume ``marks`` were found in.
    """
    if isinstance(localiser, LandmarkLocaliser):
        return dataclasses.replace(localiser, known=marks)
    if isinstance(localiser, CrossCheckedLocaliser):
        return dataclasses.replace(
            localiser,
            primary=with_known_landmarks(localiser.primary, marks),
            reference=with_known_landmarks(localiser.reference, marks),
        )
    return localiser
