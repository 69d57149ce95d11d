"""The augmentations beyond the paper's: off by default, each one on, label-wise intensities."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.tasks.resectability.model import ModelMode
from inference.volume import Volume, write_nifti
from pancreas_contracts.labels import NUM_CLASSES
from tests.training._training_arrays import tiny_arrays, tiny_config
from training._augment import PANCREAS, TUMOR, RandLabelwiseIntensityd, extra_transforms
from training._loop import CohortArrays, _validate, fit_model, predict
from training._metrics import selection_score
from training._splits import nested_splits
from training.cohort import train_cohort
from training.config import Augmentations, load_config
from training.dataset import NO_TUMOR, discover_cases, make_augmentation
from training.losses import ClassificationLoss

torch.set_num_threads(2)

EVERY = Augmentations(
    labelwise_prob=1.0, zoom_prob=1.0, lowres_prob=1.0, gamma_prob=1.0, contrast_prob=1.0,
    shift_prob=1.0, smooth_prob=1.0, noise_prob=1.0,
)  # fmt: skip
"""Every augmentation on, always drawn."""


def _paper_chain(seed: int) -> Any:
    """METHOD.md's chain exactly as it was written before the extra augmentations existed."""
    from monai.transforms.compose import Compose
    from monai.transforms.intensity.dictionary import RandGaussianNoised, RandShiftIntensityd
    from monai.transforms.spatial.dictionary import RandAffined, RandFlipd, RandRotate90d

    keys = ["image", "label"]
    transform = Compose(
        [
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandFlipd(keys, prob=0.5, spatial_axis=2),
            RandRotate90d(keys, prob=0.5, max_k=3, spatial_axes=(0, 1)),
            RandAffined(
                keys, prob=0.5, rotate_range=(0.1, 0.1, 0.1), mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            RandGaussianNoised("image", prob=0.5, std=0.01),
            RandShiftIntensityd("image", prob=0.5, offsets=0.1),
        ]
    )  # fmt: skip
    transform.set_random_state(seed=seed)
    return transform


def _sample(seed: int = 0) -> dict[str, torch.Tensor]:
    arrays = tiny_arrays(1)
    rng = np.random.default_rng(seed)
    image = arrays.images[0] + rng.normal(0, 0.2, arrays.images[0].shape).astype(np.float32)
    return {
        "image": torch.from_numpy(image)[None],
        "label": torch.from_numpy(arrays.labels[0].astype(np.int64))[None],
    }


def test_the_default_chain_is_the_papers_draw_for_draw() -> None:
    assert Augmentations().active == ()
    assert extra_transforms(Augmentations()) == ([], [])
    assert load_config(None).augmentation == Augmentations()
    ours, default, paper = (
        make_augmentation(3),
        make_augmentation(3, Augmentations()),
        _paper_chain(3),
    )
    names = [type(t).__name__ for t in ours.transforms]
    assert names == [type(t).__name__ for t in paper.transforms]
    assert [type(t).__name__ for t in default.transforms] == names
    for draw in range(6):  # several draws: the random streams stay in step too
        sample = _sample(draw)
        outs = [chain(dict(sample)) for chain in (ours, default, paper)]
        for out in outs[1:]:
            torch.testing.assert_close(
                torch.as_tensor(out["image"]), torch.as_tensor(outs[0]["image"])
            )
            torch.testing.assert_close(
                torch.as_tensor(out["label"]), torch.as_tensor(outs[0]["label"])
            )


@pytest.mark.parametrize("name", EVERY.active)
def test_each_augmentation_changes_the_image_and_keeps_the_labels_valid(name: str) -> None:
    switch: dict[str, Any] = {f"{name}_prob": 1.0}
    only = Augmentations(**switch)
    assert only.active == (name,)
    before, after = extra_transforms(only)
    assert len(before) + len(after) == 1
    chain = make_augmentation(1, only)
    assert len(chain.transforms) == 8
    plain, sample = make_augmentation(1)(_sample()), _sample()
    out = chain(sample)
    image, label = torch.as_tensor(out["image"]), torch.as_tensor(out["label"])
    assert image.shape == sample["image"].shape and label.shape == sample["label"].shape
    assert bool(torch.isfinite(image).all())
    assert set(torch.unique(label).tolist()) <= set(torch.unique(sample["label"]).tolist())
    assert not torch.allclose(image, torch.as_tensor(plain["image"]))


def test_labelwise_intensities_follow_the_labels_and_keep_the_background_shapes() -> None:
    sample = _sample()
    label = sample["label"]
    label[0, 20:24, 20:24, 40:50] = 8  # a vessel beside the pancreas
    transform = RandLabelwiseIntensityd(prob=1.0, noise=0.0, blur=0.0, tumor_contrast=0.2)
    for seed in range(5):
        transform.set_random_state(seed)
        image = transform(sample)["image"]
        assert float(image.mean()) == pytest.approx(0.0, abs=1e-4)
        assert float(image.std()) == pytest.approx(1.0, abs=1e-3)
        means = {k: image[label == k] for k in (PANCREAS, TUMOR, 8)}
        for values in means.values():  # no noise: one intensity per label
            assert float(values.std()) == pytest.approx(0.0, abs=1e-4)
        drawn = transform.means
        assert drawn[PANCREAS] - drawn[TUMOR] >= 0.2 - 1e-6  # the tumor stays visible
        assert float(means[TUMOR][0]) < float(means[PANCREAS][0])
        # the background is the CT under a linear map: perfectly correlated with it
        background = label == 0
        ct, synth = sample["image"][background].double(), image[background].double()
        assert float(torch.corrcoef(torch.stack([ct, synth]))[0, 1]) == pytest.approx(1.0)
    assert len({round(float(m), 6) for m in transform.means}) == NUM_CLASSES  # random per label


def test_labelwise_is_skipped_at_probability_zero_and_noisy_with_noise() -> None:
    sample = _sample()
    untouched = RandLabelwiseIntensityd(prob=0.0)(sample)
    assert untouched["image"] is sample["image"]
    noisy = RandLabelwiseIntensityd(prob=1.0, noise=0.3, blur=0.0)
    noisy.set_random_state(4)
    image = noisy(sample)["image"]
    assert float(image[sample["label"] == PANCREAS].std()) > 0.0


def test_augmentation_settings_load_from_the_config_table_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[augmentation]\nlabelwise_prob = 0.3\nzoom_prob = 0.2\nzoom_range = [0.9, 1.1]\n"
    )
    config = load_config(path)
    assert config.augmentation.labelwise_prob == 0.3
    assert config.augmentation.zoom_range == (0.9, 1.1)
    assert config.augmentation.active == ("labelwise", "zoom")
    assert config.to_dict()["augmentation"]["labelwise_prob"] == 0.3
    path.write_text("[augmentation]\nbogus_prob = 0.3\n")
    with pytest.raises(ValueError, match="unknown augmentation keys"):
        load_config(path)
    with pytest.raises(ValueError, match="noise_prob"):
        Augmentations(noise_prob=1.5)
    with pytest.raises(ValueError, match="zoom_range"):
        Augmentations(zoom_range=(1.2, 0.9))


