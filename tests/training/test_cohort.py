"""Nested CV splits, leakage-free preprocessing, config loading, metrics and a tiny fit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.tasks.resectability.model import ModelMode
from inference.volume import Volume, write_nifti
from pancreas_contracts.labels import NUM_CLASSES
from tests.training._training_arrays import tiny_arrays
from training._geometry import GeometryClassifier, contact_features
from training._loop import (
    CohortArrays,
    FitResult,
    _Batches,
    _select,
    _validate,
    fit_model,
    predict,
)
from training._metrics import (
    DICE_GROUPS,
    classification_metrics,
    macro_auc,
    total_dice_counts,
)
from training._splits import nested_splits, stratified_folds
from training.cohort import data_hash, load_cohort
from training.config import TrainConfig, load_config
from training.dataset import NO_TUMOR, PreprocessConfig, discover_cases, make_augmentation
from training.losses import median_frequency_weights

torch.set_num_threads(2)

LABELS = [0] * 85 + [1] * 47 + [2] * 27


def test_outer_folds_are_stratified_disjoint_and_cover_everything() -> None:
    folds = stratified_folds(LABELS, 5, seed=3)
    merged = np.concatenate(folds)
    assert sorted(merged.tolist()) == list(range(len(LABELS)))
    labels = np.asarray(LABELS)
    for fold in folds:
        counts = np.bincount(labels[fold], minlength=3)
        assert all(abs(c - t / 5) <= 1 for c, t in zip(counts, (85, 47, 27), strict=True))


def test_nested_splits_are_64_16_20_and_disjoint() -> None:
    splits = nested_splits(LABELS, 5, seed=1)
    assert len(splits) == 5
    tests = np.concatenate([s.test for s in splits])
    assert sorted(tests.tolist()) == list(range(len(LABELS)))
    for s in splits:
        assert not set(s.train) & set(s.val)
        assert not set(s.train) & set(s.test)
        assert not set(s.val) & set(s.test)
        assert len(s.train) + len(s.val) + len(s.test) == len(LABELS)
        assert abs(len(s.val) / len(LABELS) - 0.16) < 0.02
        assert abs(len(s.test) / len(LABELS) - 0.20) < 0.02
        for part in (s.train, s.val):
            share = np.bincount(np.asarray(LABELS)[part], minlength=3) / len(part)
            np.testing.assert_allclose(share, np.array([85, 47, 27]) / 159, atol=0.05)


def test_splits_are_reproducible() -> None:
    a, b = nested_splits(LABELS, 5, seed=7), nested_splits(LABELS, 5, seed=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.test, y.test)
        np.testing.assert_array_equal(x.val, y.val)


def test_fit_never_sees_test_rows_and_resumes(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    train, val, test = np.arange(0, 5), np.arange(5, 7), np.arange(7, 8)
    poisoned = arrays.clinical.copy()
    poisoned[test] = 1e5  # huge test-row values would move the fitted statistics if they leaked
    poisoned[val] = -1e5
    leaky = CohortArrays(arrays.images, arrays.labels, poisoned, arrays.targets, arrays.patient_ids)
    config = TrainConfig(max_epochs=1, patience=1, batch_size=(2,), augment=False)
    hp = config.grid()[0]
    fits: list[FitResult] = []
    for data in (arrays, leaky):
        fit = fit_model(
            data, train, val, hp, config, mode=ModelMode.TABULAR_ONLY, adaptive=True,
            checkpoint=tmp_path / f"{len(fits)}.pt", seed=0,
        )  # fmt: skip
        fits.append(fit)
    assert fits[0].preprocessor.to_json() == fits[1].preprocessor.to_json()
    assert fits[0].preprocessor.n_fitted == len(train)
    assert bool(fits[0].model.clinical_mean_set)
    again = fit_model(
        arrays, train, val, hp, config, mode=ModelMode.TABULAR_ONLY, adaptive=True,
        checkpoint=tmp_path / "0.pt", seed=0,
    )  # fmt: skip
    assert again.epochs == 1  # resumed from the finished checkpoint, no further epoch


def test_fit_multimodal_one_epoch(tmp_path: Path) -> None:
    arrays = tiny_arrays(4)
    config = TrainConfig(max_epochs=1, patience=1, batch_size=(2,))
    fit = fit_model(
        arrays, np.arange(2), np.arange(2, 4), config.grid()[0], config,
        mode=ModelMode.MULTIMODAL, adaptive=True, checkpoint=tmp_path / "m.pt", seed=0,
    )  # fmt: skip
    assert fit.epochs == 1 and 0.0 <= fit.tumor_dice <= 1.0


def test_fit_balances_the_segmentation_labels_of_its_training_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    arrays = tiny_arrays(4)
    arrays.labels[2:, 0, 0, :3] = 7  # a label only the validation rows have: not counted
    config = TrainConfig(
        max_epochs=1, patience=1, batch_size=(2,), augment=False,
        seg_label_balance="median_frequency", image_pooling="contact",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="training._loop"):
        fit_model(
            arrays, np.arange(2), np.arange(2, 4), config.grid()[0], config,
            mode=ModelMode.MULTIMODAL, adaptive=True, checkpoint=tmp_path / "m.pt", seed=0,
        )  # fmt: skip
    expected = median_frequency_weights(arrays.labels[:2], NUM_CLASSES)
    assert expected[7] == 10.0 and expected[2] > 1.0  # the tumor is the rarest present label
    assert f"segmentation label weights {expected}" in caplog.text
    with pytest.raises(ValueError, match="seg_label_balance"):
        TrainConfig(seg_label_balance="inverse")


def test_metrics() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    m = classification_metrics([0, 1, 2, 1], probs)
    assert m["accuracy"] == 0.75
    assert m["recall"] == [1.0, 0.5, 1.0]
    assert m["confusion"][1] == [1, 1, 0]
    assert macro_auc([0, 1, 2], np.eye(3)) == 1.0
    assert macro_auc([0, 1, 2], np.full((3, 3), 1 / 3)) == 0.5


def test_geometry_features_and_classifier() -> None:
    labels = np.zeros((20, 20, 3), dtype=np.uint8)
    labels[8:12, 8:12, :] = 6  # SMA
    labels[4:8, 6:14, :] = 2  # tumor on one side
    angles = contact_features(labels)
    assert 60.0 < angles[0] < 240.0 and angles[1:].sum() == 0.0
    x = np.array([[0.0] * 5, [90.0, 0, 0, 0, 0], [270.0, 0, 0, 0, 0]] * 4)
    y = np.array([0, 1, 2] * 4)
    clf = GeometryClassifier().fit(x, y)
    assert (clf.predict_proba(x).argmax(axis=1) == y).mean() >= 0.66


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('lr = [1e-3, 5e-4]\nfeature_size = [12]\nablations = ["ct_only"]\n')
    config = load_config(path, max_epochs=3)
    assert len(config.grid()) == 2 and config.max_epochs == 3 and config.patience == 20
    path.write_text("nope = 1\n")
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown ablations"):
        TrainConfig(ablations=("bogus",))


def test_device_resident_batches_equal_the_cohort_and_augmented_ones_keep_shape() -> None:
    arrays = tiny_arrays(4)
    idx = np.array([3, 1])
    image, label = _Batches(arrays, None, torch.device("cpu"))(idx)
    assert image.shape == (2, 1, 32, 32, 64) and label.dtype == torch.int64
    np.testing.assert_array_equal(image[:, 0].numpy(), arrays.images[idx])
    np.testing.assert_array_equal(label[:, 0].numpy(), arrays.labels[idx])
    augmented, _ = _Batches(arrays, make_augmentation(0), torch.device("cpu"))(idx)
    assert augmented.shape == image.shape


def test_validation_tumor_dice_equals_the_report_metric(tmp_path: Path) -> None:
    arrays = tiny_arrays(4)
    config = TrainConfig(
        max_epochs=1, patience=1, batch_size=(2,), augment=False, selection_min_tumor_dice=0.0
    )
    train, val = np.arange(2), np.arange(2, 4)
    fit = fit_model(
        arrays, train, val, config.grid()[0], config, mode=ModelMode.MULTIMODAL,
        adaptive=True, checkpoint=tmp_path / "v.pt", seed=0,
    )  # fmt: skip
    features = fit.preprocessor.transform(arrays.clinical).features
    score, tau = _validate(fit.model, arrays, val, features, torch.device("cpu"))
    # Read from the device-resident cube set, as the training loop does: the same numbers.
    cubes = _Batches(arrays, None, torch.device("cpu"))
    on_device = _validate(fit.model, arrays, val, features, torch.device("cpu"), cubes)
    assert on_device == pytest.approx((score, tau))
    pred = predict(fit.model, arrays, val, features, torch.device("cpu"), keep_segmentation=True)
    assert pred.segmentation is not None
    counts = total_dice_counts(list(pred.segmentation), [arrays.labels[i] for i in val])
    tumor = list(DICE_GROUPS).index("tumor")
    expected = counts[tumor, 0] / counts[tumor, 1] if counts[tumor, 1] else 0.0
    assert tau == pytest.approx(expected)
    saved = torch.load(tmp_path / "v.pt", weights_only=False)
    assert all(v.device.type == "cpu" for v in saved["state"]["best_state"].values())


def test_selection_waits_for_the_segmentation() -> None:
    # Regression (demo retraining, 2026-11-26): the inner-validation macro-F1 of 26 cases
    # peaked at epoch 8, before the tumor was segmented at all, and that state was shipped
    # with tumor Dice 0.00 on the outer test fold although epoch 46 reached 0.91.
    state: dict[str, object] = {"best": -1.0, "stale": 0}
    assert not _select(state, score=0.54, tau=0.0, gate=0.5)
    assert state == {"best": -1.0, "stale": 0}  # not eligible: neither best nor stale
    assert _select(state, score=0.39, tau=0.78, gate=0.5)
    assert state == {"best": 0.39, "stale": 0}
    assert not _select(state, score=0.39, tau=0.9, gate=0.5)
    assert state["stale"] == 1  # ties do not replace the best
    assert _select({"best": -1.0, "stale": 0}, score=0.1, tau=0.0, gate=None)  # tabular


def test_a_fit_that_never_segments_keeps_its_last_state(tmp_path: Path) -> None:
    arrays = tiny_arrays(4)
    config = TrainConfig(
        max_epochs=2, patience=2, batch_size=(2,), augment=False, selection_min_tumor_dice=1.0
    )
    fit = fit_model(
        arrays, np.arange(2), np.arange(2, 4), config.grid()[0], config,
        mode=ModelMode.CT_ONLY, adaptive=True, checkpoint=tmp_path / "c.pt", seed=0,
    )  # fmt: skip
    saved = torch.load(tmp_path / "c.pt", weights_only=False)
    assert fit.epochs == 2 and saved["state"]["best_state"] is None
    for name, value in fit.model.state_dict().items():
        torch.testing.assert_close(value, saved["model"][name])
    with pytest.raises(ValueError, match="selection_min_tumor_dice"):
        TrainConfig(selection_min_tumor_dice=1.5)


def test_the_swin_cube_is_a_multiple_of_32_though_preprocessing_takes_16() -> None:
    assert PreprocessConfig(48, 144.0).spacing_mm == 3.0  # the detector's stage-2 cube
    with pytest.raises(ValueError, match="multiple of 16"):
        PreprocessConfig(40, 120.0)
    with pytest.raises(ValueError, match="target_size must be a multiple of 32"):
        TrainConfig(target_size=48)


@pytest.mark.parametrize(
    "path",
    [
        "bundles/demo/train-config.toml",
        "bundles/demo/train-config-gpu.toml",
        "scripts/demo_bundle_next.toml",
    ],
)
def test_shipped_training_configs_load(path: str) -> None:
    config = load_config(Path(__file__).parents[2] / path)
    assert config.target_size == 96 and config.weights_dtype == "float16"
    assert config.selection_min_tumor_dice == 0.5 and config.init_from == "bundles/demo"


def test_shipped_config_is_the_one_the_demo_bundle_records() -> None:
    root = Path(__file__).parents[2]
    shipped = load_config(root / "bundles/demo/train-config.toml").to_dict()
    recorded = json.loads((root / "bundles/demo/bundle.json").read_text())["training"]["config"]
    assert recorded["freeze_image_branch"] and recorded["image_pooling"] == "contact"
    # The run read its warm start from another folder (bundles/demo/train-config.toml says so).
    assert recorded.pop("init_from") and shipped.pop("init_from") == "bundles/demo"
    # A field added after the bundle was made is absent from its record: it had its default.
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    recorded = {k: recorded.get(k, defaults[k]) for k in defaults if k != "init_from"}
    # scripts/train_demo_bundle_gpu.sh sets the time budget from the time its call has left.
    assert recorded.pop("time_budget_min") > 0 and shipped.pop("time_budget_min") == 0
    assert json.loads(json.dumps(shipped)) == recorded


_OLD_TRUTH = "patient_id,nccn_label,rule_category\nP1,0,0\nP2,2,2\nP3,1,1\n"
_WIDE_TRUTH = (
    "patient_id,nccn_label,rule_category,contact_sma,has_tumor,tumor_attenuation,variant\n"
    "P1,0,0,0,1,hypo,standard\nP2,2,2,200,1,iso,standard\nP3,1,1,100,1,hypo,replaced_rha\n"
    "P4,,,,0,,standard\n"
)


def _cohort(folder: Path, truth: str, tumor_in: tuple[str, ...] = ()) -> Path:
    """A cohort of small NIfTI cases (``truth`` as truth.csv); ``tumor_in`` get a tumor."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "truth.csv").write_text(truth, encoding="utf-8")
    ids = [line.split(",")[0] for line in truth.splitlines()[1:]]
    rows = "".join(f"{pid},{60 + i},{i % 2}\n" for i, pid in enumerate(ids))
    (folder / "clinical.csv").write_text("patient_id,age,sex\n" + rows, encoding="utf-8")
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    for pid in ids:
        label = np.zeros((24, 24, 16), dtype=np.uint8)
        label[8:16, 8:16, 6:10] = 1
        if pid in tumor_in:
            label[10:13, 10:13, 7:9] = 2
        image = np.where(label > 0, 100.0, -50.0).astype(np.float32)
        write_nifti(Volume(image, affine), folder / pid / "image.nii.gz")
        write_nifti(Volume(label, affine), folder / pid / "label.nii.gz")
    return folder


