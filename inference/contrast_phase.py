"""Contrast phase from the image itself: is this CT non-contrast, arterial or portal-venous?

Routing must not trust the SeriesDescription, so the phase is measured where it shows: the
attenuation of the abdominal aorta against the portal vein.

Method
------
1. **Working grid.** The volume is block-averaged by integer factors to about 2.5 mm voxels
   (an exact partial-volume mean, no interpolation) and reoriented to canonical RAS+ axes
   (``i`` towards the patient's right, ``j`` anterior, ``k`` superior).
2. **Body and spine.** The body is the largest component above -400 HU. On each axial slice the
   vertebra is the largest bone component (> 200 HU, >= 150 mm2) in the posterior half of the
   body within 40 mm of its midline; its centre line and the anterior surface of the vertebral
   bodies (carried over the discs) are interpolated along ``k``, and its convex hull is kept
   out of every vessel search.
3. **Blobs and tubes.** On each slice, inside a search box, connected components of
   ``HU > t`` for a ladder of thresholds ``t`` are kept when roughly elliptical (moment
   roundness and fill), of vessel size and brighter than a two-voxel ring around them. The
   vessel is the best-scoring *chain* of blobs, at most one per slice, each close in position
   and size to the previous one (dynamic programming over the slices). Its HU is the median of
   the cores (components eroded by one voxel) over the whole chain.
4. **Aorta.** Search box 60 mm left to 30 mm right of the spine's centre line and 30 mm behind
   to 60 mm in front of the vertebral bodies; blobs 12-40 mm across, round (>= 0.6) and at least
   40 HU above their ring (so an unenhanced aorta in fat is found too), scored by roundness,
   contrast, size and side (the IVC lies right of the midline). The ladder runs from -40 to
   400 HU, so whichever level separates the aorta from its neighbours is used.
5. **IVC.** The best chain 12-65 mm right of the aorta and from 30 mm behind to 25 mm in front
   of it; only used to keep it out of the portal-vein search.
6. **Portal vein.** Among blobs 7-24 mm across at >= 60 HU and >= 25 HU above their ring
   (not surrounded by lung), centred >= 8 mm right of and >= 12 mm in front of the aorta and
   >= 8 mm in front of the IVC, the largest sustained chain (scored by size, contrast and
   shape, allowed to run obliquely): the main portal vein up to the hilum, usually with the
   superior mesenteric vein below the confluence (both carry the same portal blood).
7. **Decision** (:class:`PhaseRules`), with ``A`` the aorta, ``P`` the portal vein and the
   enhancement ratio ``r = (P - 40) / (A - 40)`` (40 HU: unenhanced blood):

   - both below ``enhanced_hu`` (100 HU), or no portal vein and ``A`` below it: NON_CONTRAST;
   - ``P >= enhanced_hu`` and either ``P >= A - portal_margin_hu`` (10 HU) or
     ``r >= portal_min_ratio`` (0.6): PORTAL_VENOUS;
   - ``A >= arterial_min_aorta_hu`` (200), ``A - P >= arterial_min_gap_hu`` (40) and
     ``r <= arterial_max_ratio`` (0.5): ARTERIAL;
   - no portal vein found but ``A >= arterial_aorta_alone_hu`` (300): ARTERIAL (low
     confidence);
   - anything else (no aorta, no portal vein, or ``r`` between the two ratios): UNKNOWN.

   The ratio rule exists because real portal-venous scans often keep the aorta well above the
   portal vein (the public NIH case: aorta ~234 HU, portal vein ~176 HU, ``r`` ~0.70), which
   the simple "portal vein at or above the aorta" rule would call arterial.
8. **Can the HU be trusted at all?** Checked before step 7, each giving UNKNOWN with its reason:

   - *Header: cone-beam CT* (``inference/_contrast_header.py``): "CBCT", "CONE BEAM",
     "DYNACT" or "XPERCT" in SeriesDescription, ProtocolName, ImageType, ManufacturerModelName
     or AcquisitionDeviceProcessingDescription. CBCT HU are not calibrated (scatter, cupping),
     so neither an enhanced nor an unenhanced aorta can be read from them.
   - *Image: the HU scale* (``inference/_contrast_calibration.py``): on a calibrated CT fat
     reads -100 HU (about -120 to -80) whatever the contrast, and muscle and organs +40
     (unenhanced) to +120 (enhanced). The body's voxels in -400..400 HU are split by Otsu's
     threshold; the mode of the lower class (fat) must lie within -100 +/- 60 HU, the mode of
     the upper class (soft tissue) 100-250 HU above it, and at least 5 % of the body must be
     fat-like. A cone-beam or uncalibrated scan (fat read at -20 or +180 HU, say) fails this,
     and its "enhanced" aorta (the reported CBCT: 319 HU) is not called arterial.

   And for the one low-confidence call, ARTERIAL from the aorta alone (no portal vein found,
   ``A >= 300``), two further checks, UNKNOWN when either fails:

   - *Image: one blood pool.* Unenhanced blood is ~40 HU everywhere, and a scan whose HU are
     shifted keeps the aorta and IVC equal; in an arterial phase the IVC (venous return) is
     far below the aorta. So the IVC, when found, must be at least ``arterial_min_gap_hu``
     (40 HU) below the aorta.
   - *Header: ContrastBolusAgent* (0018,0010) empty or absent (Type 2, PS3.3 C.7.6.4) is weak
     evidence of no contrast: it never overrules a portal vein or an arterial gradient that the
     image shows (the NIH case leaves it empty), but it keeps the aorta alone from being called
     arterial. Without header evidence (a volume with no header) this check is skipped.

``confidence`` is a detection term times a margin term. Detection: the geometric mean of the
aorta's and portal vein's quality (tube length against an expected 60 / 30 mm, times the mean
blob score), the aorta's alone for NON_CONTRAST, half of it for ARTERIAL without a portal vein.
Margin: 0.5 at the decision boundary rising to 1 well inside it. UNKNOWN has confidence 0.
A delayed (equilibrium) phase, with aorta and portal vein equally and moderately enhanced,
reads as PORTAL_VENOUS. When the portal vein is not enhanced (early arterial), the "portal vein"
found may be a neighbouring structure (also when nothing is enhanced); its HU then means little.

Runtime: about 0.8 s for a 512 x 512 x 300 CT on one core (block average ~0.2 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from inference._contrast_calibration import HuCalibration, check_calibration
from inference._contrast_grid import WorkGrid, body_mask, track_spine, working_grid
from inference._contrast_header import PhaseHeader, read_phase_header
from inference._contrast_vessels import (
    VesselTrack,
    locate_aorta,
    locate_ivc,
    locate_portal_vein,
)
from inference.volume import Volume
from inference.volume_io import read_dicom_series

if TYPE_CHECKING:
    from inference.landmark_store import LandmarkStore

__all__ = [
    "ContrastLandmarks",
    "ContrastPhase",
    "ContrastPhaseEstimate",
    "HuCalibration",
    "PhaseHeader",
    "PhaseRules",
    "VesselLandmark",
    "decide_phase",
    "estimate_contrast_phase",
    "estimate_series_phase",
    "locate_contrast_landmarks",
    "phase_from_landmarks",
]

_UNENHANCED_BLOOD_HU = 40.0
_MIN_SLICES = 3


class ContrastPhase(StrEnum):
    """Contrast phase of a CT series."""

    NON_CONTRAST = "non-contrast"
    ARTERIAL = "arterial"
    PORTAL_VENOUS = "portal-venous"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContrastPhaseEstimate:
    """The measured phase.

    Parameters
    ----------
    phase
        The decision.
    aorta_hu
        Median HU of the aortic lumen, ``None`` if the aorta was not found.
    portal_vein_hu
        Median HU of the portal vein, ``None`` if it was not found.
    confidence
        0-1, how clearly the structures were found and how far from a decision boundary.
    reason
        One line for logs and the audit trail (measurements only, never patient data).
    """

    phase: ContrastPhase
    aorta_hu: float | None
    portal_vein_hu: float | None
    confidence: float
    reason: str


@dataclass(frozen=True)
class PhaseRules:
    """Decision thresholds of :func:`estimate_contrast_phase` (HU unless stated).

    Parameters
    ----------
    enhanced_hu
        A vessel at or above this is enhanced; neither aorta nor portal vein: non-contrast.
    portal_margin_hu
        Portal-venous when the portal vein is at least the aorta minus this.
    portal_min_ratio
        Portal-venous when ``(P - 40) / (A - 40)`` is at least this.
    arterial_min_aorta_hu, arterial_min_gap_hu, arterial_max_ratio
        Arterial when the aorta is at least ``arterial_min_aorta_hu``, the portal vein at least
        ``arterial_min_gap_hu`` below it and the ratio at most ``arterial_max_ratio``.
    arterial_aorta_alone_hu
        With no portal vein found, an aorta at or above this still reads arterial.

    Raises
    ------
    ValueError
        If the ratios are not ``0 <= arterial_max_ratio <= portal_min_ratio <= 1`` or a
        margin is negative.
    """

    enhanced_hu: float = 100.0
    portal_margin_hu: float = 10.0
    portal_min_ratio: float = 0.6
    arterial_min_aorta_hu: float = 200.0
    arterial_min_gap_hu: float = 40.0
    arterial_max_ratio: float = 0.5
    arterial_aorta_alone_hu: float = 300.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.arterial_max_ratio <= self.portal_min_ratio <= 1.0:
            raise ValueError("need 0 <= arterial_max_ratio <= portal_min_ratio <= 1")
        if self.portal_margin_hu < 0 or self.arterial_min_gap_hu < 0:
            raise ValueError("margins must not be negative")


@dataclass(frozen=True, eq=False)
class VesselLandmark:
    """A located vessel in world coordinates.

    Parameters
    ----------
    centreline_ras
        ``(n, 3)`` RAS+ millimetres of the cross-section centroids, inferior to superior.
    diameters_mm
        ``(n,)`` area-equivalent diameters.
    hu
        Median HU of the lumen cores.
    length_mm
        Extent along the slice axis.
    quality
        0-1 detection quality.
    """

    centreline_ras: npt.NDArray[np.float64]
    diameters_mm: npt.NDArray[np.float64]
    hu: float
    length_mm: float
    quality: float


@dataclass(frozen=True, eq=False)
class ContrastLandmarks:
    """What the phase check found (for QA overlays and tests).

    Parameters
    ----------
    working_shape
        Shape of the working grid (canonical axes).
    spacing_mm
        Voxel size of the working grid.
    spine_found_fraction
        Fraction of working slices on which a vertebra was seen (0 when no spine at all).
    spine_anterior_ras
        ``(K, 3)`` RAS+ points on the anterior surface of the vertebral bodies at the spine's
        centre line, one per working slice, or ``None``.
    aorta, ivc, portal_vein
        The vessels, ``None`` where not found.
    calibration
        The fat and soft-tissue peaks of the body and whether the HU scale is plausible
        (``None`` where the volume was too short to look).
    """

    working_shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    spine_found_fraction: float
    spine_anterior_ras: npt.NDArray[np.float64] | None
    aorta: VesselLandmark | None
    ivc: VesselLandmark | None
    portal_vein: VesselLandmark | None
    calibration: HuCalibration | None = None


def _landmark(grid: WorkGrid, track: VesselTrack | None) -> VesselLandmark | None:
    if track is None:
        return None
    voxels = np.array([[b.i, b.j, b.k] for b in track.blobs], dtype=np.float64)
    world = (grid.affine @ np.c_[voxels, np.ones(len(voxels))].T).T[:, :3]
    return VesselLandmark(
        centreline_ras=world,
        diameters_mm=np.array([b.diameter_mm for b in track.blobs], dtype=np.float64),
        hu=track.hu,
        length_mm=track.length_mm,
        quality=track.quality,
    )


def locate_contrast_landmarks(volume: Volume) -> ContrastLandmarks:
    """Find the spine, aorta, IVC and portal vein used by :func:`estimate_contrast_phase`.

    Parameters
    ----------
    volume
        A CT volume in Hounsfield units, any orientation (reoriented internally).

    Returns
    -------
    ContrastLandmarks
        Everything found, in RAS+ world millimetres.
    """
    grid = working_grid(volume)
    shape = (int(grid.hu.shape[0]), int(grid.hu.shape[1]), int(grid.hu.shape[2]))
    empty = ContrastLandmarks(shape, grid.spacing, 0.0, None, None, None, None)
    if grid.hu.shape[2] < _MIN_SLICES:
        return empty
    body = body_mask(grid.hu)
    calibration = check_calibration(grid.hu, body)
    spine = track_spine(grid, body)
    if spine is None:
        return ContrastLandmarks(shape, grid.spacing, 0.0, None, None, None, None, calibration)
    ks = np.arange(grid.hu.shape[2], dtype=np.float64)
    front = np.c_[spine.centre_i, spine.anterior_j, ks, np.ones_like(ks)]
    anterior = (grid.affine @ front.T).T[:, :3]
    found = float(np.mean(spine.found))
    aorta = locate_aorta(grid, spine)
    if aorta is None:
        return ContrastLandmarks(
            shape, grid.spacing, found, anterior, None, None, None, calibration
        )
    ivc = locate_ivc(grid, aorta)
    portal = locate_portal_vein(grid, aorta, ivc)
    return ContrastLandmarks(
        shape,
        grid.spacing,
        found,
        anterior,
        _landmark(grid, aorta),
        _landmark(grid, ivc),
        _landmark(grid, portal),
        calibration,
    )


def _ramp(value: float, lo: float, hi: float) -> float:
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else float(value >= hi)


def _estimate(
    phase: ContrastPhase,
    aorta: VesselLandmark | None,
    portal: VesselLandmark | None,
    confidence: float,
    reason: str,
) -> ContrastPhaseEstimate:
    return ContrastPhaseEstimate(
        phase=phase,
        aorta_hu=None if aorta is None else round(aorta.hu, 1),
        portal_vein_hu=None if portal is None else round(portal.hu, 1),
        confidence=round(float(np.clip(confidence, 0.0, 1.0)), 2),
        reason=reason,
    )


def decide_phase(
    aorta: VesselLandmark | None,
    portal: VesselLandmark | None,
    rules: PhaseRules | None = None,
    *,
    ivc: VesselLandmark | None = None,
    calibration: HuCalibration | None = None,
    header: PhaseHeader | None = None,
) -> ContrastPhaseEstimate:
    """Apply the decision rules of the module docstring to located vessels.

    Parameters
    ----------
    aorta, portal
        The located aorta and portal vein (``None`` where not found).
    rules
        Thresholds; the defaults of :class:`PhaseRules` when ``None``.
    ivc
        The located IVC, if any (checked against an aorta-alone arterial call).
    calibration
        The HU-scale check of the image (step 8); skipped when ``None``.
    header
        Header evidence (step 8); skipped when ``None``.

    Returns
    -------
    ContrastPhaseEstimate
        Phase, measurements, confidence and a one-line reason.
    """
    r = rules or PhaseRules()
    unknown = ContrastPhase.UNKNOWN
    if header is not None and header.cone_beam_attribute is not None:
        why = (
            f"cone-beam CT ({header.cone_beam_attribute} says so): HU not calibrated, "
            "phase not decided"
        )
        return _estimate(unknown, aorta, portal, 0.0, why)
    if calibration is not None and not calibration.plausible:
        why = (
            f"HU scale implausible ({calibration.reason}; cone-beam or uncalibrated CT?): "
            "phase not decided"
        )
        return _estimate(unknown, aorta, portal, 0.0, why)
    if aorta is None:
        return _estimate(unknown, None, portal, 0.0, "aorta not found in front of the spine")
    a_hu, a_q = aorta.hu, aorta.quality
    if portal is None:
        if a_hu < r.enhanced_hu:
            margin = 0.5 + 0.5 * _ramp(r.enhanced_hu - a_hu, 0.0, 40.0)
            return _estimate(
                ContrastPhase.NON_CONTRAST,
                aorta,
                None,
                a_q * margin,
                f"aorta {a_hu:.0f} HU < {r.enhanced_hu:.0f} HU and no enhanced portal vein",
            )
        alone = a_hu >= r.arterial_aorta_alone_hu
        if alone and ivc is not None and a_hu - ivc.hu < r.arterial_min_gap_hu:
            why = (
                f"aorta {a_hu:.0f} HU and IVC {ivc.hu:.0f} HU alike (less than "
                f"{r.arterial_min_gap_hu:.0f} HU apart), portal vein not found: "
                "one blood pool, no arterial gradient"
            )
            return _estimate(unknown, aorta, None, 0.0, why)
        if alone and header is not None and not header.contrast_agent_recorded:
            why = (
                f"aorta {a_hu:.0f} HU, portal vein not found and ContrastBolusAgent empty: "
                "not called arterial on the aorta alone"
            )
            return _estimate(unknown, aorta, None, 0.0, why)
        if a_hu >= r.arterial_aorta_alone_hu:
            return _estimate(
                ContrastPhase.ARTERIAL,
                aorta,
                None,
                0.5 * a_q,
                f"aorta {a_hu:.0f} HU >= {r.arterial_aorta_alone_hu:.0f} HU, "
                "portal vein not found (likely unenhanced)",
            )
        return _estimate(
            unknown, aorta, None, 0.0, f"aorta {a_hu:.0f} HU but portal vein not found"
        )
    p_hu = portal.hu
    found = float(np.sqrt(a_q * portal.quality))
    if max(a_hu, p_hu) < r.enhanced_hu:
        # Nothing is enhanced: the aorta alone says so (an unenhanced portal vein is hard to see).
        margin = 0.5 + 0.5 * _ramp(r.enhanced_hu - max(a_hu, p_hu), 0.0, 40.0)
        return _estimate(
            ContrastPhase.NON_CONTRAST,
            aorta,
            portal,
            a_q * margin,
            f"aorta {a_hu:.0f} HU and portal vein {p_hu:.0f} HU both < {r.enhanced_hu:.0f} HU",
        )
    ratio = (p_hu - _UNENHANCED_BLOOD_HU) / max(a_hu - _UNENHANCED_BLOOD_HU, 1.0)
    measured = f"aorta {a_hu:.0f} HU, portal vein {p_hu:.0f} HU, enhancement ratio {ratio:.2f}"
    if p_hu >= r.enhanced_hu and (p_hu >= a_hu - r.portal_margin_hu or ratio >= r.portal_min_ratio):
        margin = 0.5 + 0.5 * _ramp(ratio, r.portal_min_ratio, 0.9)
        why = (
            "portal vein at or above the aorta"
            if p_hu >= a_hu - r.portal_margin_hu
            else f"ratio >= {r.portal_min_ratio:.2f}"
        )
        return _estimate(
            ContrastPhase.PORTAL_VENOUS, aorta, portal, found * margin, f"{measured}: {why}"
        )
    if (
        a_hu >= r.arterial_min_aorta_hu
        and a_hu - p_hu >= r.arterial_min_gap_hu
        and ratio <= r.arterial_max_ratio
    ):
        margin = 0.5 + 0.5 * _ramp(r.arterial_max_ratio - ratio, 0.0, 0.3)
        return _estimate(
            ContrastPhase.ARTERIAL,
            aorta,
            portal,
            found * margin,
            f"{measured}: aorta far above the portal vein",
        )
    return _estimate(unknown, aorta, portal, 0.0, f"{measured}: between arterial and portal-venous")


def estimate_contrast_phase(
    volume: Volume, rules: PhaseRules | None = None, header: PhaseHeader | None = None
) -> ContrastPhaseEstimate:
    """Estimate the contrast phase of an abdominal CT from the aorta and portal vein HU.

    Parameters
    ----------
    volume
        A CT volume in Hounsfield units (e.g. ``read_dicom_series(...).volume``), any
        orientation; it should cover the upper abdomen (portal vein and aorta).
    rules
        Decision thresholds; the defaults of :class:`PhaseRules` when ``None``.
    header
        Header evidence (:func:`estimate_series_phase` reads it); without it the header
        checks of step 8 are skipped.

    Returns
    -------
    ContrastPhaseEstimate
        The phase with the measured aorta and portal-vein HU, a confidence and a reason;
        UNKNOWN (confidence 0) with the reason when the structures cannot be found.
    """
    return phase_from_landmarks(locate_contrast_landmarks(volume), rules, header)


def phase_from_landmarks(
    marks: ContrastLandmarks, rules: PhaseRules | None = None, header: PhaseHeader | None = None
) -> ContrastPhaseEstimate:
    """:func:`estimate_contrast_phase` from landmarks already found in the volume.

    Parameters
    ----------
    marks
        ``locate_contrast_landmarks(volume)``.
    rules, header
        As for :func:`estimate_contrast_phase`.
    """
    if marks.working_shape[2] < _MIN_SLICES:
        slices = marks.working_shape[2]
        why = f"only {slices} slice(s) at {marks.spacing_mm[2]:.1f} mm: too short a volume"
        return _estimate(ContrastPhase.UNKNOWN, None, None, 0.0, why)
    if marks.spine_anterior_ras is None:
        why = "no vertebral column found (not a trunk CT?)"
        return _estimate(ContrastPhase.UNKNOWN, None, None, 0.0, why)
    return decide_phase(
        marks.aorta,
        marks.portal_vein,
        rules,
        ivc=marks.ivc,
        calibration=marks.calibration,
        header=header,
    )


def estimate_series_phase(
    paths: Sequence[Path], store: LandmarkStore | None = None
) -> tuple[str, str]:
    """The contrast phase of a DICOM series' files, as the routing rules read it.

    This is the node's ``PhaseEstimator`` (``dicom_node.series_assembly``): the series is read
    as a volume and :func:`estimate_contrast_phase` decides, with the header evidence of the
    first readable file (ContrastBolusAgent, cone-beam CT; see the module docstring).

    Parameters
    ----------
    paths
        The series' DICOM files.
    store
        Where to keep the landmarks found, for the worker's localiser to reuse
        (:mod:`inference.landmark_store`); not kept when ``None``.

    Returns
    -------
    tuple of str
        ``(phase, reason)``; phase is a :class:`ContrastPhase` value, ``"unknown"`` (with the
        reason) when the files do not form a readable volume.
    """
    try:
        volume = read_dicom_series(list(paths)).volume
    except ValueError as exc:
        return ContrastPhase.UNKNOWN.value, f"volume not readable: {exc}"
    header = None
    for path in paths:
        try:
            header = read_phase_header(dcmread(path, stop_before_pixels=True, force=True))
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        break
    marks = locate_contrast_landmarks(volume)
    if store is not None:
        store.put(paths, marks)
    estimate = phase_from_landmarks(marks, header=header)
    return str(estimate.phase.value), estimate.reason
