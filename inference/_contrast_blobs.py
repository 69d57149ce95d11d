"""Bright round blobs on axial slices, and chaining them into vessels across slices.

A blob is a connected component of ``HU > t`` inside a search box of one slice, for each ``t``
of a threshold ladder (so a vessel is found at whichever level separates it from its
neighbours), that is roughly elliptical (moment-based roundness and fill) and brighter than a
ring around it. :func:`best_chain` then picks the one run of blobs, at most one per slice, that
behaves like a tube: each blob close in position and size to the previous one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["Blob", "BlobLimits", "best_chain", "find_blobs"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
SliceArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BlobLimits:
    """Which components count as blobs.

    Parameters
    ----------
    thresholds
        HU levels of the ladder.
    min_diameter_mm, max_diameter_mm
        Range of the area-equivalent diameter.
    min_roundness
        Minimum ``sqrt(minor / major)`` moment eigenvalue ratio (1 for a circle).
    min_fill
        Minimum area over the area of the moment ellipse (about 1 for an ellipse).
    min_contrast_hu
        Minimum core median minus ring median.
    min_ring_hu
        Minimum ring median (e.g. -300 to refuse vessels surrounded by lung).
    """

    thresholds: tuple[float, ...]
    min_diameter_mm: float
    max_diameter_mm: float
    min_roundness: float
    min_fill: float = 0.75
    min_contrast_hu: float = 30.0
    min_ring_hu: float = -1000.0


#: 4-connectivity in the slice plane: the structure of every labelling, erosion and dilation
#: here (scipy's default for ``label``), made once rather than on each of thousands of calls.
_CROSS: Final = ndimage.generate_binary_structure(2, 1)
_CROSS.setflags(write=False)


@dataclass(frozen=True, eq=False)
class Blob:
    """One candidate vessel cross-section (working-grid voxel units).

    Parameters
    ----------
    k
        Slice index.
    i, j
        Centroid.
    threshold
        Ladder level it was found at.
    diameter_mm
        Area-equivalent diameter.
    roundness, fill
        Shape measures (see :class:`BlobLimits`).
    core_hu
        Median HU of the component eroded by one voxel (the component itself if that empties).
    ring_hu
        Median HU of a two-voxel ring around it.
    core_values
        The core's HU values.
    """

    k: int
    i: float
    j: float
    threshold: float
    diameter_mm: float
    roundness: float
    fill: float
    core_hu: float
    ring_hu: float
    core_values: npt.NDArray[np.float32]

    @property
    def contrast_hu(self) -> float:
        """Core median minus ring median."""
        return self.core_hu - self.ring_hu


def _shape(
    labels: npt.NDArray[np.int32],
    count: int,
    spacing: tuple[float, float],
    grid: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-label area (mm2), centroid (voxels), roundness and fill, from bincounted moments.

    ``grid`` holds the row and column index of every pixel (``np.indices`` of the labels'
    shape), made once per slice for all its threshold levels.
    """
    sx, sy = spacing
    flat = labels.ravel()
    gi, gj = grid
    n = np.bincount(flat, minlength=count + 1).astype(np.float64)
    safe = np.maximum(n, 1.0)
    mi = np.bincount(flat, gi.ravel(), count + 1) / safe
    mj = np.bincount(flat, gj.ravel(), count + 1) / safe
    vii = (np.bincount(flat, (gi * gi).ravel(), count + 1) / safe - mi**2) * sx * sx
    vjj = (np.bincount(flat, (gj * gj).ravel(), count + 1) / safe - mj**2) * sy * sy
    vij = (np.bincount(flat, (gi * gj).ravel(), count + 1) / safe - mi * mj) * sx * sy
    # A voxel is a square, not a point: add its own second moment so tiny blobs stay sane.
    vii += sx * sx / 12.0
    vjj += sy * sy / 12.0
    half_trace = (vii + vjj) / 2.0
    root = np.sqrt(np.maximum(((vii - vjj) / 2.0) ** 2 + vij**2, 0.0))
    major, minor = half_trace + root, np.maximum(half_trace - root, 1e-9)
    area = n * sx * sy
    roundness = np.sqrt(minor / major)
    fill = area / (4.0 * np.pi * np.sqrt(major * minor))
    return area, mi, mj, roundness, fill


