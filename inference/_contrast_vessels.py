"""Locate the abdominal aorta, the inferior vena cava and the portal vein on a working grid.

All three are found the same way (:mod:`inference._contrast_blobs`): round bright blobs in a
search box placed from anatomy already found (spine -> aorta -> IVC -> portal vein), chained
into the best-scoring tube. Positions are in working-grid voxels; ``i`` grows towards the
patient's right and ``j`` anteriorly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference._contrast_blobs import Blob, BlobLimits, best_chain, find_blobs
from inference._contrast_grid import SpineTrack, WorkGrid

__all__ = ["VesselTrack", "locate_aorta", "locate_ivc", "locate_portal_vein"]

FloatArray = npt.NDArray[np.float64]

_MIN_AORTA_BLOBS = 4
_MIN_VEIN_BLOBS = 3
_AORTA_LIMITS = BlobLimits(
    thresholds=(-40, -10, 20, 50, 80, 110, 140, 170, 200, 240, 280, 330, 400),
    min_diameter_mm=12.0,
    max_diameter_mm=40.0,
    min_roundness=0.6,
    min_fill=0.8,
    min_contrast_hu=40.0,
)
_IVC_LIMITS = BlobLimits(
    thresholds=(-10, 20, 50, 80, 110, 140, 170, 200),
    min_diameter_mm=10.0,
    max_diameter_mm=40.0,
    min_roundness=0.35,
    min_fill=0.75,
    min_contrast_hu=30.0,
)
_PORTAL_LIMITS = BlobLimits(
    thresholds=(60, 80, 100, 120, 140, 160, 180, 200, 230, 260, 300),
    min_diameter_mm=7.0,
    max_diameter_mm=24.0,
    min_roundness=0.3,
    min_fill=0.7,
    min_contrast_hu=25.0,
    min_ring_hu=-300.0,
)


@dataclass(frozen=True, eq=False)
class VesselTrack:
    """A vessel followed over several slices.

    Parameters
    ----------
    blobs
        One cross-section per slice where it was seen, sorted by slice.
    hu
        Median HU of all cores together.
    length_mm
        Extent along ``k`` from the first to the last cross-section (one slice counts one
        slice thickness).
    quality
        0-1: how clearly it was seen (extent against the expected extent, times the mean score).
    """

    blobs: tuple[Blob, ...]
    hu: float
    length_mm: float
    quality: float

    def centre_at(self, k: int) -> tuple[float, float] | None:
        """Centroid ``(i, j)`` on slice ``k``, interpolated between cross-sections.

        Returns ``None`` outside the track's slice range.
        """
        ks = np.array([b.k for b in self.blobs])
        if k < ks[0] or k > ks[-1]:
            return None
        i = float(np.interp(k, ks, [b.i for b in self.blobs]))
        j = float(np.interp(k, ks, [b.j for b in self.blobs]))
        return i, j

    def slices(self) -> range:
        """Slice indices from the first to the last cross-section."""
        return range(self.blobs[0].k, self.blobs[-1].k + 1)


def _track(
    chain: list[Blob],
    spacing: tuple[float, float, float],
    expected_mm: float,
    score: float,
    min_blobs: int,
) -> VesselTrack | None:
    """The chain as a track, or ``None`` when it has fewer than ``min_blobs`` cross-sections."""
    if len(chain) < min_blobs:
        return None
    values = np.concatenate([b.core_values for b in chain])
    length = (chain[-1].k - chain[0].k + 1) * spacing[2]
    quality = float(np.clip(length / expected_mm, 0.0, 1.0) * np.clip(score, 0.0, 1.0))
    return VesselTrack(tuple(chain), float(np.median(values)), float(length), quality)


def _ramp(value: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, linear between."""
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def locate_aorta(grid: WorkGrid, spine: SpineTrack) -> VesselTrack | None:
    """The aorta: the persistent, round, high-contrast tube in front of the vertebral bodies.

    Search box per slice: 60 mm left to 30 mm right of the spine's centre line, 30 mm behind
    to 60 mm in front of the vertebral bodies' anterior surface, vertebra excluded. Blobs 12-40
    mm across, round (>= 0.6) and >= 40 HU above their ring are scored by roundness, contrast,
    size and side (left of or on the midline preferred, where the IVC is not).
    """
    sx, sy, _ = grid.spacing
    blobs: list[Blob] = []
    for k in range(grid.hu.shape[2]):
        ci, front = spine.centre_i[k], spine.anterior_j[k]
        box = (int(ci - 60 / sx), int(ci + 30 / sx) + 1, int(front - 30 / sy), int(front + 60 / sy))
        blobs += find_blobs(
            grid.hu[:, :, k], k, box, (sx, sy), _AORTA_LIMITS, spine.exclusion[:, :, k]
        )

    def score(blob: Blob) -> float:
        right_mm = (blob.i - spine.centre_i[blob.k]) * sx
        side = 1.0 if right_mm <= 8.0 else 0.4
        size = 1.0 if 15.0 <= blob.diameter_mm <= 34.0 else 0.6
        shape = _ramp(blob.roundness, 0.5, 0.9) * _ramp(blob.fill, 0.7, 0.9)
        return side * size * shape * _ramp(blob.contrast_hu, 20.0, 120.0)

    chain = best_chain(blobs, grid.spacing, score, step_mm=5.0, slope=0.6, size_ratio=1.5)
    mean = float(np.mean([score(b) for b in chain])) if chain else 0.0
    return _track(chain, grid.spacing, 60.0, mean, min_blobs=_MIN_AORTA_BLOBS)


