"""Fit the lymph-node networks on one fold's training rows, in the paper's order.

1. :func:`fit_organs`: the organ & vessel segmenter, Dice + cross-entropy on the ten
   structures (MONAI ``DiceCELoss``), whole organ cubes;
2. :func:`fit_segmenter`: the node segmenter, Eq. (5): cross-entropy plus the Tversky loss of
   Eq. (3), ``1 - 2 TP / (2 TP + alpha FP + beta FN)`` over the batch (alpha 0.5, beta 1.5;
   alpha = beta = 1 is the Dice loss), equal weights; deep-supervision outputs (when
   configured) against max-pooled targets, weighted 1/2 per level and normalised as
   nnU-Net does. Patches are cut from each patient's node cube: with probability
   ``foreground_fraction`` one holding a node (a node drawn uniformly, then one of its
   voxels), else a random one; with attention, a
   random patch must hold an attention value > 0 (informative negative selection; up to 20
   draws, then the cube's most attended patch position is used);
3. :func:`fit_classifier`: the node classifier, its encoder copied from the segmenter, cross-
   entropy on the truth nodes' crops (and, with a not-node class, on the segmenter's false
   positives);
4. :func:`fit_patient`: the patient model, cross-entropy on the N status; each patient's
   tumor slices (all patches with the patient's label and node volume) or, without a tumor
   or when its tumor branch is dropped, the node branch alone.

Every phase: Adam, cosine annealing over its epochs, seeded order; augmentation (when on) is a
random flip per axis (alike on image, attention and mask) and a small intensity shift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.losses.dice import DiceCELoss
from torch import nn
from torch.nn import functional

from inference.tasks.lymph_nodes.model import (
    LymphNodeSegNet,
    NodeClassifier,
    SegConfig,
    SegOutput,
    build_organ_segmenter,
)
from inference.tasks.lymph_nodes.patient import PatientNet
from training._lymph_node_data import CaseArrays
from training.lymph_node_config import LymphNodeConfig

__all__ = [
    "PatientInputs",
    "PhaseLog",
    "fit_classifier",
    "fit_organs",
    "fit_patient",
    "fit_segmenter",
    "node_voxels",
    "tversky_ce_loss",
]

_LOG = logging.getLogger(__name__)
Status = Callable[[str, int, int], None]
Batch = tuple[torch.Tensor, ...]
_DRAWS = 20


@dataclass(frozen=True)
class PhaseLog:
    """Mean training loss per epoch of one phase."""

    phase: str
    losses: tuple[float, ...]


def tversky_ce_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.5, beta: float = 1.5
) -> torch.Tensor:
    """Eq. (5): cross-entropy plus Eq. (3)'s Tversky loss of ``(B, 2, ...)`` logits.

    ``target`` is ``(B, 1, ...)`` with 0 (background) and 1 (node).
    """
    labels = target[:, 0].long()
    probability = torch.softmax(logits.float(), dim=1)[:, 1]
    y = labels.float()
    tp = (probability * y).sum()
    fp = (probability * (1.0 - y)).sum()
    fn = ((1.0 - probability) * y).sum()
    tversky = 1.0 - (2.0 * tp + 1e-5) / (2.0 * tp + alpha * fp + beta * fn + 1e-5)
    return functional.cross_entropy(logits.float(), labels) + tversky


def _run_phase(
    name: str,
    network: nn.Module,
    batches: Callable[[int], Iterator[Batch]],
    step: Callable[[Batch], torch.Tensor],
    epochs: int,
    lr: float,
    weight_decay: float,
    status: Status | None,
) -> PhaseLog:
    """``epochs`` epochs of Adam on ``step(batch) -> loss`` over ``batches(epoch)``."""
    optimiser = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs))
    losses = []
    network.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in batches(epoch):
            loss = step(batch)
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            total += float(loss.detach()) * len(batch[0])
            count += len(batch[0])
        scheduler.step()
        losses.append(total / max(1, count))
        _LOG.info("%s epoch %d/%d loss %.4f", name, epoch + 1, epochs, losses[-1])
        if status is not None:
            status(f"{name} loss {losses[-1]:.3f}", epoch + 1, epochs)
    network.cpu().eval()
    return PhaseLog(name, tuple(losses))


def _augment(arrays: Sequence[npt.NDArray[Any]], rng: np.random.Generator) -> list[
    npt.NDArray[Any]
]:  # fmt: skip
    """Flip every ``(N, ...3D)`` array alike along random axes; shift the first's values."""
    axes = tuple(a + 1 for a in range(3) if rng.random() < 0.5)
    out = [np.flip(a, axis=axes) if axes else a for a in arrays]
    out[0] = out[0] + np.float32(rng.uniform(-0.1, 0.1))
    return [np.ascontiguousarray(a) for a in out]


