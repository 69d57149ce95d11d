"""Fit the detector's two stages on one fold's training rows (the paper's training order).

Stage 1: Dice + cross-entropy on the pancreas. Stage 2 in three phases: segmentation (the
U-Net; the classification head untouched), classification (the FPN head alone, the encoder
and decoder frozen; weighted cross-entropy), end-to-end fine-tuning (every parameter, the sum
of both losses). Each phase: Adam, cosine annealing over its epochs, mini-batches of
``batch_size`` in a seeded random order; augmentation (when on) is a random flip per axis and
a small intensity shift, applied alike to image and mask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from monai.losses.dice import DiceCELoss
from torch import nn

from inference.tasks.detection.model import MultiTaskNet, build_stage1
from training._detection_data import DetectionArrays
from training.detection_config import DetectionConfig

__all__ = ["PhaseLog", "fit_stage1", "fit_stage2"]

_LOG = logging.getLogger(__name__)
IntArray = npt.NDArray[np.int64]
Status = Callable[[str, int, int], None]
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PhaseLog:
    """Mean training loss per epoch of one phase."""

    phase: str
    losses: tuple[float, ...]


def _augment(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [d + 2 for d in range(3) if rng.random() < 0.5]
    if dims:
        image, mask = image.flip(dims), mask.flip(dims)
    return image + float(rng.uniform(-0.1, 0.1)), mask


def _phase(
    name: str,
    params: Iterable[nn.Parameter],
    step: Step,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    epochs: int,
    lr: float,
    config: DetectionConfig,
    rng: np.random.Generator,
    status: Status | None,
) -> PhaseLog:
    """Run ``epochs`` epochs of ``step(images, masks, targets) -> loss`` over the rows."""
    images, masks, targets = tensors
    optimiser = torch.optim.Adam(list(params), lr=lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs))
    losses = []
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = torch.from_numpy(order[start : start + config.batch_size])
            image, mask = images[rows], masks[rows]
            if config.augment:
                image, mask = _augment(image, mask, rng)
            loss = step(image, mask, targets[rows])
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        scheduler.step()
        losses.append(total / max(1, len(order)))
        _LOG.info("%s epoch %d/%d loss %.4f", name, epoch + 1, epochs, losses[-1])
        if status is not None:
            status(f"{name} loss {losses[-1]:.3f}", epoch + 1, epochs)
    return PhaseLog(name, tuple(losses))


def _tensors(
    images: npt.NDArray[np.float32],
    masks: npt.NDArray[np.uint8],
    targets: IntArray,
    rows: IntArray,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(images[rows][:, None].copy()).to(device),
        torch.from_numpy(masks[rows][:, None].astype(np.int64)).to(device),
        torch.from_numpy(targets[rows].copy()).to(device),
    )


def _dice_ce() -> DiceCELoss:
    return DiceCELoss(to_onehot_y=True, softmax=True, batch=True)


def fit_stage1(
    arrays: DetectionArrays,
    rows: IntArray,
    config: DetectionConfig,
    device: torch.device,
    status: Status | None = None,
) -> tuple[nn.Module, PhaseLog]:
    """Train the pancreas segmenter on ``rows``; returned on the CPU in eval mode."""
    torch.manual_seed(config.seed)
    network = build_stage1(config.stage1).to(device).train()
    loss_fn = _dice_ce()

    def step(image: torch.Tensor, mask: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = loss_fn(network(image), mask)
        return loss

    tensors = _tensors(arrays.stage1_images, arrays.stage1_masks, arrays.positive, rows, device)
    rng = np.random.default_rng(config.seed)
    log = _phase("stage1", network.parameters(), step, tensors, config.stage1_epochs,
                 config.stage1_lr, config, rng, status)  # fmt: skip
    return network.cpu().eval(), log


def fit_stage2(
    arrays: DetectionArrays,
    rows: IntArray,
    config: DetectionConfig,
    device: torch.device,
    status: Status | None = None,
) -> tuple[MultiTaskNet, tuple[PhaseLog, ...]]:
    """Train the multi-task network on ``rows`` in the paper's three phases."""
    torch.manual_seed(config.seed + 1)
    network = MultiTaskNet(config.stage2).to(device).train()
    seg_loss = _dice_ce()
    weights = torch.tensor(config.class_weights, dtype=torch.float32, device=device)
    cls_loss = nn.CrossEntropyLoss(weight=weights)

    def segment(image: torch.Tensor, mask: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = seg_loss(network(image).seg_logits, mask)
        return loss

    def classify(image: torch.Tensor, _: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            levels = network.encode(image)[-3:]
        loss: torch.Tensor = cls_loss(network.classifier(levels), target)
        return loss

    def both(image: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = network(image)
        total: torch.Tensor = seg_loss(out.seg_logits, mask) + cls_loss(out.class_logits, target)
        return total

    tensors = _tensors(arrays.stage2_images, arrays.stage2_masks, arrays.positive, rows, device)
    rng = np.random.default_rng(config.seed + 1)
    phases = (
        ("segmentation", network.segmentation_parameters(), segment, config.seg_epochs,
         config.stage2_lr),
        ("classification", network.classification_parameters(), classify, config.cls_epochs,
         config.stage2_lr),
        ("finetune", network.parameters(), both, config.finetune_epochs, config.finetune_lr),
    )  # fmt: skip
    logs = []
    for name, params, step, epochs, lr in phases:
        if epochs > 0:
            logs.append(_phase(name, params, step, tensors, epochs, lr, config, rng, status))
    return network.cpu().eval(), tuple(logs)