def locate_ivc(grid: WorkGrid, aorta: VesselTrack) -> VesselTrack | None:
    """The inferior vena cava: a round-to-oval tube 10-70 mm right of the aorta, beside it.

    Only needed to keep it out of the portal-vein search; ``None`` when not seen (it is often
    indistinct inside the liver or before it enhances).
    """
    sx, sy, _ = grid.spacing
    blobs: list[Blob] = []
    for k in aorta.slices():
        centre = aorta.centre_at(k)
        if centre is None:
            continue
        ai, aj = centre
        box = (int(ai + 5 / sx), int(ai + 80 / sx) + 1, int(aj - 40 / sy), int(aj + 40 / sy) + 1)
        for blob in find_blobs(grid.hu[:, :, k], k, box, (sx, sy), _IVC_LIMITS):
            right_mm, front_mm = (blob.i - ai) * sx, (blob.j - aj) * sy
            if 12.0 <= right_mm <= 65.0 and -30.0 <= front_mm <= 25.0:
                blobs.append(blob)

    def score(blob: Blob) -> float:
        shape = _ramp(blob.roundness, 0.3, 0.7) * _ramp(blob.fill, 0.7, 0.9)
        return shape * _ramp(blob.contrast_hu, 20.0, 100.0)

    chain = best_chain(blobs, grid.spacing, score, step_mm=6.0, slope=0.6, size_ratio=1.7)
    mean = float(np.mean([score(b) for b in chain])) if chain else 0.0
    return _track(chain, grid.spacing, 40.0, mean, min_blobs=_MIN_VEIN_BLOBS)


def locate_portal_vein(
    grid: WorkGrid, aorta: VesselTrack, ivc: VesselTrack | None
) -> VesselTrack | None:
    """The portal vein (with the SMV below the confluence): the largest sustained bright tube
    in front of and to the right of the aorta that is not the IVC.

    Search box per slice: 5-95 mm right of and 5-85 mm in front of the aorta; blobs 7-24 mm
    across at >= 60 HU, >= 25 HU above their ring and not surrounded by lung (ring >= -300 HU),
    centred >= 8 mm right and >= 12 mm in
    front of the aorta, and >= 8 mm in front of the IVC where that is known, scored by size,
    contrast and shape; the chain may run obliquely (the portal vein climbs towards the hilum).
    """
    sx, sy, _ = grid.spacing
    blobs: list[Blob] = []
    for k in aorta.slices():
        centre = aorta.centre_at(k)
        if centre is None:
            continue
        ai, aj = centre
        box = (int(ai + 5 / sx), int(ai + 95 / sx) + 1, int(aj + 5 / sy), int(aj + 85 / sy) + 1)
        for blob in find_blobs(grid.hu[:, :, k], k, box, (sx, sy), _PORTAL_LIMITS):
            if (blob.i - ai) * sx < 8.0 or (blob.j - aj) * sy < 12.0:
                continue
            cava = ivc.centre_at(k) if ivc is not None else None
            if cava is not None and (blob.j - cava[1]) * sy < 8.0:
                continue
            blobs.append(blob)

    def score(blob: Blob) -> float:
        size = _ramp(blob.diameter_mm, 5.0, 14.0)
        shape = _ramp(blob.roundness, 0.2, 0.6) * _ramp(blob.fill, 0.6, 0.85)
        return size * shape * _ramp(blob.contrast_hu, 10.0, 80.0)

    chain = best_chain(blobs, grid.spacing, score, step_mm=5.0, slope=1.2, size_ratio=1.8)
    mean = float(np.mean([score(b) for b in chain])) if chain else 0.0
    return _track(chain, grid.spacing, 30.0, mean, min_blobs=_MIN_VEIN_BLOBS)
