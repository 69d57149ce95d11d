"""Loss schedule at its thresholds, and optimisation lowers the multitask loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.tasks.resectability.model import ModelConfig, ResectabilityNet
from training.dataset import NO_TUMOR
from training.losses import (
    ClassificationLoss,
    MultitaskLoss,
    SegmentationLoss,
    loss_weights,
    median_frequency_weights,
    tumor_dice,
)

torch.set_num_threads(2)


@pytest.mark.parametrize(
    ("tau", "w_seg"),
    [
        (0.0, 3.0),
        (0.0999, 3.0),
        (0.1, 1.5),
        (0.4999, 1.5),
        (0.5, 1.0),
        (0.9, 1.0),
        (float("nan"), 3.0),
    ],
)
def test_adaptive_schedule(tau: float, w_seg: float) -> None:
    got_seg, got_cls = loss_weights(tau)
    assert got_seg == w_seg
    assert got_cls == pytest.approx(1.0 / w_seg)


def test_fixed_weights() -> None:
    assert loss_weights(0.0, adaptive=False) == (1.0, 1.0)


def test_class_weights_change_the_loss() -> None:
    logits = torch.zeros(3, 3)
    target = torch.tensor([0, 1, 2])
    weighted = ClassificationLoss()(logits, target)
    torch.testing.assert_close(weighted, torch.tensor(1.0986123))  # uniform logits: log 3
    logits = torch.tensor([[0.0, 0.0, 5.0]])
    assert ClassificationLoss()(logits, torch.tensor([2])) < 0.1


def test_tumor_dice_counts() -> None:
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 2
    logits = torch.zeros(1, 16, 4, 4, 4)
    logits[0, 2, :1] = 5.0
    num, den = tumor_dice(logits, target)
    assert num / den == pytest.approx(2 * 16 / (16 + 32))


def test_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    net = ResectabilityNet(ModelConfig(clinical_features=8, feature_size=12, dropout=0.0))
    image = torch.randn(2, 1, 32, 32, 64)
    seg = torch.zeros(2, 1, 32, 32, 64, dtype=torch.long)
    seg[:, :, 8:20, 8:20, 8:20] = 1
    seg[:, :, 10:14, 10:14, 10:14] = 2
    clinical = torch.randn(2, 8)
    labels = torch.tensor([0, 2])
    loss_fn = MultitaskLoss(SegmentationLoss(), ClassificationLoss())
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(4):
        out = net(image, clinical)
        terms = loss_fn(out.class_logits, labels, out.seg_logits, seg)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
        losses.append(float(terms.total.detach()))
    assert terms.w_seg == 3.0
    assert losses[-1] < losses[0]


def test_median_frequency_weights_raise_only_rare_labels() -> None:
    maps = np.zeros((2, 10, 10, 10), dtype=np.uint8)  # label 0: the other 1626 voxels
    maps[:, :3, :6] = 1  # 360 voxels
    maps[:, 9, 9, :2] = 2  # 4 voxels: 90 times rarer than label 1
    maps[:, 8, 8, :5] = 3  # 10 voxels
    weights = median_frequency_weights(maps, 5, cap=100.0)
    median = float(np.median([1626, 360, 4, 10]))  # the present labels' counts: 185
    assert weights[0] == 1.0 and weights[1] == 1.0  # commoner than the median: not raised
    assert weights[2] == pytest.approx(median / 4)
    assert weights[3] == pytest.approx(median / 10)
    assert weights[4] == 100.0  # absent from the training rows: the cap
    assert median_frequency_weights(maps, 5)[2] == 10.0  # the default cap
    with pytest.raises(ValueError, match="cap"):
        median_frequency_weights(maps, 5, cap=0.5)


def test_median_frequency_counts_a_label_only_where_it_is_labelled() -> None:
    """A map that does not label a structure (partial labels) says nothing of its rarity."""
    maps = np.zeros((2, 10, 10, 10), dtype=np.uint8)
    maps[:, :3, :6] = 1  # 360 voxels in each map
    maps[0, 9, 9, :2] = 2  # 4 voxels, in the first map only: the second does not label it
    everything = np.ones((2, 3), dtype=bool)
    assert median_frequency_weights(maps, 3, 100.0, everything) == pytest.approx(
        median_frequency_weights(maps, 3, 100.0)
    )
    partial = everything.copy()
    partial[1, 2] = False
    # frequencies per 1000 labelled voxels: background 636 / 1000 and 640 / 1000 -> 638;
    # label 1: 360; label 2: 4 of the one map that labels it
    weights = median_frequency_weights(maps, 3, 1000.0, partial)
    assert weights[2] == pytest.approx(360.0 / 4.0)  # the median (label 1's) over label 2's
    # counted over both maps, label 2 would look twice as rare as it is
    assert median_frequency_weights(maps, 3, 1000.0)[2] == pytest.approx(360.0 / 2.0)


def test_label_weights_raise_a_missed_rare_label() -> None:
    # The rare label 2 is predicted as background: its weight raises the loss, and with it
    # the gradient that pulls the label back; a label the prediction gets right does not.
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    target[0, 0, 0, 0, :2] = 2
    logits = torch.zeros(1, 3, 4, 4, 4)
    logits[:, 0] = 4.0
    plain = SegmentationLoss(1.0, 0.0, 0.0)(logits, target)
    weighted = SegmentationLoss(1.0, 0.0, 0.0, label_weights=(1.0, 1.0, 10.0))(logits, target)
    assert weighted > 2.0 * plain
    right = torch.zeros_like(logits)
    right[:, 0] = 4.0
    right[0, 2, 0, 0, :2] = 8.0
    weighted_focal = SegmentationLoss(0.0, 0.0, 1.0, label_weights=(1.0, 1.0, 10.0))
    assert weighted_focal(right, target) < weighted_focal(logits, target)
    with pytest.raises(ValueError, match="positive"):
        SegmentationLoss(label_weights=(1.0, 0.0, 1.0))


def test_tumor_free_rows_are_left_out_of_the_classification_loss() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    targets = torch.tensor([0, NO_TUMOR, 2, NO_TUMOR, 1])
    loss_fn = ClassificationLoss((1.0, 2.0, 2.5))
    loss = loss_fn(logits, targets)
    kept = targets != NO_TUMOR
    expected = torch.nn.functional.cross_entropy(
        logits[kept], targets[kept], weight=torch.tensor([1.0, 2.0, 2.5])
    )
    assert loss.item() == pytest.approx(expected.item())  # the weighted mean over kept rows
    loss.backward()
    assert logits.grad is not None
    assert float(logits.grad[~kept].abs().max()) == 0.0
    assert float(logits.grad[kept].abs().min()) > 0.0
    # Without the column (every patient has a tumor) it is the plain weighted cross-entropy.
    plain = targets.clamp(min=0)
    assert loss_fn(logits, plain).item() == pytest.approx(
        torch.nn.functional.cross_entropy(
            logits, plain, weight=torch.tensor([1.0, 2.0, 2.5])
        ).item()
    )


def test_a_batch_of_tumor_free_rows_trains_only_the_segmentation() -> None:
    logits = torch.randn(2, 3, requires_grad=True)
    free = torch.full((2,), NO_TUMOR)
    cls = ClassificationLoss()(logits, free)
    assert cls.item() == 0.0 and not torch.isnan(cls)
    cls.backward()
    assert logits.grad is not None and float(logits.grad.abs().max()) == 0.0
    seg_logits = torch.randn(2, 16, 4, 4, 4, requires_grad=True)
    seg_target = torch.zeros(2, 1, 4, 4, 4, dtype=torch.long)
    seg_target[:, :, 1:3, 1:3, 1:3] = 1  # a pancreas, no tumor
    terms = MultitaskLoss(SegmentationLoss(), ClassificationLoss())(
        logits, free, seg_logits, seg_target
    )
    assert terms.seg is not None and terms.seg.item() > 0.0
    assert terms.total.item() == pytest.approx(terms.w_seg * terms.seg.item())
