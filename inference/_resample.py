"""Resampling helpers for :mod:`inference.volume_io` (scipy.ndimage and exact index copies)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume

__all__ = ["check_order", "exact_index_map", "output_dtype", "sample", "smoothed_sample"]


def check_order(order: int) -> None:
    """Reject anything but an integer spline order 0-5."""
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 5:
        raise ValueError(f"interpolation order must be an integer 0-5, got {order!r}")


def output_dtype(dtype: np.dtype[np.generic], order: int) -> np.dtype[np.generic]:
    """Nearest neighbour keeps the dtype (bool via uint8); interpolation gives float32/64."""
    if order == 0:
        return np.dtype(np.uint8) if dtype == np.bool_ else dtype
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def sample(
    array: npt.NDArray[np.generic],
    matrix: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    order: int,
    *,
    mode: str,
    cval: float,
) -> npt.NDArray[np.generic]:
    """``affine_transform`` wrapper: output index ``o`` reads input ``matrix @ o + offset``."""
    out_dtype = output_dtype(array.dtype, order)
    source = array.astype(out_dtype, copy=False) if array.dtype != out_dtype else array
    result = ndimage.affine_transform(
        source,
        matrix,
        offset=offset,
        output_shape=shape,
        output=out_dtype,
        order=order,
        mode=mode,
        cval=cval,
        prefilter=order > 1,
    )
    out: npt.NDArray[np.generic] = np.asarray(result)
    return out.astype(np.bool_) if array.dtype == np.bool_ else out


def exact_index_map(
    moving: Volume,
    reference: Volume,
    mapping: npt.NDArray[np.float64],
    order: int,
    fill_value: float,
) -> npt.NDArray[np.generic] | None:
    """Copy voxels directly when ``mapping`` is a signed permutation plus an integer shift."""
    rounded = np.round(mapping)
    if not np.allclose(mapping, rounded, atol=1e-4):
        return None
    rot = rounded[:3, :3]
    if not (
        np.all(np.abs(rot).sum(axis=0) == 1)
        and np.all(np.abs(rot).sum(axis=1) == 1)
        and np.all(np.isin(rot, (-1.0, 0.0, 1.0)))
    ):
        return None
    # Output axis a reads moving axis src[a], walking it with sign[a] from shift[src[a]].
    src = [int(np.flatnonzero(rot[:, a])[0]) for a in range(3)]
    sign = [int(rot[src[a], a]) for a in range(3)]
    arr = np.transpose(moving.array, src)
    dtype = arr.dtype if order == 0 else output_dtype(arr.dtype, order)
    out = np.full(reference.shape, fill_value, dtype=dtype)
    out_sel: list[slice] = []
    in_sel: list[slice] = []
    for a in range(3):
        # Output index o reads input index sign * o + shift: keep the o that land inside.
        n_in, n_out, shift = moving.shape[src[a]], reference.shape[a], int(rounded[src[a], 3])
        lo, hi = (-shift, n_in - shift) if sign[a] > 0 else (shift - n_in + 1, shift + 1)
        lo, hi = max(lo, 0), min(hi, n_out)
        if lo >= hi:
            return out
        first, last = sign[a] * lo + shift, sign[a] * (hi - 1) + shift
        out_sel.append(slice(lo, hi))
        in_sel.append(
            slice(first, last + 1) if sign[a] > 0 else slice(first, last - 1 if last else None, -1)
        )
    out[tuple(out_sel)] = arr[tuple(in_sel)]
    return out


def _crop_and_filter(
    array: npt.NDArray[np.generic],
    sigma: Sequence[float],
    needed: Sequence[npt.NDArray[np.intp]],
    truncate: float,
) -> npt.NDArray[np.float32]:
    """``gaussian_filter(array, sigma, mode="nearest")[np.ix_(*needed)]`` in float32.

    The 1-D passes run in ``gaussian_filter``'s order (axis 0, 1, 2) on a crop that reaches one
    kernel radius beyond the needed voxels, and each pass keeps only the needed indices of its
    axis before the next pass: every kept value sums the same inputs with the same weights in
    the same order as the full filter, so the values are the same, at a fraction of the work
    when the sampled grid is much coarser or smaller than ``array``.
    """
    crop: list[slice] = []
    for axis, index in enumerate(needed):
        s = float(sigma[axis])
        radius = int(truncate * s + 0.5) if s > 1e-15 else 0
        lo = max(int(index[0]) - radius, 0)
        hi = min(int(index[-1]) + radius + 1, array.shape[axis])
        crop.append(slice(lo, hi))
    work = np.asarray(array[tuple(crop)], dtype=np.float32)
    for axis, index in enumerate(needed):
        s = float(sigma[axis])
        kept = index - crop[axis].start
        if s <= 1e-15:
            work = np.take(work, kept, axis=axis)
        elif 3 * len(kept) < work.shape[axis]:
            work = _filter_at(work, s, axis, kept, truncate)
        else:
            work = ndimage.gaussian_filter1d(
                work, s, axis=axis, mode="nearest", truncate=truncate, output=np.float32
            )
            work = np.take(work, kept, axis=axis)
    return work


def _filter_at(
    work: npt.NDArray[np.float32],
    sigma: float,
    axis: int,
    index: npt.NDArray[np.intp],
    truncate: float,
) -> npt.NDArray[np.float32]:
    """``gaussian_filter1d(work, sigma, axis, mode="nearest")`` at ``index`` of ``axis`` only.

    The first pass of a coarse grid runs over the whole crop but is read at a few indices of
    its axis: computing only those, with ``correlate1d``'s arithmetic for a symmetric kernel
    (double sums of the centre times its weight plus each mirrored pair times theirs, innermost
    pair first, rounded once to float32), gives the same values in a fraction of the time.
    """
    radius = int(truncate * sigma + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    # The filter's own weights: an impulse reproduces each weight exactly (one product by 1).
    weights = ndimage.gaussian_filter1d(impulse, sigma, mode="constant", truncate=truncate)
    source = np.moveaxis(work, axis, 0)
    last = source.shape[0] - 1
    out = np.empty((len(index), *source.shape[1:]), dtype=np.float32)
    # Blocks of the next axis small enough for the double accumulator to stay in cache.
    row = int(np.prod(source.shape[2:], dtype=np.int64)) * len(index) * 8
    step = max(1, (1 << 18) // max(row, 1))
    below = [np.clip(index - j, 0, last) for j in range(radius + 1)]
    above = [np.clip(index + j, 0, last) for j in range(radius + 1)]
    for begin in range(0, source.shape[1], step):
        part = source[:, begin : begin + step]
        total = part[index].astype(np.float64) * weights[radius]
        for j in range(1, radius + 1):
            total += (part[below[j]].astype(np.float64) + part[above[j]]) * weights[radius + j]
        out[:, begin : begin + step] = total
    return np.moveaxis(out, 0, axis)


def smoothed_sample(
    array: npt.NDArray[np.generic],
    sigma: Sequence[float],
    matrix: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    *,
    mode: str,
    cval: float,
    truncate: float = 4.0,
) -> npt.NDArray[np.float32]:
    """Linear sampling of the Gaussian-smoothed ``array``, smoothing only where it is sampled.

    The same values (to float rounding) as ``sample(gaussian_filter(array.astype(float32),
    sigma, mode="nearest", truncate=truncate), matrix, offset, shape, 1, ...)``: the
    anti-aliasing filter of a coarse resampling used to smooth the whole volume (seconds for a
    300-slice CT with a wide kernel) although a coarse grid reads only two neighbours per axis
    and per sample, and a cube reads only its own region.

    Parameters
    ----------
    array
        Input volume (any real dtype; filtered in float32).
    sigma
        Gaussian standard deviation per axis, in voxels of ``array`` (0: not smoothed).
    matrix, offset
        Output index ``o`` reads input ``matrix @ o + offset`` (a 1-D ``matrix`` is a diagonal).
    shape
        Output shape.
    mode, cval
        Outside handling of the sampling, as for :func:`scipy.ndimage.affine_transform`.
    truncate
        Kernel radius in standard deviations (``gaussian_filter``'s default 4).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.
    """
    full = np.diag(matrix) if np.ndim(matrix) == 1 else np.asarray(matrix, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    n = np.asarray(array.shape)
    # When every input axis follows one output axis (no obliquity), the samples form a product
    # grid and each axis needs only the two neighbours of its own sample positions.
    if all(np.count_nonzero(full[a]) == 1 for a in range(3)):
        return _separable_sample(array, sigma, full, offset, shape, mode, cval, truncate)
    corners = np.array([[(0, shape[a] - 1)[b >> a & 1] for a in range(3)] for b in range(8)])
    reach = corners @ full.T + offset
    lo = np.clip(np.floor(reach.min(axis=0)).astype(int) - 1, 0, n - 1)
    hi = np.clip(np.floor(reach.max(axis=0)).astype(int) + 2, 0, n - 1)
    if np.any(lo > hi):
        return np.full(shape, cval, dtype=np.float32)
    box = [np.arange(lo[a], hi[a] + 1) for a in range(3)]
    smoothed = _crop_and_filter(array, sigma, box, truncate)
    out = sample(smoothed, full, offset - lo, shape, 1, mode=mode, cval=cval)
    return np.asarray(out, dtype=np.float32)


def _separable_sample(
    array: npt.NDArray[np.generic],
    sigma: Sequence[float],
    full: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    mode: str,
    cval: float,
    truncate: float,
) -> npt.NDArray[np.float32]:
    """:func:`smoothed_sample` of an axis-aligned mapping, on the compacted needed voxels."""
    needed: list[npt.NDArray[np.intp]] = []
    positions: list[npt.NDArray[np.float64]] = []
    follows: list[int] = []
    for a in range(3):
        b = int(np.flatnonzero(full[a])[0])
        last = array.shape[a] - 1
        coord = full[a, b] * np.arange(shape[b], dtype=np.float64) + offset[a]
        floor = np.floor(coord)
        index = np.unique(np.clip(np.concatenate([floor, floor + 1]), 0, last).astype(np.intp))
        # A sample keeps its distance past the edges (the outside rule of ``mode`` reads it)
        # and its fraction between two neighbours, which sit side by side in the compact axis.
        inside = np.searchsorted(index, np.clip(floor, 0, last)) + (coord - floor)
        compact = np.where(
            coord < 0, coord, np.where(coord > last, len(index) - 1 + coord - last, inside)
        )
        needed.append(index)
        positions.append(compact)
        follows.append(b)
    smoothed = _crop_and_filter(array, sigma, needed, truncate)
    grid = np.empty((3, *shape), dtype=np.float64)
    for a in range(3):
        view = [1, 1, 1]
        view[follows[a]] = shape[follows[a]]
        grid[a] = positions[a].reshape(view)
    out = ndimage.map_coordinates(
        smoothed, grid, output=np.float32, order=1, mode=mode, cval=cval, prefilter=False
    )
    return np.asarray(out, dtype=np.float32)
