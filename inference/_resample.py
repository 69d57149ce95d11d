"""Resampling helpers for :mod:`inference.volume_io` (scipy.ndimage and exact index copies)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume

__all__ = ["check_order", "exact_index_map", "output_dtype", "sample"]


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
