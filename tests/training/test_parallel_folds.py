"""Time budget per fit, fits in parallel processes, parallel preprocessing and phantoms."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.tasks.resectability.model import ModelMode
from phantom import PhantomOptions, generate_cohort
from tests.training._training_arrays import tiny_arrays
from training._localiser_train import coarse_case
from training._loop import _Budget, checkpoint_finished, fit_model
from training._parallel_folds import FitJob, fit_in_parallel, share_cohort
from training.cohort import load_cohort
from training.config import TrainConfig
from training.dataset import PreprocessConfig, discover_cases

torch.set_num_threads(1)

SMALL = PhantomOptions(fov_mm=(200.0, 160.0, 100.0), pixel_spacing=2.0, slice_thickness=4.0)


def test_budget_fixes_the_limit_from_the_second_epoch() -> None:
    state: dict[str, object] = {}
    clock = _Budget(0.0)
    assert clock.epoch_limit(1, 50, state) is None and clock.epoch_limit(2, 50, state) is None
    clock = _Budget(3600.0)
    assert clock.epoch_limit(1, 50, state) is None  # the first epoch pays for warm-up
    assert clock.epoch_limit(2, 50, state) == 50  # an hour allows far more than 50 epochs
    clock = _Budget(1e-9)
    clock.epoch_limit(1, 50, state)
    assert clock.epoch_limit(2, 50, state) == 2  # spent: stop where it stands
    assert clock.epoch_limit(3, 50, {"epoch_limit": 2}) is None  # fixed once


def test_budgeted_fit_stops_and_its_checkpoint_keeps_the_limit(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    config = TrainConfig(max_epochs=40, patience=40, batch_size=(2,), time_budget_min=1e-6)
    train, val = np.arange(0, 6), np.arange(6, 8)
    args = {"mode": ModelMode.TABULAR_ONLY, "adaptive": True, "seed": 0}
    fit = fit_model(
        arrays, train, val, config.grid()[0], config, checkpoint=tmp_path / "t.pt", **args
    )
    assert fit.epochs == 2
    saved = torch.load(tmp_path / "t.pt", weights_only=False)
    assert saved["state"]["epoch_limit"] == 2 and saved["scheduler"]["T_max"] == 2
    unbudgeted = TrainConfig(max_epochs=40, patience=40, batch_size=(2,))
    again = fit_model(
        arrays, train, val, config.grid()[0], unbudgeted, checkpoint=tmp_path / "t.pt", **args
    )
    assert again.epochs == 2  # the reloaded fit honours the limit it fixed


def test_parallel_fits_finish_their_checkpoints(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    config = TrainConfig(max_epochs=2, patience=2, batch_size=(2,), workers=2, num_threads=1)
    folder = share_cohort(arrays, tmp_path / "cohort")
    hp = config.grid()[0]
    jobs = [
        FitJob(np.arange(0, 6), np.arange(6, 8), hp, ModelMode.TABULAR_ONLY, True,
               tmp_path / f"job{i}.pt", seed=i, tag="tabular_only")
        for i in range(2)
    ]  # fmt: skip
    seen: list[tuple[int, int]] = []
    fit_in_parallel(folder, config, jobs, lambda name, done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    for job in jobs:
        assert torch.load(job.checkpoint, weights_only=False)["state"]["epoch"] == 2
        mtime = job.checkpoint.stat().st_mtime_ns
        fit = fit_model(
            arrays, job.train, job.val, hp, config, mode=job.mode, adaptive=True,
            checkpoint=job.checkpoint, seed=job.seed,
        )  # fmt: skip
        assert fit.epochs == 2 and job.checkpoint.stat().st_mtime_ns == mtime  # only reloaded
    assert all(checkpoint_finished(job.checkpoint, config) for job in jobs)
    seen.clear()
    fit_in_parallel(folder, config, jobs, lambda name, done, total: seen.append((done, total)))
    assert seen == []  # finished fits are not sent to workers again
    longer = TrainConfig(max_epochs=3, patience=3, batch_size=(2,), workers=2)
    assert not checkpoint_finished(jobs[0].checkpoint, longer)
    assert not checkpoint_finished(tmp_path / "missing.pt", config)


def test_config_rejects_bad_parallel_settings() -> None:
    with pytest.raises(ValueError, match="workers"):
        TrainConfig(workers=0)
    with pytest.raises(ValueError, match="time_budget_min"):
        TrainConfig(time_budget_min=-1.0)
    with pytest.raises(ValueError, match="weights_dtype"):
        TrainConfig(weights_dtype="bfloat16")


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    serial, parallel = tmp_path_factory.mktemp("serial"), tmp_path_factory.mktemp("parallel")
    generate_cohort(serial, 3, 7, SMALL)
    generate_cohort(parallel, 3, 7, SMALL, workers=2)
    return serial, parallel


def test_phantoms_written_in_parallel_are_identical(cohorts: tuple[Path, Path]) -> None:
    serial, parallel = cohorts
    for name in ("truth.csv", "clinical.csv"):
        assert filecmp.cmp(serial / name, parallel / name, shallow=False)
    for patient in ("PHANTOM-0001", "PHANTOM-0003"):
        for name in ("image.nii.gz", "label.nii.gz"):
            assert filecmp.cmp(serial / patient / name, parallel / patient / name, shallow=False)


def test_parallel_preprocessing_equals_serial(cohorts: tuple[Path, Path], tmp_path: Path) -> None:
    cases = discover_cases(cohorts[0])
    config = PreprocessConfig(32, 160.0)
    serial = load_cohort(cases, config, None)
    parallel = load_cohort(cases, config, tmp_path / "cache", workers=2)
    np.testing.assert_array_equal(serial.images, parallel.images)
    np.testing.assert_array_equal(serial.labels, parallel.labels)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    cached = load_cohort(cases, config, tmp_path / "cache", workers=2)
    np.testing.assert_array_equal(cached.images, serial.images)


def test_the_cube_cache_is_not_fooled_by_another_cohort_with_the_same_patient_ids(
    cohorts: tuple[Path, Path], tmp_path: Path
) -> None:
    # Phantom cohorts of any seed name their patients PHANTOM-0001...: a cache keyed by the
    # patient ID alone handed the first cohort's cubes to the second.
    other = tmp_path / "other"
    generate_cohort(other, 3, 8, SMALL)
    config = PreprocessConfig(32, 160.0)
    load_cohort(discover_cases(cohorts[0]), config, tmp_path / "cache")
    cached = load_cohort(discover_cases(other), config, tmp_path / "cache")
    fresh = load_cohort(discover_cases(other), config, None)
    np.testing.assert_array_equal(cached.images, fresh.images)
    np.testing.assert_array_equal(cached.labels, fresh.labels)
    # The localiser's coarse-grid cache likewise.
    coarse_case(discover_cases(cohorts[0])[0], 5.0, tmp_path / "loc")
    cached_grid = coarse_case(discover_cases(other)[0], 5.0, tmp_path / "loc")
    fresh_grid = coarse_case(discover_cases(other)[0], 5.0, None)
    np.testing.assert_array_equal(cached_grid.mask, fresh_grid.mask)
    np.testing.assert_array_equal(cached_grid.centroid_mm, fresh_grid.centroid_mm)
