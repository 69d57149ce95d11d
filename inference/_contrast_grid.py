"""Working grid, body mask and spine track for :mod:`inference.contrast_phase`.

The contrast-phase check never looks at full-resolution voxels: the volume is block-averaged by
integer factors to about 2.5 mm (an exact partial-volume average, no interpolation) and
reoriented to the canonical RAS+ axes (``i`` towards the patient's right, ``j`` anterior, ``k``
superior), so everything downstream works on a ~170 x 170 x 100 float32 array.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from inference.volume import Volume, to_canonical

__all__ = ["SpineTrack", "WorkGrid", "body_mask", "track_spine", "working_grid"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_BONE_HU = 200.0
_BODY_HU = -400.0
_MIN_VERTEBRA_MM2 = 150.0
_MAX_SPINE_OFF_MIDLINE_MM = 40.0
_MAX_SPINE_REL_AP = 0.55
_VERTEBRA_HALF_WIDTH_MM = 25.0
_ANTERIOR_BAND_MM = 12.0
_MAX_HOLE_MM2 = 2500.0
_PATH_HALF_WINDOW_MM = 30.0
_PATH_TOLERANCE_MM = 20.0


@dataclass(frozen=True, eq=False)
class WorkGrid:
    """A block-averaged canonical copy of a CT.

    Parameters
    ----------
    hu
        float32 Hounsfield units, shape ``(I, J, K)``, canonical RAS+ axes.
    affine
        4x4 voxel-to-RAS+ matrix of ``hu``.
    spacing
        Voxel size in mm along ``i``, ``j``, ``k``.
    """

    hu: npt.NDArray[np.float32]
    affine: FloatArray
    spacing: tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class SpineTrack:
    """The vertebral column, slice by slice (voxel units of the working grid).

    Parameters
    ----------
    centre_i
        ``(K,)`` left-right centre of the vertebra, interpolated where not found.
    anterior_j
        ``(K,)`` anterior surface of the vertebral bodies (most anterior bone within 12 mm of
        the centre line, carried over the discs by a running maximum), interpolated.
    found
        ``(K,)`` whether a vertebra was seen on the slice itself.
    exclusion
        ``(I, J, K)`` convex hull of each vertebra (the nearest found slice's on the others),
        dilated by one voxel: never part of a vessel.
    """

    centre_i: FloatArray
    anterior_j: FloatArray
    found: BoolArray
    exclusion: BoolArray


def working_grid(volume: Volume, target_mm: float = 2.5) -> WorkGrid:
    """Block-average ``volume`` to about ``target_mm`` voxels and reorient it to canonical.

    Each axis is reduced by the integer factor closest to ``target_mm / spacing`` (at least 1,
    at most the axis length); a remainder of fewer voxels than the factor is dropped.

    Parameters
    ----------
    volume
        A CT volume in Hounsfield units, any orientation.
    target_mm
        Wanted voxel size in mm.

    Returns
    -------
    WorkGrid
        The averaged copy (non-finite input values count as air).
    """
    array = volume.array
    factors = [
        min(max(1, int(target_mm / s + 0.5)), n)
        for s, n in zip(volume.spacing, array.shape, strict=True)
    ]
    sizes = [n // f for n, f in zip(array.shape, factors, strict=True)]
    out = np.zeros(sizes, dtype=np.float32)
    # A few output rows at a time, so their input rows stay in cache through all the block
    # offsets (the same additions in the same order per voxel, 2.5x faster at 300 slices).
    f0 = factors[0]
    rows = max(1, (1 << 21) // max(1, f0 * array.shape[1] * array.shape[2] * array.itemsize))
    for start in range(0, sizes[0], rows):
        stop = min(start + rows, sizes[0])
        piece = out[start:stop]
        for o0, o1, o2 in itertools.product(*(range(f) for f in factors)):
            block = array[
                start * f0 + o0 : stop * f0 : f0,
                o1 : sizes[1] * factors[1] : factors[1],
                o2 : sizes[2] * factors[2] : factors[2],
            ]
            np.add(piece, block, out=piece, casting="unsafe")
    out /= np.float32(np.prod(factors))
    if not np.isfinite(out).all():
        out = np.nan_to_num(out, nan=-1000.0, posinf=3071.0, neginf=-1024.0)
    step = np.eye(4)
    step[:3, :3] = np.diag(np.asarray(factors, dtype=np.float64))
    step[:3, 3] = [(f - 1) / 2.0 for f in factors]
    canonical = to_canonical(Volume(out, volume.affine @ step))
    hu = np.ascontiguousarray(canonical.array, dtype=np.float32)
    return WorkGrid(hu, canonical.affine, canonical.spacing)


def body_mask(hu: npt.NDArray[np.float32]) -> BoolArray:
    """The patient's body: the largest 3D component above -400 HU, holes filled per slice."""
    mask = hu > _BODY_HU
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    # In-plane connectivity only, with an empty slice either side so that the first and last
    # slices are not all "border": holes are filled slice by slice in one call.
    in_plane = ndimage.generate_binary_structure(3, 1)
    in_plane[:, :, 0] = False
    in_plane[:, :, 2] = False
    padded = np.pad(body, ((0, 0), (0, 0), (1, 1)))
    filled: BoolArray = ndimage.binary_fill_holes(padded, structure=in_plane)[:, :, 1:-1]
    return filled


def _hull_mask(points: FloatArray, shape: tuple[int, int]) -> BoolArray:
    """Pixels of a ``shape`` slice inside the convex hull of ``points`` (``(n, 2)`` indices)."""
    mask = np.zeros(shape, dtype=bool)
    lo = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 1, shape)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        mask[points[:, 0].astype(int), points[:, 1].astype(int)] = True
        return mask
    gi, gj = np.mgrid[lo[0] : hi[0], lo[1] : hi[1]]
    grid = np.stack([gi.ravel(), gj.ravel()], axis=1).astype(np.float64)
    inside = np.all(grid @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-6, axis=1)
    mask[lo[0] : hi[0], lo[1] : hi[1]] = inside.reshape(gi.shape)
    return mask