def _with_tumor_free(arrays: CohortArrays, rows: tuple[int, ...]) -> CohortArrays:
    """``arrays`` with the patients of ``rows`` made tumor-free (no tumor voxel, no category)."""
    labels, targets = arrays.labels.copy(), arrays.targets.copy()
    for row in rows:
        labels[row][labels[row] == TUMOR] = PANCREAS
        targets[row] = NO_TUMOR
    return dataclasses.replace(arrays, labels=labels, targets=targets)


def _disk_cohort(folder: Path, free: tuple[int, ...]) -> Path:
    """Eight small NIfTI patients (3 classes) in the cohort layout; ``free`` are tumor-free."""
    header = "patient_id,nccn_label,rule_category,contact_SMA,has_tumor,generator\n"
    rows, clinical = [], []
    for i in range(8):
        pid, label = f"P{i}", np.zeros((40, 40, 20), dtype=np.uint8)
        label[14:26, 14:26, 7:13] = PANCREAS
        label[18:21, 24:27, 5:15] = 6  # SMA
        if i not in free:
            label[17 - i % 3 : 21, 20:24, 8:12] = TUMOR  # larger with the class: reaches the SMA
        image = np.select([label == 6, label == TUMOR, label > 0], [250.0, 40.0, 110.0], -60.0)
        affine = np.diag([4.0, 4.0, 4.0, 1.0])
        write_nifti(Volume(image.astype(np.float32), affine), folder / pid / "image.nii.gz")
        write_nifti(Volume(label, affine), folder / pid / "label.nii.gz")
        cls, contact = ("", "") if i in free else (str(i % 3), str(90 * (i % 3)))
        rows.append(f"{pid},{cls},{cls},{contact},{int(i not in free)},t\n")
        clinical.append(f"{pid},{55 + i},{i % 2},{20 + i}\n")
    (folder / "truth.csv").write_text(header + "".join(rows), encoding="utf-8")
    (folder / "clinical.csv").write_text("patient_id,age,sex,bmi\n" + "".join(clinical))
    return folder


