"""Anti-aliased resampling smooths only where it samples, with the full filter's values.

``smoothed_sample`` (and the ``smooth_sigma`` of the resampling functions, which the network
cubes and the localiser grid use) must give what smoothing the whole volume with
``scipy.ndimage.gaussian_filter`` and then sampling gave before (issue 27: the whole-CT filter
took seconds per cube).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from inference._resample import _filter_at, sample, smoothed_sample
from inference.localiser import coarse_volume
from inference.preprocessing import PreprocessConfig, preprocess_volume
from inference.volume import Volume, to_canonical
from inference.volume_io import resample_to_reference, resample_to_spacing


def _f64(array: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    return np.asarray(array, dtype=np.float64)


def _mapping(rng: np.random.Generator, oblique: bool) -> npt.NDArray[np.float64]:
    if oblique:
        return rng.normal(size=(3, 3))
    matrix = np.zeros((3, 3))
    for a, b in enumerate(rng.permutation(3)):
        matrix[a, b] = rng.uniform(0.2, 3.0) * rng.choice([-1.0, 1.0])
    return matrix


@pytest.mark.parametrize("seed", range(40))
def test_smoothed_sample_equals_filter_then_sample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape_in = tuple(int(n) for n in rng.integers(5, 30, 3))
    array = rng.integers(-1000, 1000, shape_in).astype(np.int16)
    sigma = [float(s) if rng.random() > 0.2 else 0.0 for s in rng.uniform(0.0, 3.0, 3)]
    sigma[seed % 3] = 1.5  # at least one axis smoothed
    shape = (int(rng.integers(3, 20)), int(rng.integers(3, 20)), int(rng.integers(3, 20)))
    matrix, offset = _mapping(rng, seed % 5 == 0), rng.uniform(-5.0, 30.0, 3)
    mode = ("constant", "nearest")[seed % 2]
    smoothed = ndimage.gaussian_filter(array.astype(np.float32), sigma, mode="nearest")
    expected = sample(smoothed, matrix, offset, shape, 1, mode=mode, cval=-1024.0)
    got = smoothed_sample(array, sigma, matrix, offset, shape, mode=mode, cval=-1024.0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(_f64(got), _f64(expected), rtol=0, atol=1e-3)


def _ct(seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    array = ndimage.uniform_filter(rng.normal(0.0, 300.0, (70, 64, 40)), 3).astype(np.float32)
    affine = np.diag([-0.7, -0.7, 1.25, 1.0])  # LPS-like flips, the canonical path permutes
    affine[:3, 3] = (20.0, 15.0, -30.0)
    return Volume(array, affine)


@pytest.mark.parametrize(("size", "cube_mm", "shift"), [(16, 64.0, 0.0), (32, 30.0, 7.3)])
def test_preprocess_cube_unchanged(size: int, cube_mm: float, shift: float) -> None:
    image, config = _ct(), PreprocessConfig(target_size=size, cube_mm=cube_mm)
    centre = image.voxel_to_world(np.array([[30.0, 20.0, 25.0]]))[0] + shift
    got = preprocess_volume(image, config, centre_mm=centre).image
    sigma = [max(0.0, 0.5 * (config.spacing_mm / s - 1.0)) for s in image.spacing]
    full = Volume(ndimage.gaussian_filter(image.array, sigma, mode="nearest"), image.affine)
    reference = Volume(np.zeros((size,) * 3, np.uint8), np.diag([config.spacing_mm] * 3 + [1]))
    reference.affine[:3, 3] = centre - config.spacing_mm * (size - 1) / 2.0
    cube = np.clip(resample_to_reference(full, reference, 1, fill_value=-1024.0).array, -200, 400)
    expected = (cube - cube.mean()) / cube.std()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_localiser_grid_unchanged() -> None:
    image = _ct(1)
    canonical = to_canonical(image)
    sigma = [max(0.0, 0.5 * (5.0 / s - 1.0)) for s in canonical.spacing]
    full = ndimage.gaussian_filter(canonical.array, sigma, mode="nearest")
    expected = resample_to_spacing(Volume(full, canonical.affine), 5.0, order=1)
    got = coarse_volume(image, 5.0)
    np.testing.assert_array_equal(got.affine, expected.affine)
    np.testing.assert_allclose(_f64(got.array), _f64(expected.array), rtol=0, atol=1e-3)


def test_smooth_sigma_needs_linear_sampling() -> None:
    image = _ct()
    with pytest.raises(ValueError, match="order 1"):
        resample_to_spacing(image, 2.0, order=0, smooth_sigma=(1.0, 1.0, 0.0))
    with pytest.raises(ValueError, match="non-negative"):
        resample_to_spacing(image, 2.0, smooth_sigma=(1.0, -1.0, 0.0))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sigma", [0.7, 3.5, 6.0])
def test_filter_at_few_indices_equals_the_full_pass(axis: int, sigma: float) -> None:
    rng = np.random.default_rng(int(10 * sigma) + axis)
    shape = [12, 14, 10]
    shape[axis] = 90
    work = rng.normal(0.0, 300.0, shape).astype(np.float32)
    index = np.unique(rng.integers(0, 90, 12)).astype(np.intp)
    index[0], index[-1] = 0, 89  # both edges (mode "nearest")
    full = ndimage.gaussian_filter1d(work, sigma, axis=axis, mode="nearest", output=np.float32)
    got = _filter_at(work, sigma, axis, index, 4.0)
    np.testing.assert_allclose(_f64(got), _f64(np.take(full, index, axis=axis)), rtol=1e-6)


def test_coarse_grid_of_a_long_axis_unchanged() -> None:
    # A grid 6x coarser than the input: the first pass is computed at the sampled rows only.
    rng = np.random.default_rng(7)
    array = rng.normal(0.0, 300.0, (120, 40, 30)).astype(np.float32)
    sigma = [2.5, 1.0, 0.5]
    zoom = np.array([6.0, 2.0, 1.5])
    shape = (20, 20, 20)
    offset = np.array([0.3, -0.5, 0.2])
    smoothed = ndimage.gaussian_filter(array, sigma, mode="nearest")
    expected = sample(smoothed, np.diag(zoom), offset, shape, 1, mode="constant", cval=-1024.0)
    got = smoothed_sample(array, sigma, zoom, offset, shape, mode="constant", cval=-1024.0)
    np.testing.assert_allclose(_f64(got), _f64(expected), rtol=0, atol=1e-3)