def test_tumor_free_patients_are_read_and_old_tables_read_as_before(tmp_path: Path) -> None:
    old = discover_cases(_cohort(tmp_path / "old", _OLD_TRUTH, ("P1", "P2", "P3")))
    assert [c.nccn_label for c in old] == [0, 2, 1] and all(c.has_tumor for c in old)
    wide = discover_cases(_cohort(tmp_path / "wide", _WIDE_TRUTH, ("P1", "P2", "P3")))
    assert [c.nccn_label for c in wide] == [0, 2, 1, NO_TUMOR]
    assert [c.has_tumor for c in wide] == [True, True, True, False]
    assert [(c.patient_id, c.clinical) for c in wide[:3]] == [
        (c.patient_id, c.clinical) for c in old
    ]
    bad = tmp_path / "bad"
    for truth, message in (
        ("patient_id,nccn_label,has_tumor\nP1,1,0\n", "tumor-free patient 'P1' has an nccn_label"),
        ("patient_id,nccn_label,has_tumor\nP1,1,2\n", "has_tumor of 'P1' must be 0, 1 or empty"),
        ("patient_id,nccn_label\nP1,x\n", "no valid nccn_label for 'P1'"),
        ("patient_id,label\nP1,0\n", "has no nccn_label column"),
    ):
        _cohort(bad, truth)
        with pytest.raises(ValueError, match=message):
            discover_cases(bad)