def test_one_epoch_with_every_augmentation_and_tumor_free_patients(tmp_path: Path) -> None:
    cohort = _disk_cohort(tmp_path / "cohort", free=(1, 6))
    config = tiny_config(augment=True, augmentation=EVERY, ablations=("geometry", "knockout"))
    run = train_cohort(cohort, tmp_path / "out", config)
    header = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "8 patients, classes [2, 2, 2], 2 tumor-free" in header
    assert "METHOD.md's + labelwise, zoom, lowres, gamma, contrast, shift, smooth, noise" in header
    targets = [c.nccn_label for c in discover_cases(cohort)]
    test = nested_splits(targets, 2, config.seed)[0].test
    with_category = sum(targets[i] != NO_TUMOR for i in test)
    assert 0 < with_category < len(test)  # the tumor-free stratum is spread over the folds
    for variant in ("multimodal", "geometry", "knockout"):
        confusion = np.asarray(run.folds[variant][0]["confusion"])
        assert confusion.sum() == with_category  # scored only where there is a category


def test_a_tumor_free_patient_adds_nothing_to_the_classification_loss(tmp_path: Path) -> None:
    arrays = _with_tumor_free(tiny_arrays(4), (0,))
    config = tiny_config(augment=True, augmentation=EVERY)
    fit = fit_model(
        arrays, np.arange(3), np.arange(3, 4), config.grid()[0], config,
        mode=ModelMode.MULTIMODAL, adaptive=True, checkpoint=tmp_path / "m.pt", seed=0,
    )  # fmt: skip
    assert fit.epochs == 1
    model = fit.model.eval()
    model.zero_grad(set_to_none=True)  # the last training step's gradients are still there
    features = torch.from_numpy(fit.preprocessor.transform(arrays.clinical).features[:3])
    out = model(torch.from_numpy(arrays.images[:3])[:, None], features)
    targets = torch.from_numpy(arrays.targets[:3])
    loss_fn = ClassificationLoss(config.class_weights)
    whole = loss_fn(out.class_logits, targets).item()
    assert whole > 0 and whole == pytest.approx(loss_fn(out.class_logits[1:], targets[1:]).item())
    free_only = loss_fn(out.class_logits[:1], targets[:1])
    assert free_only.item() == 0.0
    free_only.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(float(g.abs().max()) == 0.0 for g in grads)
    # Model selection scores the rows with a category only; the tumor Dice counts them all.
    every = fit.preprocessor.transform(arrays.clinical).features
    score, _ = _validate(model, arrays, np.arange(4), every, torch.device("cpu"))
    kept = predict(model, arrays, np.arange(1, 4), every, torch.device("cpu")).probs
    assert score == pytest.approx(selection_score(arrays.targets[1:4].tolist(), kept))


def test_a_logit_sum_fit_leaves_tumor_free_rows_out_of_its_clinical_expert(tmp_path: Path) -> None:
    arrays = _with_tumor_free(tiny_arrays(6), (1, 4))
    config = tiny_config(fusion="logit_sum")
    fit = fit_model(
        arrays, np.arange(4), np.arange(4, 6), config.grid()[0], config,
        mode=ModelMode.MULTIMODAL, adaptive=True, checkpoint=tmp_path / "e.pt", seed=0,
    )  # fmt: skip
    weight = fit.model.clinical_expert_weight
    assert weight is not None and 0.0 <= weight <= 2.0
    # Its validation score is that of the one validation row with a category, row 5.
    features = fit.preprocessor.transform(arrays.clinical).features
    probs = predict(fit.model, arrays, np.array([5]), features, torch.device("cpu")).probs
    assert fit.best_val_f1 == pytest.approx(selection_score([int(arrays.targets[5])], probs))
