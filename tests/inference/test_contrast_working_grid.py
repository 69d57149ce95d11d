"""The contrast block-averaged grid, summed a few rows at a time, is unchanged (issue 27)."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from inference._contrast_grid import working_grid
from inference.volume import Volume, to_canonical


def _reference(volume: Volume, target_mm: float) -> npt.NDArray[np.float32]:
    """The block average over the whole grid at once (the former loop)."""
    array = volume.array
    factors = [
        min(max(1, int(target_mm / s + 0.5)), n)
        for s, n in zip(volume.spacing, array.shape, strict=True)
    ]
    sizes = [n // f for n, f in zip(array.shape, factors, strict=True)]
    out = np.zeros(sizes, dtype=np.float32)
    for o0, o1, o2 in itertools.product(*(range(f) for f in factors)):
        block = array[
            o0 : sizes[0] * factors[0] : factors[0],
            o1 : sizes[1] * factors[1] : factors[1],
            o2 : sizes[2] * factors[2] : factors[2],
        ]
        np.add(out, block, out=out, casting="unsafe")
    out /= np.float32(np.prod(factors))
    out = np.nan_to_num(out, nan=-1000.0, posinf=3071.0, neginf=-1024.0)
    step = np.eye(4)
    step[:3, :3] = np.diag(np.asarray(factors, dtype=np.float64))
    step[:3, 3] = [(f - 1) / 2.0 for f in factors]
    return np.asarray(to_canonical(Volume(out, volume.affine @ step)).array)


@pytest.mark.parametrize(
    ("shape", "spacing", "dtype"),
    [
        ((97, 90, 41), (0.6, 0.7, 1.0), np.float32),
        ((130, 120, 33), (0.5, 0.5, 2.5), np.int16),  # several rows per chunk
        ((64, 70, 50), (3.0, 0.8, 1.2), np.float32),  # factor 1 on one axis
        ((50, 300, 300), (0.6, 0.6, 1.0), np.float32),  # one output row per chunk
    ],
)
def test_working_grid_unchanged(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], dtype: type[np.generic]
) -> None:
    rng = np.random.default_rng(sum(shape))
    array = rng.normal(0.0, 400.0, shape).astype(dtype)
    if dtype is np.float32:
        array[3, 4, 5] = np.nan  # non-finite input counts as air
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    volume = Volume(array, affine)
    grid = working_grid(volume)
    np.testing.assert_array_equal(grid.hu, _reference(volume, 2.5))
