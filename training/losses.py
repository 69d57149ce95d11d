"""Losses of METHOD.md section 1: segmentation, weighted classification and their schedule.

``L_total = w_seg(tau) * L_seg + w_cls(tau) * L_cls`` with ``tau`` the current tumor Dice
(measured on the inner validation split after each epoch):
``w_seg = 3.0`` for ``tau < 0.1``, ``1.5`` for ``0.1 <= tau < 0.5``, ``1.0`` for ``tau >= 0.5``
and ``w_cls = 1 / w_seg``. The fixed-weights ablation uses ``w_seg = w_cls = 1``.

Tumor-free patients (target :data:`training.dataset.NO_TUMOR`) have no NCCN category: they
count in the segmentation term (their label maps teach "no tumor") and not in the
classification term; so do patients whose category is unknown
(:data:`training.dataset.NCCN_UNKNOWN`).

Partial labels: a case whose label map annotates only some structures (truth.csv's
``labelled``) gets the marginal loss (Shi et al., "Marginal loss and exclusion loss for
partially supervised multi-organ segmentation", MedIA 2021; Fang and Yan, IEEE TMI 2020):
the softmax probabilities of its unlabelled classes are merged into the background before the
voxel-wise terms (cross-entropy, focal), since a 0 voxel there may be any of them, and the Dice
term averages over its labelled foreground classes only. A fully labelled case gets exactly
the loss it got before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from monai.losses.dice import DiceLoss
from monai.losses.focal_loss import FocalLoss
from torch import nn
from torch.nn import functional

from training.dataset import NCCN_UNKNOWN, NO_TUMOR

__all__ = [
    "CLASS_WEIGHTS",
    "ClassificationLoss",
    "LossTerms",
    "MultitaskLoss",
    "SegmentationLoss",
    "loss_weights",
    "median_frequency_weights",
    "merge_unlabelled",
    "tumor_dice",
]

CLASS_WEIGHTS: tuple[float, float, float] = (1.0, 2.0, 2.5)
"""Classification cross-entropy weights for resectable, borderline, locally advanced."""

TUMOR_LABEL = 2

# An unlabelled class's logit after marginalisation: its probability is exactly 0 in float32
# (exp(-1e4) underflows) and 0 * log p stays finite in the focal term, unlike -inf.
_ABSENT = -1.0e4


def loss_weights(tau: float, *, adaptive: bool = True) -> tuple[float, float]:
    """``(w_seg, w_cls)`` for the current tumor Dice ``tau``.

    Parameters
    ----------
    tau
        Tumor Dice in [0, 1] (NaN is treated as 0: no tumor found yet).
    adaptive
        ``False`` gives the fixed (1, 1) ablation.

    Returns
    -------
    tuple of float
        Segmentation and classification weights; ``w_cls = 1 / w_seg``.
    """
    if not adaptive:
        return 1.0, 1.0
    if tau != tau or tau < 0.1:
        w_seg = 3.0
    elif tau < 0.5:
        w_seg = 1.5
    else:
        w_seg = 1.0
    return w_seg, 1.0 / w_seg


def median_frequency_weights(
    label_maps: npt.NDArray[np.uint8],
    n_labels: int,
    cap: float = 10.0,
    labelled: npt.NDArray[np.bool_] | None = None,
) -> tuple[float, ...]:
    """Per-label voxel weights by median-frequency balancing, floored at 1.

    Median-frequency balancing (Eigen and Fergus, ICCV 2015) weights label ``k`` by
    ``median(f) / f_k``, ``f`` the labels' voxel frequencies. Here the weights are clipped to
    ``[1, cap]``: only labels rarer than the median are raised, so the large structures and
    the background keep the plain cross-entropy and a small vessel (the celiac trunk is about
    200 of the 96^3 voxels) cannot be silenced by its neighbours. A label absent from
    ``label_maps`` gets ``cap``.

    Parameters
    ----------
    label_maps
        Integer label maps of the training rows only (any shape).
    n_labels
        Number of labels, background included.
    cap
        Largest weight.
    labelled
        ``(N, n_labels)`` labelled classes of the ``N`` maps (partial labels,
        :mod:`training._partial_labels`), or ``None`` when every map labels everything. A
        label's frequency is then its voxels over the voxels of the maps that label it: a map
        that does not label a structure says nothing about how rare it is.

    Returns
    -------
    tuple of float
        ``n_labels`` weights.
    """
    if cap < 1.0:
        raise ValueError("the weight cap must be at least 1")
    maps = np.asarray(label_maps)
    if labelled is None:
        counts = np.bincount(maps.ravel(), minlength=n_labels)[:n_labels].astype(np.float64)
    else:
        per_map = np.stack([np.bincount(m.ravel(), minlength=n_labels)[:n_labels] for m in maps])
        seen = (np.asarray(labelled, dtype=bool) * (maps.size // max(1, len(maps)))).sum(axis=0)
        counts = np.where(seen > 0, (per_map * labelled).sum(axis=0) / np.maximum(seen, 1), 0.0)
    present = counts[counts > 0]
    if present.size == 0:
        raise ValueError("no labelled voxels to balance")
    median = float(np.median(present))
    ratio = np.full(n_labels, cap, dtype=np.float64)
    ratio[counts > 0] = median / counts[counts > 0]
    return tuple(float(w) for w in np.clip(ratio, 1.0, cap))


class SegmentationLoss(nn.Module):
    """``alpha * CE + beta * Dice + omega * Focal`` over the 16 labels.

    Parameters
    ----------
    alpha, beta, omega
        Coefficients (the paper searches each in [0.2, 0.6]).
    label_weights
        Optional per-label weights of the two voxel-wise terms (cross-entropy and focal), for
        example :func:`median_frequency_weights`; the Dice term weighs every label alike
        already. ``None``: unweighted, as in METHOD.md.
    """

    label_weight: torch.Tensor | None

    def __init__(
        self,
        alpha: float = 0.4,
        beta: float = 0.4,
        omega: float = 0.2,
        label_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if min(alpha, beta, omega) < 0 or alpha + beta + omega <= 0:
            raise ValueError("segmentation loss coefficients must be non-negative, not all 0")
        if label_weights is not None and min(label_weights) <= 0:
            raise ValueError("label weights must be positive")
        self.alpha, self.beta, self.omega = alpha, beta, omega
        weight = None if label_weights is None else torch.tensor(list(label_weights))
        self.register_buffer("label_weight", weight)
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False)
        self.focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0, weight=weight)

        self.dice_each = DiceLoss(
            to_onehot_y=True, softmax=True, include_background=False, reduction="none"
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of ``(B, C, D, H, W)`` logits against ``(B, 1, D, H, W)`` integer labels.

        Parameters
        ----------
        logits, target
            Network output and label maps.
        labelled
            Optional ``(B, C)`` boolean: which classes each case's label map annotates
            (column 0, the background, is ignored). ``None`` or all ``True``: every case is
            fully labelled, the plain loss. Otherwise the marginal loss (module docstring).
        """
        if labelled is None or bool(labelled[:, 1:].all()):
            ce = functional.cross_entropy(logits, target[:, 0].long(), weight=self.label_weight)
            dice = self.dice(logits, target)
            focal = self.focal(logits, target)
            total: torch.Tensor = self.alpha * ce + self.beta * dice + self.omega * focal
            return total
        return self.marginal(logits, target, labelled)

    def marginal(
        self, logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor
    ) -> torch.Tensor:
        """The marginal loss for ``(B, C)`` labelled classes (the plain loss when all are).

        Raises
        ------
        ValueError
            If ``labelled`` is not ``(B, C)``.
        """
        if labelled.shape != logits.shape[:2]:
            raise ValueError(f"labelled must be {tuple(logits.shape[:2])}, got {labelled.shape}")
        known = labelled.to(logits.device, torch.bool).clone()
        known[:, 0] = True
        merged = merge_unlabelled(logits, known)
        ce = functional.cross_entropy(merged, target[:, 0].long(), weight=self.label_weight)
        focal = self.focal(merged, target)
        # The foreground probabilities are unchanged by the merge: Dice on the plain logits,
        # averaged over each case's labelled foreground classes.
        each = self.dice_each(logits, target).reshape(logits.shape[0], -1)
        counted = known[:, 1:].to(each.dtype)
        dice = (each * counted).sum() / counted.sum().clamp(min=1.0)
        total: torch.Tensor = self.alpha * ce + self.beta * dice + self.omega * focal
        return total


