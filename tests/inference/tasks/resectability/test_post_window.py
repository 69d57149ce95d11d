"""Mapping the cube's labels back to the CT grid only where they reach (issue 27).

:func:`ct_window` + :func:`paste` must give the map the whole-grid nearest-neighbour resampling
gave, labels at the cube's faces and oblique or flipped CT grids included.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.transform import Rotation

from inference.tasks.resectability._post import ct_window, paste, to_ct_grid
from inference.volume import Volume
from inference.volume_io import resample_to_reference


def _affine(spacing: npt.NDArray[np.float64], rotation: npt.NDArray[np.float64]) -> Volume:
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    return Volume(np.zeros((1, 1, 1), np.uint8), affine)


@pytest.mark.parametrize("seed", range(16))
def test_window_gives_the_whole_grid_map(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.zeros((20, 18, 16), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        lo = rng.integers(0, [18, 16, 14])
        size = rng.integers(1, 7, 3)
        labels[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = (
            rng.integers(1, 16)
        )
    cube = Volume(labels, np.diag([1.7, 1.7, 1.7, 1.0]))
    rotation = Rotation.random(random_state=seed).as_matrix() if seed % 3 == 0 else np.eye(3)
    if seed % 3 == 1:
        rotation = np.diag([-1.0, -1.0, 1.0])  # LPS-like flips
    grid = _affine(rng.uniform(0.6, 1.3, 3), rotation)
    grid.affine[:3, 3] = rng.uniform(-10.0, 10.0, 3)
    image = Volume(np.zeros((40, 44, 30), np.int16), grid.affine)
    whole = resample_to_reference(cube, image, 0, fill_value=0).array
    window = ct_window(labels, cube, image)
    np.testing.assert_array_equal(paste(window, image).array, whole)
    np.testing.assert_array_equal(to_ct_grid(labels, cube, image).array, whole)
    np.testing.assert_array_equal(window.labels.array, whole[window.window])


def test_no_label_gives_an_empty_map() -> None:
    cube = Volume(np.zeros((8, 8, 8), np.uint8), np.eye(4))
    image = Volume(np.zeros((10, 10, 10), np.int16), np.eye(4))
    assert not to_ct_grid(np.zeros((8, 8, 8), np.uint8), cube, image).array.any()