def test_tumor_free_cubes_load_and_one_with_tumor_voxels_is_refused(tmp_path: Path) -> None:
    config = PreprocessConfig(32, 64.0)
    wide = _cohort(tmp_path / "wide", _WIDE_TRUTH, ("P1", "P2", "P3"))
    arrays = load_cohort(discover_cases(wide), config, None)
    assert arrays.targets.tolist() == [0, 2, 1, NO_TUMOR]
    assert not (arrays.labels[3] == 2).any() and (arrays.labels[0] == 2).any()
    wrong = _cohort(tmp_path / "wrong", _WIDE_TRUTH, ("P1", "P2", "P3", "P4"))
    refused = r"P4: tumor-free in truth\.csv, tumor in its labels"
    with pytest.raises(ValueError, match=refused):
        load_cohort(discover_cases(wrong), config, None)
    # A cube cached while truth.csv gave P4 a tumor is checked as well once it no longer does.
    (wrong / "truth.csv").write_text(_WIDE_TRUTH.replace("P4,,,,0,", "P4,0,0,0,1,"))
    assert load_cohort(discover_cases(wrong), config, tmp_path / "cache").targets[3] == 0
    (wrong / "truth.csv").write_text(_WIDE_TRUTH)
    with pytest.raises(ValueError, match=refused):
        load_cohort(discover_cases(wrong), config, tmp_path / "cache")


