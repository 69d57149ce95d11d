"""PyRadiomics on the tumor: the paper's 1,037 features, a sphere's shape, any patient position."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from inference.tasks.survival import RadiomicsConfig, RadiomicsExtractor
from inference.volume import Volume

_RADIUS_MM = 10.0
_TUMOR_HU = 60.0
_SHAPE = (56, 56, 56)  # 1 mm: the sphere and the 15 mm margin fit


def _sphere() -> tuple[Volume, Volume]:
    """A 10 mm ball at 60 HU (noise sigma 10) in -100 HU fat, 1 mm voxels, head first."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -(np.asarray(_SHAPE) - 1) / 2.0 + np.array([3.0, -2.0, 5.0])
    centre = (np.asarray(_SHAPE) - 1) / 2.0 + 0.3  # off the voxel grid
    grid = np.indices(_SHAPE).astype(np.float64)
    distance = np.sqrt(sum((grid[a] - centre[a]) ** 2 for a in range(3)))
    inside = distance <= _RADIUS_MM
    rng = np.random.default_rng(7)
    image = np.where(inside, _TUMOR_HU, -100.0) + rng.normal(0.0, 10.0, _SHAPE)
    return Volume(image.astype(np.float32), affine), Volume(inside.astype(np.uint8), affine)


def _stored_flipped(volume: Volume, axes: tuple[int, ...]) -> Volume:
    """The same voxels in the same place, stored with ``axes`` reversed (e.g. feet first)."""
    array: npt.NDArray[np.generic] = np.asarray(volume.array)
    affine = volume.affine.copy()
    for axis in axes:
        array = np.flip(array, axis)
        last = np.zeros(3)
        last[axis] = volume.shape[axis] - 1
        affine[:3, 3] = affine[:3, :3] @ last + affine[:3, 3]
        affine[:3, axis] *= -1.0
    return Volume(np.ascontiguousarray(array), affine)


def _stored_transposed(volume: Volume) -> Volume:
    """The same voxels in the same place, stored with the first two axes swapped."""
    affine = volume.affine.copy()
    affine[:3, [0, 1]] = affine[:3, [1, 0]]
    return Volume(np.ascontiguousarray(np.swapaxes(np.asarray(volume.array), 0, 1)), affine)


@pytest.fixture(scope="module")
def extractor() -> RadiomicsExtractor:
    return RadiomicsExtractor(RadiomicsConfig())


@pytest.fixture(scope="module")
def features(extractor: RadiomicsExtractor) -> dict[str, float]:
    return extractor.extract(*_sphere())


def test_the_paper_s_1037_features(features: dict[str, float]) -> None:
    assert len(features) == 1037
    kinds = {"original": 0, "log-sigma-2-0-mm-3D": 0, "log-sigma-3-0-mm-3D": 0, "wavelet": 0}
    for name in features:
        kinds[name.split("_")[0] if not name.startswith("wavelet") else "wavelet"] += 1
    assert kinds == {"original": 107, "log-sigma-2-0-mm-3D": 93, "log-sigma-3-0-mm-3D": 93,
                     "wavelet": 8 * 93}  # fmt: skip
    assert not any(name.startswith("diagnostics") for name in features)
    assert all(math.isfinite(v) for v in features.values())


def test_a_sphere_s_volume_shape_and_intensity(features: dict[str, float]) -> None:
    volume = 4.0 / 3.0 * math.pi * _RADIUS_MM**3
    assert features["original_shape_MeshVolume"] == pytest.approx(volume, rel=0.10)
    assert features["original_shape_Sphericity"] > 0.85
    assert features["original_shape_Maximum3DDiameter"] == pytest.approx(2 * _RADIUS_MM, rel=0.2)
    assert abs(features["original_firstorder_Mean"] - _TUMOR_HU) < 2.0


def test_a_bigger_tumor_has_a_bigger_volume(extractor: RadiomicsExtractor,
                                            features: dict[str, float]) -> None:  # fmt: skip
    ct, mask = _sphere()
    small = Volume(np.asarray(mask.array) * 0, mask.affine)
    small.array[24:32, 24:32, 24:32] = 1  # an 8 mm cube: 512 mm^3
    answer = extractor.extract(ct, small)
    assert answer["original_shape_MeshVolume"] < 0.3 * features["original_shape_MeshVolume"]


@pytest.mark.parametrize("axes", [(2,), (0, 1)], ids=["feet-first", "lps-stored"])
def test_the_same_tumor_stored_otherwise_gives_the_same_features(
    extractor: RadiomicsExtractor, features: dict[str, float], axes: tuple[int, ...]
) -> None:
    ct, mask = _sphere()
    flipped = extractor.extract(_stored_flipped(ct, axes), _stored_flipped(mask, axes))
    assert flipped.keys() == features.keys()
    worst = max(abs(flipped[k] - v) / max(abs(v), 1e-6) for k, v in features.items())
    assert worst < 1e-6


def test_the_same_tumor_stored_with_swapped_axes_gives_the_same_features(
    extractor: RadiomicsExtractor, features: dict[str, float]
) -> None:
    ct, mask = _sphere()
    swapped = extractor.extract(_stored_transposed(ct), _stored_transposed(mask))
    worst = max(abs(swapped[k] - v) / max(abs(v), 1e-6) for k, v in features.items())
    assert worst < 1e-6


def test_an_empty_mask_is_refused(extractor: RadiomicsExtractor) -> None:
    ct, mask = _sphere()
    with pytest.raises(ValueError, match="empty"):
        extractor.extract(ct, Volume(np.zeros_like(mask.array), mask.affine))


def test_the_config_round_trips_and_selects_the_image_types() -> None:
    config = RadiomicsConfig(spacing_mm=2.0, bin_width=10.0, log_sigma_mm=(1.0,), wavelet=False)
    assert RadiomicsConfig.from_dict(config.to_dict()) == config
    only_original = RadiomicsExtractor(RadiomicsConfig(log_sigma_mm=(), wavelet=False))
    assert len(only_original.extract(*_sphere())) == 107
