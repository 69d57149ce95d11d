"""Node instances, their axial axes and volume, and the IoU >= 0.3 matching."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.lymph_nodes.nodes import (
    axial_axes,
    extract_instances,
    match_instances,
    measure,
)
from inference.volume import Volume


def _ellipsoid(
    shape: tuple[int, int, int],
    centre: tuple[float, float, float],
    semi_mm: tuple[float, float, float],
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    angle: float = 0.0,
) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    x, y, z = ((grid[i] - centre[i]) * spacing[i] for i in range(3))
    u = np.cos(angle) * x + np.sin(angle) * y  # rotated in the axial plane
    v = -np.sin(angle) * x + np.cos(angle) * y
    inside: np.ndarray = (u / semi_mm[0]) ** 2 + (v / semi_mm[1]) ** 2 + (z / semi_mm[2]) ** 2 <= 1
    return inside


def test_instances_are_26_connected_largest_first_and_specks_dropped() -> None:
    probability = np.zeros((32, 32, 16), dtype=np.float32)
    probability[_ellipsoid(probability.shape, (8, 8, 8), (3, 3, 3))] = 0.9
    probability[_ellipsoid(probability.shape, (22, 22, 8), (5, 4, 4))] = 0.8
    probability[30, 2, 2] = 0.9  # a speck
    probability[15, 15, 2] = probability[16, 16, 3] = probability[17, 17, 4] = 0.7  # diagonal
    instances = extract_instances(probability, threshold=0.5, min_voxels=3)
    assert instances.dtype == np.int32 and int(instances.max()) == 3
    assert instances[22, 22, 8] == 1 and instances[8, 8, 8] == 2 and instances[16, 16, 3] == 3
    assert instances[30, 2, 2] == 0
    with pytest.raises(ValueError, match="threshold"):
        extract_instances(probability, threshold=0.0)


def test_axes_of_an_axis_aligned_ellipsoid() -> None:
    mask = _ellipsoid((32, 32, 20), (16, 16, 10), (8.0, 4.0, 5.0))
    axes = axial_axes(np.argwhere(mask), Volume(mask.astype(np.uint8), np.eye(4)))
    assert axes.long_mm == pytest.approx(17.0) and axes.short_mm == pytest.approx(9.0)
    assert axes.slice_index == 10


def test_axes_of_a_rotated_ellipsoid_on_an_anisotropic_grid() -> None:
    spacing = (0.5, 0.5, 2.0)
    mask = _ellipsoid((64, 64, 10), (32, 32, 5), (10.0, 4.0, 6.0), spacing, angle=np.pi / 4)
    grid = Volume(mask.astype(np.uint8), np.diag([*spacing, 1.0]))
    axes = axial_axes(np.argwhere(mask), grid)
    assert axes.long_mm == pytest.approx(20.5, abs=0.8)
    assert axes.short_mm == pytest.approx(8.5, abs=0.8)
    assert axes.short_mm <= axes.long_mm


def test_measure_gives_centre_volume_and_axes() -> None:
    spacing = (0.5, 0.5, 2.0)
    instances = np.zeros((40, 40, 10), dtype=np.int32)
    instances[_ellipsoid(instances.shape, (20, 20, 5), (6.0, 3.0, 4.0), spacing)] = 1
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 30.0)
    grid = Volume(instances, affine)
    (node,) = measure(instances, grid, grid)
    assert node.instance == 1 and node.voxels == int((instances == 1).sum())
    assert node.volume_ml == pytest.approx(node.voxels * 0.5 / 1000.0, abs=1e-4)
    assert node.centre_voxel == pytest.approx((20.0, 20.0, 5.0))
    assert node.centre_ras_mm == pytest.approx((0.0, 15.0, 40.0))
    assert node.centre_lps_mm == pytest.approx((0.0, -15.0, 40.0))
    assert node.axes.long_mm == pytest.approx(12.5) and node.axes.short_mm == pytest.approx(6.5)


def test_matching_counts_a_hit_at_iou_0_3_one_to_one() -> None:
    truth = np.zeros((20, 10, 10), dtype=np.int32)
    truth[0:10, 0:5, 0:5], truth[10:20, 5:10, 5:10] = 1, 2  # 250 voxels each
    predicted = np.zeros_like(truth)
    predicted[0:10, 0:5, 0:3] = 1  # 150 / 250 = 0.6 with truth 1
    predicted[10:20, 5:10, 5:7] = 2  # 100 / 250 = 0.4 with truth 2
    predicted[0:10, 0:5, 3:5] = 3  # 0.4 with truth 1 too, but truth 1 is taken
    predicted[0:2, 8:10, 8:10] = 4  # overlaps nothing
    matching = match_instances(predicted, truth)
    assert matching.hits == ((1, 1, 0.6), (2, 2, 0.4))
    assert matching.false_positives == (3, 4) and matching.missed == ()
    exact = np.zeros_like(truth)
    exact[0:5, 0:5, 0:3] = 1  # 75 / 250 = 0.3: a hit
    assert match_instances(exact, truth).hits == ((1, 1, 0.3),)
    exact[0, 0, 0] = 0  # 74 / 250 < 0.3: missed, and a false positive
    below = match_instances(exact, truth)
    assert below.hits == () and below.false_positives == (1,) and below.missed == (1, 2)
    with pytest.raises(ValueError, match="shape"):
        match_instances(predicted[:5], truth)