def find_blobs(
    hu: SliceArray,
    k: int,
    box: tuple[int, int, int, int],
    spacing: tuple[float, float],
    limits: BlobLimits,
    exclude: BoolArray | None = None,
) -> list[Blob]:
    """Blobs of one axial slice inside ``box``, over the whole threshold ladder.

    Parameters
    ----------
    hu
        The slice, ``(I, J)``.
    k
        Its index (stored on the blobs).
    box
        ``(i0, i1, j0, j1)`` search window (clipped to the slice); components touching its
        edge are not blobs.
    spacing
        ``(sx, sy)`` in mm.
    limits
        Acceptance limits.
    exclude
        ``(I, J)`` voxels that can never belong to a blob (e.g. the vertebra).

    Returns
    -------
    list of Blob
        Every accepted component at every level (nested duplicates included).
    """
    i0, i1 = max(box[0], 0), min(box[1], hu.shape[0])
    j0, j1 = max(box[2], 0), min(box[3], hu.shape[1])
    if i1 - i0 < 4 or j1 - j0 < 4:
        return []
    crop = hu[i0:i1, j0:j1]
    allowed = np.ones(crop.shape, dtype=bool) if exclude is None else ~exclude[i0:i1, j0:j1]
    min_area = np.pi * (limits.min_diameter_mm / 2.0) ** 2
    max_area = np.pi * (limits.max_diameter_mm / 2.0) ** 2
    blobs: list[Blob] = []
    grid = np.indices(crop.shape, dtype=np.float64)
    for level in limits.thresholds:
        labels, count = ndimage.label((crop > level) & allowed, structure=_CROSS)
        if count == 0:
            continue
        area, mi, mj, roundness, fill = _shape(labels, count, spacing, (grid[0], grid[1]))
        ok = (
            (area >= min_area)
            & (area <= max_area)
            & (roundness >= limits.min_roundness)
            & (fill >= limits.min_fill)
        )
        ok[0] = False
        edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        ok[edge] = False
        if not ok.any():
            continue
        objects = ndimage.find_objects(labels)
        for label in np.flatnonzero(ok):
            blob = _measure(crop, labels, int(label), objects[label - 1], level)
            if (
                blob is None
                or blob[1] - blob[2] < limits.min_contrast_hu
                or blob[2] < limits.min_ring_hu
            ):
                continue
            core_values, core_hu, ring_hu = blob
            blobs.append(
                Blob(
                    k=k,
                    i=float(i0 + mi[label]),
                    j=float(j0 + mj[label]),
                    threshold=float(level),
                    diameter_mm=float(2.0 * np.sqrt(area[label] / np.pi)),
                    roundness=float(roundness[label]),
                    fill=float(fill[label]),
                    core_hu=core_hu,
                    ring_hu=ring_hu,
                    core_values=core_values,
                )
            )
    return blobs


def _measure(
    crop: SliceArray,
    labels: npt.NDArray[np.int32],
    label: int,
    where: tuple[slice, slice] | None,
    level: float,
) -> tuple[npt.NDArray[np.float32], float, float] | None:
    """Core values, core median and ring median of one component."""
    if where is None:
        return None
    pad = 3
    a0, a1 = max(where[0].start - pad, 0), min(where[0].stop + pad, crop.shape[0])
    b0, b1 = max(where[1].start - pad, 0), min(where[1].stop + pad, crop.shape[1])
    values = crop[a0:a1, b0:b1]
    region = labels[a0:a1, b0:b1] == label
    core = ndimage.binary_erosion(region, structure=_CROSS)
    if np.count_nonzero(core) < 2:
        core = region
    ring = ndimage.binary_dilation(region, structure=_CROSS, iterations=2) & ~region
    if not ring.any():
        return None
    core_values = values[core].astype(np.float32)
    return core_values, float(np.median(core_values)), float(np.median(values[ring]))


def best_chain(
    blobs: Sequence[Blob],
    spacing: tuple[float, float, float],
    score: Callable[[Blob], float],
    *,
    max_gap_mm: float = 10.0,
    step_mm: float = 5.0,
    slope: float = 0.6,
    size_ratio: float = 1.6,
) -> list[Blob]:
    """The highest-scoring tube: a run of blobs, one per slice at most, sorted by slice.

    Two blobs ``dk`` slices apart may follow each other when ``dk`` spans at most
    ``max_gap_mm``, their centroids are at most ``step_mm + slope * dk * sk`` apart in the
    slice plane, and their diameters differ by at most ``size_ratio``. The chain maximises the
    sum of ``score`` (blobs scoring 0 or less are dropped first).

    Returns
    -------
    list of Blob
        The chain (empty when no blob scores above 0).
    """
    scored = [(b, score(b)) for b in blobs]
    kept = sorted((item for item in scored if item[1] > 0.0), key=lambda item: item[0].k)
    if not kept:
        return []
    sx, sy, sz = spacing
    ks = np.array([b.k for b, _ in kept])
    ii = np.array([b.i for b, _ in kept]) * sx
    jj = np.array([b.j for b, _ in kept]) * sy
    dd = np.array([b.diameter_mm for b, _ in kept])
    own = np.array([s for _, s in kept])
    total = own.copy()
    previous = np.full(len(kept), -1)
    max_skip = max(1, int(max_gap_mm / sz + 1e-6))
    for a in range(len(kept)):
        lo = int(np.searchsorted(ks, ks[a] - max_skip, side="left"))
        hi = int(np.searchsorted(ks, ks[a], side="left"))
        if hi <= lo:
            continue
        b = np.arange(lo, hi)
        dk = ks[a] - ks[b]
        near = np.hypot(ii[b] - ii[a], jj[b] - jj[a]) <= step_mm + slope * dk * sz
        ratio = np.maximum(dd[b], dd[a]) / np.minimum(dd[b], dd[a])
        ok = near & (ratio <= size_ratio)
        if not ok.any():
            continue
        candidates = b[ok]
        best = int(candidates[np.argmax(total[candidates])])
        total[a] = own[a] + total[best]
        previous[a] = best
    node = int(np.argmax(total))
    chain: list[Blob] = []
    while node >= 0:
        chain.append(kept[node][0])
        node = int(previous[node])
    return chain[::-1]