@dataclass(frozen=True, eq=False)
class _Bone:
    """One candidate vertebra on one slice."""

    centre_i: float
    centre_j: float
    area_mm2: float
    mask: BoolArray


def _bone_mask(hu: npt.NDArray[np.float32], body: BoolArray, pixel_mm2: float) -> BoolArray:
    """Bone on one slice, with small enclosed holes (the cancellous core) filled."""
    bone = (hu > _BONE_HU) & body
    holes = ndimage.binary_fill_holes(bone) & ~bone
    labels, count = ndimage.label(holes)
    if count:
        small = np.bincount(labels.ravel(), minlength=count + 1) * pixel_mm2 <= _MAX_HOLE_MM2
        small[0] = False
        bone |= small[labels]
    return bone


def _candidates(
    hu: npt.NDArray[np.float32], body: BoolArray, spacing: tuple[float, float, float]
) -> list[_Bone]:
    """Bone components of one slice that could be the vertebra (posterior half, near midline)."""
    sx, sy, _ = spacing
    ii, jj = np.nonzero(body)
    if ii.size == 0:
        return []
    mid_i = (ii.min() + ii.max()) / 2.0
    posterior, extent = float(jj.min()), float(max(jj.max() - jj.min(), 1))
    bone = _bone_mask(hu, body, sx * sy)
    labels, count = ndimage.label(bone)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:] * sx * sy
    centres = np.asarray(ndimage.center_of_mass(bone, labels, index), dtype=np.float64)
    ok = (
        (area >= _MIN_VERTEBRA_MM2)
        & (np.abs(centres[:, 0] - mid_i) * sx <= _MAX_SPINE_OFF_MIDLINE_MM)
        & ((centres[:, 1] - posterior) / extent <= _MAX_SPINE_REL_AP)
    )
    return [
        _Bone(float(centres[n, 0]), float(centres[n, 1]), float(area[n]), labels == n + 1)
        for n in np.flatnonzero(ok)
    ]