def merge_unlabelled(logits: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Float32 logits whose softmax merges each case's unlabelled classes into the background.

    The background logit becomes the log-sum-exp of the background's and the unlabelled
    classes' logits (so its probability is their sum) and the unlabelled classes' logits
    a large negative number (probability 0); labelled classes keep theirs.

    Parameters
    ----------
    logits
        ``(B, C, ...)`` network output.
    labelled
        ``(B, C)`` boolean, ``True`` for the classes each case annotates (column 0 ignored).
    """
    out = logits.float()
    shape = (*labelled.shape, *([1] * (logits.ndim - 2)))
    absent = ~labelled.to(torch.bool).reshape(shape).expand_as(out).clone()
    absent[:, 0] = False
    pooled = absent.clone()
    pooled[:, 0] = True
    background = torch.logsumexp(out.masked_fill(~pooled, float("-inf")), dim=1)
    merged = out.masked_fill(absent, _ABSENT)
    return torch.cat([background[:, None], merged[:, 1:]], dim=1)


class ClassificationLoss(nn.Module):
    """Class-weighted cross-entropy over the three NCCN classes; tumor-free rows ignored.

    Rows whose target is :data:`training.dataset.NO_TUMOR` or
    :data:`training.dataset.NCCN_UNKNOWN` (any negative target) add nothing, neither to the sum
    nor to the normaliser (the weighted mean runs over the rows with a category, as PyTorch's
    ``ignore_index``); a batch without such a row has loss 0 and no gradient. Computed
    without a host synchronisation, so a GPU step does not wait on it.

    Parameters
    ----------
    weights
        Per-class weights (default :data:`CLASS_WEIGHTS`; ``None`` entries are not allowed).
    """

    weight: torch.Tensor

    def __init__(self, weights: Sequence[float] = CLASS_WEIGHTS) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(list(weights), dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``(B, 3)`` logits against ``(B,)`` class indices (or a no-category target)."""
        target = target.long()
        counted = target >= 0
        # NCCN_UNKNOWN joins NO_TUMOR, the ignored index: no host synchronisation needed.
        target = target.masked_fill(target == NCCN_UNKNOWN, NO_TUMOR)
        rows = functional.cross_entropy(
            logits, target, weight=self.weight, ignore_index=NO_TUMOR, reduction="none"
        )
        norm = (self.weight[target.clamp(min=0)] * counted).sum()
        return rows.sum() / norm.clamp(min=1e-12)


@dataclass(frozen=True)
class LossTerms:
    """One evaluation of :class:`MultitaskLoss` (tensors keep their graph)."""

    total: torch.Tensor
    seg: torch.Tensor | None
    cls: torch.Tensor
    w_seg: float
    w_cls: float


class MultitaskLoss(nn.Module):
    """The weighted sum of segmentation and classification losses.

    Parameters
    ----------
    seg_loss, cls_loss
        The two terms.
    adaptive
        Tumor-Dice-driven weights (``True``) or the fixed (1, 1) ablation.
    """

    def __init__(
        self, seg_loss: SegmentationLoss, cls_loss: ClassificationLoss, *, adaptive: bool = True
    ) -> None:
        super().__init__()
        self.seg_loss = seg_loss
        self.cls_loss = cls_loss
        self.adaptive = adaptive
        self.tau = 0.0

    def set_tumor_dice(self, tau: float) -> None:
        """Record the latest validation tumor Dice (drives the weights)."""
        self.tau = float(tau)

    def forward(
        self,
        class_logits: torch.Tensor,
        labels: torch.Tensor,
        seg_logits: torch.Tensor | None = None,
        seg_target: torch.Tensor | None = None,
        seg_labelled: torch.Tensor | None = None,
    ) -> LossTerms:
        """Total loss; without segmentation logits only the classification term counts.

        ``seg_labelled``: the ``(B, C)`` classes each case's label map annotates
        (:meth:`SegmentationLoss.forward`); ``None``: all.
        """
        cls = self.cls_loss(class_logits, labels)
        if seg_logits is None or seg_target is None:
            return LossTerms(cls, None, cls, 0.0, 1.0)
        w_seg, w_cls = loss_weights(self.tau, adaptive=self.adaptive)
        seg = self.seg_loss(seg_logits, seg_target, seg_labelled)
        return LossTerms(w_seg * seg + w_cls * cls, seg, cls, w_seg, w_cls)


def tumor_dice(
    seg_logits: torch.Tensor, seg_target: torch.Tensor, label: int = TUMOR_LABEL
) -> tuple[float, float]:
    """Intersection and size sums for the Dice of one label over a batch.

    Returns
    -------
    tuple of float
        ``(2 * |P & T|, |P| + |T|)``; sum these over batches and divide for the Dice.
    """
    pred = seg_logits.argmax(dim=1) == label
    truth = seg_target[:, 0] == label
    inter = float((pred & truth).sum())
    return 2.0 * inter, float(pred.sum() + truth.sum())