def test_the_training_data_hash_of_a_cohort_without_tumor_free_patients_is_unchanged() -> None:
    # The shipped bundle records this digest of its cohort: reading tumor-free patients must
    # not change what it is for the cohorts that have none (value computed before they were).
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 16, (6, 8, 8, 8)).astype(np.uint8)
    images = rng.normal(0, 1, labels.shape).astype(np.float32)
    clinical = rng.normal(0, 1, (6, 17))
    clinical[0, 3] = np.nan
    targets = np.array([0, 1, 2, 0, 1, 2], dtype=np.int64)
    arrays = CohortArrays(images, labels, clinical, targets, tuple(f"P{i}" for i in range(6)))
    digest = "40e041a6aea106100f846ecf51a62600145fd76ad786aa5ec8b6cea88e79dc41"
    assert data_hash(arrays) == digest


def test_tumor_free_patients_are_a_stratum_of_their_own() -> None:
    labels = [0] * 40 + [1] * 20 + [2] * 15 + [NO_TUMOR] * 25
    for split in nested_splits(labels, 5, seed=2):
        free = (np.asarray(labels)[split.test] == NO_TUMOR).sum()
        assert free == 5  # 25 tumor-free patients spread evenly over the outer folds
        assert (np.asarray(labels)[split.val] == NO_TUMOR).sum() >= 3