def _front_and_hull(bone: _Bone, sx: float) -> tuple[float, BoolArray]:
    """Anterior surface (``j``) near the centre line, and the convex hull of the vertebra."""
    pi, pj = np.nonzero(bone.mask)
    band = np.abs(pi - bone.centre_i) * sx <= _ANTERIOR_BAND_MM
    anterior = float(pj[band].max()) if band.any() else float(pj.max())
    wide = np.abs(pi - bone.centre_i) * sx <= _VERTEBRA_HALF_WIDTH_MM
    points = np.stack([pi[wide], pj[wide]], axis=1).astype(np.float64)
    return anterior, _hull_mask(points, bone.mask.shape)


def _running_median(values: FloatArray, half_window: int) -> FloatArray:
    """Median of the finite values within ``half_window`` slices (NaN where there are none)."""
    out = np.full(values.shape, np.nan)
    for k in range(len(values)):
        near = values[max(0, k - half_window) : k + half_window + 1]
        near = near[np.isfinite(near)]
        if near.size:
            out[k] = float(np.median(near))
    return out


def track_spine(grid: WorkGrid, body: BoolArray) -> SpineTrack | None:
    """Follow the vertebral column: the posterior-midline bone (> 200 HU) on each slice.

    On each slice the candidates are bone components (small enclosed holes filled) of at least
    150 mm2 in the posterior half of the body within 40 mm of its midline. The largest is the
    first guess; the final pick is the largest candidate within 20 mm of the running median
    (over 60 mm of slices) of the first guesses, so that an enhanced aorta above 200 HU on a
    disc level is not taken for bone.

    Parameters
    ----------
    grid
        The working grid.
    body
        Its body mask (:func:`body_mask`).

    Returns
    -------
    SpineTrack or None
        ``None`` when no slice shows a vertebra.
    """
    hu = grid.hu
    sx, sy, sz = grid.spacing
    n_k = hu.shape[2]
    candidates = [_candidates(hu[:, :, k], body[:, :, k], grid.spacing) for k in range(n_k)]
    # First guess: the largest candidate. Where the vertebral body is missing (a disc) a bright
    # aorta can be the largest, so the final pick must lie on the column's median path.
    largest = [max(c, key=lambda b: b.area_mm2) if c else None for c in candidates]
    first_i = np.array([np.nan if b is None else b.centre_i for b in largest])
    first_j = np.array([np.nan if b is None else b.centre_j for b in largest])
    half = max(1, round(_PATH_HALF_WINDOW_MM / sz))
    path_i, path_j = _running_median(first_i, half), _running_median(first_j, half)
    centre = np.full(n_k, np.nan)
    anterior = np.full(n_k, np.nan)
    hulls: dict[int, BoolArray] = {}
    for k, found in enumerate(candidates):
        near = [
            b
            for b in found
            if abs(b.centre_j - path_j[k]) * sy <= _PATH_TOLERANCE_MM
            and abs(b.centre_i - path_i[k]) * sx <= _PATH_TOLERANCE_MM
        ]
        if near:
            best = max(near, key=lambda b: b.area_mm2)
            centre[k] = best.centre_i
            anterior[k], hulls[k] = _front_and_hull(best, sx)
    ok = np.isfinite(centre)
    if not ok.any():
        return None
    ks = np.arange(n_k)
    # Disc levels show only posterior elements: carry the vertebral bodies' front over them.
    reach = max(1, round(8.0 / sz))
    filled = np.where(ok, anterior, -np.inf)
    running = ndimage.maximum_filter1d(filled, size=2 * reach + 1, mode="nearest")
    anterior = np.where(np.isfinite(running), running, np.nan)
    good = np.isfinite(anterior)
    anterior_i = np.interp(ks, ks[good], anterior[good])
    centre_i = np.interp(ks, ks[ok], centre[ok])
    found_ks = np.flatnonzero(ok)
    exclusion = np.zeros(hu.shape, dtype=bool)
    grow = ndimage.generate_binary_structure(2, 1)
    for k in range(n_k):
        nearest = int(found_ks[np.argmin(np.abs(found_ks - k))])
        exclusion[:, :, k] = ndimage.binary_dilation(hulls[nearest], structure=grow)
    return SpineTrack(centre_i, anterior_i, ok, exclusion)
