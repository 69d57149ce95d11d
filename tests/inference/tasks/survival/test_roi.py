"""The survival ROI: a fixed physical cube (size kept) and the native crop for radiomics."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.survival import RoiConfig, native_crop, tumor_cube
from inference.volume import Volume
from tests.training._survival_cohort import TUMOR, sphere_case


def _tumor(label: Volume) -> Volume:
    return Volume((np.asarray(label.array) == TUMOR).astype(np.uint8), label.affine)


def test_the_cube_s_shape_range_and_centre() -> None:
    ct, label = sphere_case(8.0)
    roi = tumor_cube(ct, _tumor(label), RoiConfig())
    assert roi.image.shape == roi.mask.shape == (32, 32, 32)
    assert roi.image.dtype == roi.mask.dtype == np.float32
    assert roi.image.min() >= -1.0 and roi.image.max() <= 1.0
    assert set(np.unique(roi.mask).tolist()) == {0.0, 1.0}
    assert np.allclose(roi.centre_ras, 0.0, atol=1e-6)  # the ball sits at the origin
    centre = np.argwhere(roi.mask > 0).mean(axis=0)
    assert np.allclose(centre, 15.5, atol=0.5)
    # inside the tumor (-10 HU) and in the pancreas (45 HU), on the window (-150, 250)
    assert roi.image[16, 16, 16] == pytest.approx((-10 + 150) / 400 * 2 - 1, abs=0.1)
    assert roi.image[roi.mask > 0].mean() < roi.image[roi.mask == 0].mean()


def test_outside_the_scan_is_air() -> None:
    ct, label = sphere_case(6.0)
    roi = tumor_cube(ct, _tumor(label), RoiConfig(size=64, spacing_mm=2.5))
    assert roi.image[0, 0, 0] == -1.0  # 80 mm from the centre: off the 96 mm scan


def test_a_mask_off_the_ct_s_grid_or_empty_is_refused() -> None:
    ct, label = sphere_case(8.0)
    moved = label.affine.copy()
    moved[0, 3] += 2.0
    with pytest.raises(ValueError, match="grid"):
        tumor_cube(ct, _tumor(Volume(label.array, moved)), RoiConfig())
    with pytest.raises(ValueError, match="grid"):
        tumor_cube(ct, Volume(np.zeros((8, 8, 8), np.uint8), label.affine), RoiConfig())
    with pytest.raises(ValueError, match="empty"):
        tumor_cube(ct, Volume(np.zeros(ct.shape, np.uint8), ct.affine), RoiConfig())
    with pytest.raises(ValueError, match="empty"):
        native_crop(ct, Volume(np.zeros(ct.shape, np.uint8), ct.affine), 10.0)


def test_size_is_kept_not_normalised_away() -> None:
    volumes = []
    for radius in (6.0, 14.0):
        ct, label = sphere_case(radius)
        roi = tumor_cube(ct, _tumor(label), RoiConfig())
        volumes.append(float(roi.mask.sum()) * 2.5**3)
        truth = 4.0 / 3.0 * np.pi * radius**3
        assert volumes[-1] == pytest.approx(truth, rel=0.25)
    assert volumes[1] > 8.0 * volumes[0]


def test_the_position_of_the_patient_does_not_change_the_cube() -> None:
    ct, label = sphere_case(9.0, seed=3)
    head_first = tumor_cube(ct, _tumor(label), RoiConfig())
    affine = ct.affine.copy()
    affine[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, ct.shape[2] - 1]) + affine[:3, 3]
    affine[:3, 2] *= -1.0
    flip = (slice(None), slice(None), slice(None, None, -1))
    feet_first = tumor_cube(Volume(np.ascontiguousarray(ct.array[flip]), affine),
                            _tumor(Volume(np.ascontiguousarray(label.array[flip]), affine)),
                            RoiConfig())  # fmt: skip
    assert np.allclose(feet_first.image, head_first.image, atol=1e-5)
    assert np.array_equal(feet_first.mask, head_first.mask)


def test_the_native_crop_is_canonical_and_keeps_the_margin() -> None:
    ct, label = sphere_case(8.0)
    affine = ct.affine.copy()
    affine[:3, 3] = affine[:3, :3] @ np.array([ct.shape[0] - 1, 0.0, 0.0]) + affine[:3, 3]
    affine[:3, 0] *= -1.0
    stored = Volume(np.ascontiguousarray(ct.array[::-1]), affine)
    mask = _tumor(Volume(np.ascontiguousarray(label.array[::-1]), affine))
    crop_ct, crop_mask = native_crop(stored, mask, 10.0)
    assert np.all(np.diag(crop_ct.affine)[:3] > 0)  # RAS+ order
    assert crop_ct.shape == crop_mask.shape
    assert crop_mask.array.dtype == np.bool_ and int(crop_mask.array.sum()) == int(mask.array.sum())
    # 8 mm ball plus 10 mm margin at 2 mm: about 9 + 5 + 5 voxels a side
    assert all(17 <= n <= 21 for n in crop_ct.shape)
    inside = crop_ct.voxel_to_world(np.argwhere(crop_mask.array).mean(axis=0))[0]
    assert np.allclose(inside, 0.0, atol=1e-6)


def test_the_config_round_trips_and_refuses_nonsense() -> None:
    config = RoiConfig(size=24, spacing_mm=3.0, window_hu=(-100.0, 200.0), margin_mm=5.0)
    assert RoiConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="size"):
        RoiConfig(size=4)
    with pytest.raises(ValueError, match="window"):
        RoiConfig(window_hu=(100.0, 0.0))