def _tensor(array: npt.NDArray[np.generic], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)[:, None]).to(device)


def _batched(count: int, size: int, rng: np.random.Generator) -> Iterator[npt.NDArray[np.int64]]:
    order = rng.permutation(count)
    for start in range(0, count, size):
        yield order[start : start + size]


def fit_organs(
    arrays: Sequence[CaseArrays],
    config: LymphNodeConfig,
    device: torch.device,
    status: Status | None = None,
) -> tuple[nn.Module, PhaseLog]:
    """Train the organ & vessel segmenter on ``arrays``; returned on the CPU in eval mode."""
    torch.manual_seed(config.seed)
    network = build_organ_segmenter(config.organs).to(device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    images = np.stack([a.organ_image for a in arrays])
    labels = np.stack([a.organ_labels for a in arrays])
    rng = np.random.default_rng(config.seed)

    def batches(_: int) -> Iterator[Batch]:
        for rows in _batched(len(images), config.batch_size, rng):
            image, label = images[rows], labels[rows].astype(np.int64)
            if config.augment:
                image, label = _augment([image, label], rng)
            yield _tensor(image, device), _tensor(label, device)

    def step(batch: Batch) -> torch.Tensor:
        loss: torch.Tensor = loss_fn(network(batch[0]), batch[1])
        return loss

    log = _run_phase("organs", network, batches, step, config.organ_epochs, config.organ_lr,
                     config.weight_decay, status)  # fmt: skip
    return network, log


def node_voxels(seg_nodes: npt.NDArray[np.integer]) -> list[npt.NDArray[np.intp]]:
    """Flat voxel indices of each node of an instance map (one pass; nodes in id order)."""
    flat = np.flatnonzero(seg_nodes)
    ids = seg_nodes.ravel()[flat]
    order = np.argsort(ids, kind="stable")
    _, starts = np.unique(ids[order], return_index=True)
    return np.split(flat[order], starts[1:]) if len(flat) else []


def _patch_origin(
    case: CaseArrays,
    size: int,
    foreground: bool,
    informative: bool,
    rng: np.random.Generator,
    nodes: Sequence[npt.NDArray[np.intp]] | None = None,
) -> tuple[int, int, int]:
    """A patch's corner; ``nodes``: :func:`node_voxels` of the case (computed when absent)."""
    limit = np.asarray(case.seg_image.shape) - size
    if foreground and nodes is None:
        nodes = node_voxels(case.seg_nodes)
    if foreground and nodes:
        # a node first, then one of its voxels: sampling voxels would pick the large nodes
        # and leave the small benign majority nearly unseen
        chosen = nodes[int(rng.integers(len(nodes)))]
        flat = int(chosen[rng.integers(len(chosen))])
        voxel = np.asarray(np.unravel_index(flat, case.seg_nodes.shape))
        low = np.clip(voxel - size + 1, 0, limit)
        high = np.clip(voxel, 0, limit)
        return tuple(int(rng.integers(lo, hi + 1)) for lo, hi in zip(low, high, strict=True))  # type: ignore[return-value]
    origin = tuple(int(rng.integers(0, m + 1)) for m in limit)
    for _ in range(_DRAWS if informative else 0):
        if _cut(case.seg_attention, origin, size).max() > 0:
            break
        origin = tuple(int(rng.integers(0, m + 1)) for m in limit)
    return origin  # type: ignore[return-value]


def _cut(array: npt.NDArray[np.generic], origin: Sequence[int], size: int) -> npt.NDArray[
    np.generic
]:  # fmt: skip
    i, j, k = origin
    return array[i : i + size, j : j + size, k : k + size]


def _seg_samples(
    arrays: Sequence[CaseArrays], config: LymphNodeConfig, informative: bool,
    rng: np.random.Generator, nodes: Sequence[Sequence[npt.NDArray[np.intp]]],
) -> tuple[npt.NDArray[np.generic], ...]:  # fmt: skip
    size = config.patch
    images, attention, masks = [], [], []
    for case, case_nodes in zip(arrays, nodes, strict=True):
        for _ in range(config.seg_patches):
            fg = bool(rng.random() < config.foreground_fraction)
            origin = _patch_origin(case, size, fg, informative, rng, case_nodes)
            images.append(_cut(case.seg_image, origin, size))
            attention.append(_cut(case.seg_attention, origin, size))
            masks.append(_cut(case.seg_nodes, origin, size))
    return np.stack(images), np.stack(attention), (np.stack(masks) > 0).astype(np.int64)


def _deep_loss(output: SegOutput, mask: torch.Tensor, config: LymphNodeConfig) -> torch.Tensor:
    weights = [0.5**level for level in range(1 + len(output.deep))]
    total = weights[0] * tversky_ce_loss(output.logits, mask, config.tversky_alpha,
                                         config.tversky_beta)  # fmt: skip
    for weight, logits in zip(weights[1:], output.deep, strict=True):
        target = functional.adaptive_max_pool3d(mask.float(), logits.shape[2:])
        total = total + weight * tversky_ce_loss(logits, target, config.tversky_alpha,
                                                 config.tversky_beta)  # fmt: skip
    return total / sum(weights)


def fit_segmenter(
    arrays: Sequence[CaseArrays],
    config: LymphNodeConfig,
    seg_config: SegConfig,
    device: torch.device,
    status: Status | None = None,
) -> tuple[LymphNodeSegNet, PhaseLog]:
    """Train the node segmenter (attention as ``seg_config`` says) on ``arrays``.

    Both variants start from the same seed, see the same patient order and (up to the
    informative negative selection, which needs the attention) the same patches.
    """
    torch.manual_seed(config.seed + 1)
    network = LymphNodeSegNet(seg_config).to(device)
    rng = np.random.default_rng(config.seed + 1)
    informative = seg_config.attention
    nodes = [node_voxels(a.seg_nodes) for a in arrays]

    def batches(_: int) -> Iterator[Batch]:
        images, attention, masks = _seg_samples(arrays, config, informative, rng, nodes)
        for rows in _batched(len(images), config.batch_size, rng):
            batch = [images[rows], attention[rows], masks[rows]]
            if config.augment:
                batch = _augment(batch, rng)
            yield tuple(_tensor(a, device) for a in batch)

    def step(batch: Batch) -> torch.Tensor:
        image, attention, mask = batch
        return _deep_loss(network(image, attention if informative else None), mask, config)

    name = "segmenter" if informative else "segmenter-no-attention"
    log = _run_phase(name, network, batches, step, config.seg_epochs, config.seg_lr,
                     config.weight_decay, status)  # fmt: skip
    return network, log


def fit_classifier(
    arrays: Sequence[CaseArrays],
    segmenter: LymphNodeSegNet,
    config: LymphNodeConfig,
    device: torch.device,
    status: Status | None = None,
    not_nodes: npt.NDArray[np.float32] | None = None,
) -> tuple[NodeClassifier, PhaseLog]:
    """Train the node classifier on the truth nodes' crops, initialised from ``segmenter``.

    With a not-node class (``config.classifier.not_node_class``), ``not_nodes`` are crops of
    the segmenter's false positives on the same rows (:mod:`training._lymph_node_mining`),
    labelled *not a node*; the truth nodes are then *negative* or *positive* nodes.

    Raises
    ------
    ValueError
        If the rows hold no truth node.
    """
    torch.manual_seed(config.seed + 2)
    network = NodeClassifier(segmenter.config, config.classifier)
    network.init_from_segmenter(segmenter)
    network.to(device)
    crops = np.concatenate([a.crops for a in arrays])
    labels = np.concatenate([a.crop_labels for a in arrays])
    if len(crops) == 0:
        raise ValueError("no truth node among the training rows")
    if config.classifier.not_node_class:
        extra = np.zeros((0, *crops.shape[1:]), np.float32) if not_nodes is None else not_nodes
        crops = np.concatenate([crops, extra.astype(np.float32)])
        labels = np.concatenate([labels + 1, np.zeros(len(extra), np.int64)])
    rng = np.random.default_rng(config.seed + 2)

    def batches(_: int) -> Iterator[Batch]:
        for rows in _batched(len(crops), 4 * config.batch_size, rng):
            crop = crops[rows]
            if config.augment:
                (crop,) = _augment([crop], rng)
            yield _tensor(crop, device), torch.from_numpy(labels[rows]).to(device)

    def step(batch: Batch) -> torch.Tensor:
        return functional.cross_entropy(network(batch[0]), batch[1])

    name = "classifier" if segmenter.config.attention else "classifier-no-attention"
    log = _run_phase(name, network, batches, step, config.classifier_epochs,
                     config.classifier_lr, config.weight_decay, status)  # fmt: skip
    return network, log


@dataclass(frozen=True, eq=False)
class PatientInputs:
    """The patient model's training rows: tumor slices, node volume (mm^3) and N status."""

    slice_images: Sequence[npt.NDArray[np.float32]]
    slice_masks: Sequence[npt.NDArray[np.float32]]
    volumes_mm3: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]


