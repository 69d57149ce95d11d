"""The learned coarse localiser: grid and frame, the estimate's rules, a short fit, its rows.

The estimate rules are checked on hand-made probability maps; the network on synthetic CTs
with a bright blob standing in for the pancreas (a short CPU fit learns to find it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch

from inference.localiser import (
    LearnedLocaliser,
    LocaliserConfig,
    build_network,
    coarse_volume,
    estimate_from_probability,
    network_input,
)
from inference.volume import Volume
from training._localiser_train import CoarseCase, train_localiser
from training._splits import nested_splits
from training.config import TrainConfig
from training.localiser import localiser_rows

torch.set_num_threads(1)

#: A non-canonical 5 mm grid: i runs to the patient's left, k inferior (an LPS-like scan).
_FLIPPED = np.array([[-5.0, 0, 0, 100.0], [0, 5.0, 0, -40.0], [0, 0, -5.0, 60.0], [0, 0, 0, 1.0]])


def _blob_probability(prob: float = 0.9) -> tuple[Volume, npt.NDArray[np.float64]]:
    """A 5 mm map with a 4 x 6 x 3 voxel component and a single stray voxel."""
    array = np.zeros((20, 20, 16), dtype=np.float32)
    array[4:8, 10:16, 2:5] = prob
    array[15, 2, 12] = 0.95  # a smaller component: ignored
    voxels = np.argwhere(array[:, :, :] == np.float32(prob)).astype(np.float64)
    grid = Volume(array, _FLIPPED)
    return grid, grid.voxel_to_world(voxels.mean(axis=0)[None, :])[0]


def test_centre_box_and_confidence_come_from_the_largest_component_in_mm() -> None:
    grid, centroid = _blob_probability()
    estimate = estimate_from_probability(grid, LocaliserConfig())
    np.testing.assert_allclose(estimate.centre_mm, centroid, atol=1e-6)
    # i 4..7 -> x = 100 - 5 i: 65..80, +- 2.5 (half a voxel) + 10 (margin); likewise j, k.
    np.testing.assert_allclose(estimate.box_mm, (52.5, -2.5, 27.5, 92.5, 47.5, 62.5), atol=1e-6)
    assert estimate.confidence == pytest.approx(0.9)
    assert estimate.found and estimate.warnings == ()
    assert estimate.method == "learned-unet-5mm v1"


def test_no_component_is_not_found_and_says_so() -> None:
    grid = Volume(np.full((10, 10, 8), 0.2, dtype=np.float32), _FLIPPED)
    estimate = estimate_from_probability(grid, LocaliserConfig())
    assert not estimate.found and estimate.confidence == 0.0
    assert len(estimate.warnings) == 1 and "no voxel above 0.5" in estimate.warnings[0]
    assert "volume centre" in estimate.warnings[0]


def test_low_confidence_and_implausible_volume_are_not_found() -> None:
    grid, _ = _blob_probability(0.6)
    uncertain = estimate_from_probability(grid, LocaliserConfig(min_confidence=0.8))
    assert not uncertain.found and "uncertain" in uncertain.warnings[0]
    # 72 voxels of 0.125 mL = 9 mL: outside a 10-400 mL range.
    small = estimate_from_probability(grid, LocaliserConfig(volume_ml=(10.0, 400.0)))
    assert not small.found and "9.0 mL" in small.warnings[0]
    assert estimate_from_probability(grid, LocaliserConfig(volume_ml=(8.0, 400.0))).found


def _ct_with_blob(centre_mm: npt.NDArray[np.float64], flipped: bool = False) -> Volume:
    """A 2 x 2 x 3 mm CT of -100 HU with a 150 HU ball (radius 18 mm) at ``centre_mm``."""
    shape = (100, 90, 60)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = (-100.0, -90.0, -90.0)
    if flipped:  # the same world grid stored right-to-left and feet-first
        flip = np.eye(4)
        for axis, n in enumerate(shape):
            if axis != 1:
                flip[axis, axis], flip[axis, 3] = -1.0, n - 1
        affine = affine @ flip
    grid = Volume(np.zeros(shape, dtype=np.int16), affine)
    ijk = np.indices(shape).reshape(3, -1).T
    world = grid.voxel_to_world(ijk)
    inside = np.linalg.norm(world - centre_mm, axis=1) <= 18.0
    array = np.full(len(ijk), -100, dtype=np.int16)
    array[inside] = 150
    return Volume(array.reshape(shape), affine)


def test_coarse_grid_keeps_the_world_frame_in_any_orientation() -> None:
    centre = np.array([22.0, -15.0, 10.0])
    for flipped in (False, True):
        coarse = coarse_volume(_ct_with_blob(centre, flipped), 5.0)
        assert coarse.spacing == pytest.approx((5.0, 5.0, 5.0))
        assert np.all(np.diag(coarse.affine)[:3] > 0)  # canonical RAS+ axes
        bright = np.argwhere(np.asarray(coarse.array) > 25.0).astype(np.float64)
        np.testing.assert_allclose(coarse.voxel_to_world(bright).mean(axis=0), centre, atol=2.5)
    x = network_input(np.asarray(coarse.array), LocaliserConfig())
    assert x.shape[:2] == (1, 1) and all(n % 8 == 0 for n in x.shape[2:])
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def _synthetic_case(index: int, rng: np.random.Generator) -> CoarseCase:
    """A coarse 5 mm case: -100 HU with a 150 HU ball (the 'pancreas') somewhere inside."""
    shape = (28, 24, 20)
    affine = np.diag([5.0, 5.0, 5.0, 1.0])
    affine[:3, 3] = (-70.0, -60.0, -50.0)
    centre = rng.uniform((-30, -25, -20), (30, 25, 20))
    grid = Volume(np.zeros(shape, dtype=np.float32), affine)
    world = grid.voxel_to_world(np.indices(shape).reshape(3, -1).T)
    mask = (np.linalg.norm(world - centre, axis=1) <= 14.0).reshape(shape)
    hu = np.where(mask, 150.0, -100.0) + rng.normal(0, 10, shape)
    points = world[mask.ravel()].astype(np.float32)
    return CoarseCase(
        f"S{index}", Volume(hu.astype(np.float32), affine), mask.astype(np.uint8),
        world[mask.ravel()].mean(axis=0), points,
    )  # fmt: skip


def test_a_short_fit_finds_the_blob_on_held_out_cases() -> None:
    rng = np.random.default_rng(3)
    cases = [_synthetic_case(i, rng) for i in range(10)]
    epochs: list[float] = []
    fit = train_localiser(
        cases, range(8), [8, 9], epochs=12, batch_size=2, lr=1e-2,
        progress=lambda epoch, total, loss, wall, cpu: epochs.append(loss),
    )  # fmt: skip
    assert len(epochs) == 12 and epochs[-1] < epochs[0]
    metrics = fit.metrics
    assert metrics["patients"] == 2 and len(metrics["per_case"]) == 2
    assert metrics["centre_distance_mm"]["max"] <= 5.0, metrics
    assert metrics["mask_fraction_in_box"]["min"] >= 0.95, metrics
    assert fit.training["fit_rows"] == 8 and fit.training["heldout_rows"] == 2
    # The same network through the whole-CT path: a fine CT with the ball at a known spot.
    centre = np.array([15.0, 10.0, -12.0])
    estimate = fit.localiser(_ct_with_blob(centre, flipped=True))
    assert estimate.found, estimate
    assert np.linalg.norm(np.asarray(estimate.centre_mm) - centre) <= 5.0, estimate


def test_fit_rows_must_not_overlap_the_held_out_rows() -> None:
    cases = [_synthetic_case(i, np.random.default_rng(i)) for i in range(3)]
    with pytest.raises(ValueError, match="disjoint"):
        train_localiser(cases, [0, 1], [1, 2], epochs=1)


def test_learned_localiser_runs_untrained_and_names_its_method() -> None:
    torch.manual_seed(0)
    config = LocaliserConfig()
    localiser = LearnedLocaliser(build_network(config), config)
    estimate = localiser(_ct_with_blob(np.zeros(3)))
    assert estimate.method == "learned-unet-5mm v1"
    assert 0.0 <= estimate.confidence <= 1.0 and len(estimate.box_mm) == 6


def test_rows_follow_the_bundles_fold_zero_else_a_stratified_share() -> None:
    targets = [0] * 20 + [1] * 12 + [2] * 8
    meta = {"training": {"config": {"outer_folds": 5, "seed": 3}, "patients": 40}}
    rows = localiser_rows(meta, targets)
    split = nested_splits(targets, 5, 3)[0]
    np.testing.assert_array_equal(rows.heldout, split.test)
    assert sorted(rows.fit.tolist()) == sorted([*split.train.tolist(), *split.val.tolist()])
    assert "outer fold 0" in rows.note
    for other in ({}, {"training": {"config": {"outer_folds": 5, "seed": 3}, "patients": 39}}):
        fallback = localiser_rows(other, targets)
        assert len(fallback.heldout) == 8 and len(fallback.fit) == 32
        assert not set(fallback.fit.tolist()) & set(fallback.heldout.tolist())
        assert "stratified 80 %" in fallback.note
    assert len(localiser_rows({}, [0, 1, 0]).heldout) == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="stride"):
        LocaliserConfig(channels=(8, 16), strides=(2, 2))
    with pytest.raises(ValueError, match="localiser_epochs"):
        TrainConfig(localiser_epochs=-1)
    assert LocaliserConfig.from_dict(LocaliserConfig(spacing_mm=4.0).to_dict()) == LocaliserConfig(
        spacing_mm=4.0
    )