def _twice(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Batch norm needs two rows in training: a single row is repeated."""
    return tuple(t.repeat(2, *([1] * (t.dim() - 1))) if len(t) == 1 else t for t in tensors)


def fit_patient(
    inputs: PatientInputs,
    config: LymphNodeConfig,
    device: torch.device,
    status: Status | None = None,
) -> tuple[PatientNet, PhaseLog]:
    """Train the patient model on ``inputs`` (see the module docstring)."""
    torch.manual_seed(config.seed + 3)
    network = PatientNet(config.patient).to(device)
    rng = np.random.default_rng(config.seed + 3)
    count = len(inputs.labels)

    def batches(_: int) -> Iterator[Batch]:
        for rows in _batched(count, 2 * config.batch_size, rng):
            yield (torch.from_numpy(rows),)

    def step(batch: Batch) -> torch.Tensor:
        rows = batch[0].tolist()
        tumor = [r for r in rows if len(inputs.slice_images[r])
                 and rng.random() >= config.tumor_dropout]  # fmt: skip
        nodes_only = [r for r in rows if r not in tumor]
        losses = []
        if tumor:
            images = np.concatenate([inputs.slice_images[r] for r in tumor])
            masks = np.concatenate([inputs.slice_masks[r] for r in tumor])
            repeat = [len(inputs.slice_images[r]) for r in tumor]
            volume = np.repeat(inputs.volumes_mm3[tumor], repeat)
            label = np.repeat(inputs.labels[tumor], repeat)
            x, m, v, y = _twice(_tensor(images, device), _tensor(masks, device),
                                torch.from_numpy(volume).to(device),
                                torch.from_numpy(label).to(device))  # fmt: skip
            losses.append(functional.cross_entropy(network(x, m, v), y))
        if nodes_only:
            v, y = _twice(torch.from_numpy(inputs.volumes_mm3[nodes_only]).to(device),
                          torch.from_numpy(inputs.labels[nodes_only]).to(device))  # fmt: skip
            losses.append(functional.cross_entropy(network(None, None, v), y))
        return torch.stack(losses).mean()

    log = _run_phase("patient", network, batches, step, config.patient_epochs,
                     config.patient_lr, config.weight_decay, status)  # fmt: skip
    return network, log
