"""Fit one model on one inner split: AdamW, cosine annealing, early stopping, resume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.clinical_preprocessing import ClinicalPreprocessor
from inference.tasks.resectability.model import (
    ModelConfig,
    ModelMode,
    ModelOutput,
    ResectabilityNet,
)
from pancreas_contracts.labels import NUM_CLASSES
from training._experts import fit_clinical_expert, image_expert_params
from training._frozen import fit_heads
from training._init_from import load_image_branch
from training._metrics import DICE_GROUPS, selection_score
from training.config import HyperParams, TrainConfig
from training.dataset import has_category, make_augmentation
from training.losses import (
    ClassificationLoss,
    MultitaskLoss,
    SegmentationLoss,
    median_frequency_weights,
)

__all__ = [
    "CohortArrays",
    "FitResult",
    "Prediction",
    "checkpoint_finished",
    "fit_model",
    "labels_tumor",
    "pick_device",
    "predict",
    "with_tumor",
]

_LOG = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
Progress = Callable[[int, int, float], None]

_TUMOR = DICE_GROUPS["tumor"][0]
# A checkpoint holds the model, AdamW's moments and the best state (270 MB at feature size
# 24), too much to write after every few-second GPU epoch. A crash loses at most this much
# training; the last epoch is always written.
_CHECKPOINT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class CohortArrays:
    """The whole preprocessed cohort in memory."""

    images: npt.NDArray[np.float32]  # (N, S, S, S)
    labels: npt.NDArray[np.uint8]  # (N, S, S, S)
    clinical: npt.NDArray[np.float64]  # (N, 17) raw, NaN missing
    targets: IntArray  # (N,) NCCN class, NO_TUMOR (tumor-free) or NCCN_UNKNOWN
    patient_ids: tuple[str, ...]
    labelled: npt.NDArray[np.bool_] | None = None
    """``(N, NUM_CLASSES)``: which classes each label map annotates; ``None``: all of them."""

    def labelled_rows(self, idx: IntArray) -> npt.NDArray[np.bool_] | None:
        """``(len(idx), NUM_CLASSES)`` labelled classes of ``idx``; ``None`` when all are."""
        if self.labelled is None:
            return None
        rows: npt.NDArray[np.bool_] = self.labelled[np.asarray(idx, dtype=np.int64)]
        return None if bool(rows.all()) else rows


def with_tumor(arrays: CohortArrays, idx: IntArray) -> IntArray:
    """The rows of ``idx`` with an NCCN category to learn and score.

    Neither tumor-free patients nor those whose category is unknown have one.
    """
    kept: IntArray = idx[has_category(arrays.targets[idx])]
    return kept


def labels_tumor(arrays: CohortArrays, idx: IntArray) -> npt.NDArray[np.bool_]:
    """Which rows of ``idx`` have their tumor labelled (so count in the tumor Dice)."""
    rows = arrays.labelled_rows(idx)
    if rows is None:
        return np.ones(len(idx), dtype=bool)
    tumor: npt.NDArray[np.bool_] = rows[:, _TUMOR]
    return tumor


@dataclass(frozen=True)
class FitResult:
    """A trained model and what is needed to run it."""

    model: ResectabilityNet
    preprocessor: ClinicalPreprocessor
    best_val_f1: float
    epochs: int
    tumor_dice: float


@dataclass(frozen=True)
class Prediction:
    """Class probabilities (and segmentations) of a set of cases."""

    probs: npt.NDArray[np.float64]
    segmentation: npt.NDArray[np.uint8] | None


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _Batches:
    """Training batches of images and label maps on the training device.

    The cube set is copied to the device once, so a step indexes it there instead of
    copying cubes from host memory; MONAI's augmentations then run on the device's slices
    (their flips, rotations, resampling and noise work on GPU tensors), so augmenting does
    not make the GPU wait for the host.
    """

    def __init__(self, arrays: CohortArrays, augment: Any, device: torch.device) -> None:
        self.augment, self.device = augment, device
        self.images = _to_device(arrays.images, torch.float32, device)
        self.labels = _to_device(arrays.labels, torch.uint8, device)

    def _where(self, idx: IntArray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)

    def image_cubes(self, idx: IntArray) -> torch.Tensor:
        """``(B, 1, S, S, S)`` float images of cases ``idx``, as stored."""
        return self.images[self._where(idx)][:, None]

    def label_maps(self, idx: IntArray) -> torch.Tensor:
        """``(B, S, S, S)`` uint8 label maps of cases ``idx``, as stored."""
        return self.labels[self._where(idx)]

    def labelled(self, arrays: CohortArrays, idx: IntArray) -> torch.Tensor | None:
        """``(B, C)`` labelled classes of cases ``idx`` on the device; ``None`` when all are.

        Per case, so augmentation (which moves voxels, not structures) leaves it as it is.
        """
        rows = arrays.labelled_rows(idx)
        return None if rows is None else torch.from_numpy(rows).to(self.device)

    def plain(self, idx: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, S, S, S)`` float images and int64 label maps of cases ``idx``, as stored."""
        return self.image_cubes(idx), self.label_maps(idx)[:, None].long()

    def __call__(self, idx: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batch of cases ``idx``: :meth:`plain`, augmented when augmenting."""
        images, labels = self.plain(idx)
        if self.augment is None:
            return images, labels
        out = [self.augment({"image": i, "label": m}) for i, m in zip(images, labels, strict=True)]
        return (
            torch.stack([torch.as_tensor(o["image"]).float() for o in out]),
            torch.stack([torch.as_tensor(o["label"]).round().long() for o in out]),
        )


def _to_device(array: npt.NDArray[Any], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Copy a (possibly memory-mapped, read-only) array to ``device`` a few cases at a time."""
    out = torch.empty(array.shape, dtype=dtype, device=device)
    for start in range(0, array.shape[0], 16):
        out[start : start + 16] = torch.from_numpy(np.array(array[start : start + 16]))
    return out


def _forward(
    model: ResectabilityNet,
    arrays: CohortArrays,
    idx: IntArray,
    features: npt.NDArray[np.float32] | None,
    device: torch.device,
    cubes: _Batches | None = None,
    batch_size: int = 4,
) -> Iterator[tuple[IntArray, ModelOutput]]:
    """The model's outputs over ``idx``, a batch at a time; call under ``torch.no_grad()``.

    Images come from ``cubes`` (the device-resident cube set) when given, else from the host.
    """
    model.to(device).eval()
    tabular = model.config.model_mode is ModelMode.TABULAR_ONLY
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        image = None
        if not tabular:
            image = (
                cubes.image_cubes(chunk)
                if cubes is not None
                else torch.from_numpy(arrays.images[chunk][:, None].copy()).to(device)
            )
        clinical = None if features is None else torch.from_numpy(features[chunk]).to(device)
        yield chunk, model(image, clinical)


def _probabilities(out: ModelOutput) -> npt.NDArray[np.float32]:
    return torch.softmax(out.class_logits.float(), dim=1).cpu().numpy()


def predict(
    model: ResectabilityNet,
    arrays: CohortArrays,
    idx: IntArray,
    features: npt.NDArray[np.float32] | None,
    device: torch.device,
    *,
    batch_size: int = 4,
    keep_segmentation: bool = False,
) -> Prediction:
    """Softmax probabilities for ``idx`` (``features=None``: clinical knock-out)."""
    probs, segs = [], []
    with torch.no_grad():
        for _, out in _forward(model, arrays, idx, features, device, batch_size=batch_size):
            probs.append(_probabilities(out))
            if keep_segmentation and out.seg_logits is not None:
                segs.append(out.seg_logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
    seg = np.concatenate(segs) if segs else None
    return Prediction(np.concatenate(probs).astype(np.float64), seg)


def _validate(
    model: ResectabilityNet,
    arrays: CohortArrays,
    idx: IntArray,
    features: npt.NDArray[np.float32],
    device: torch.device,
    cubes: _Batches | None = None,
) -> tuple[float, float]:
    """Inner-validation score (macro-F1, AUC as tie-break) and tumor Dice.

    The score is over the rows with an NCCN category (0 when there is none); the tumor Dice
    over every row that labels its tumor, so false tumors in tumor-free patients lower it.
    The tumor Dice, the only Dice the loss schedule needs, is counted on the device rather
    than copying every validation segmentation to the host; with ``cubes`` the validation
    cubes are read from the device-resident set as well.
    """
    probs = []
    overlap = torch.zeros(2, device=device)
    with torch.no_grad():
        for chunk, out in _forward(model, arrays, idx, features, device, cubes):
            probs.append(_probabilities(out))
            counted = labels_tumor(arrays, chunk)
            if out.seg_logits is not None and counted.any():
                keep = torch.from_numpy(counted).to(device)
                pred = (out.seg_logits.argmax(dim=1) == _TUMOR)[keep]
                labels = (
                    cubes.label_maps(chunk)
                    if cubes is not None
                    else torch.from_numpy(arrays.labels[chunk].copy()).to(device)
                )
                truth = labels[keep] == _TUMOR
                overlap += torch.stack(
                    [2.0 * (pred & truth).sum(), pred.sum() + truth.sum().float()]
                )
    counts = overlap.cpu().tolist()
    tau = float(counts[0] / counts[1]) if counts[1] else 0.0
    scored = has_category(arrays.targets[idx])
    if not scored.any():
        return 0.0, tau
    scored_probs = np.concatenate(probs)[scored].astype(np.float64)  # float32: exact
    return selection_score(arrays.targets[idx][scored].tolist(), scored_probs), tau


def checkpoint_finished(checkpoint: Path, config: TrainConfig) -> bool:
    """Whether ``checkpoint`` holds a fit that :func:`fit_model` would only reload."""
    if not checkpoint.is_file():
        return False
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state"]
    except (OSError, RuntimeError, KeyError, EOFError):
        return False  # unreadable or partial: training again rewrites it
    return _finished(state, config)


def _finished(state: dict[str, Any], config: TrainConfig) -> bool:
    """The fit's epoch limit (the budget's, else ``max_epochs``) or its patience is reached."""
    limit = int(state.get("epoch_limit", config.max_epochs))
    return int(state["epoch"]) >= limit or int(state["stale"]) >= config.patience


def _select(state: dict[str, Any], score: float, tau: float, gate: float | None) -> bool:
    """Whether this epoch becomes the fit's best; updates ``best`` and ``stale``.

    With a ``gate`` (models that segment) an epoch whose validation tumor Dice is below it
    neither counts as an improvement nor uses up patience: 26 validation cases give a
    macro-F1 noisy enough to peak before the segmentation head has learnt anything.
    """
    if gate is not None and tau < gate:
        return False
    if score > state["best"]:
        state.update(best=score, stale=0)
        return True
    state["stale"] += 1
    return False


class _Budget:
    """A fit's wall-clock budget: fixes the epoch limit once two epochs have been timed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.marks: list[float] = []

    def epoch_limit(self, epoch: int, max_epochs: int, state: dict[str, Any]) -> int | None:
        """The epoch limit to fix now, or ``None`` (no budget, already fixed, or too early).

        The second epoch is the one timed: the first pays for warm-up (cuDNN's kernel search,
        allocator growth) and would under-count what the budget allows.
        """
        self.marks.append(time.monotonic())
        if self.seconds <= 0 or "epoch_limit" in state or len(self.marks) < 2:
            return None
        per_epoch = self.marks[-1] - self.marks[-2]
        left = self.seconds - (self.marks[-1] - self.started)
        return max(epoch, min(max_epochs, epoch + int(left // max(per_epoch, 1e-6))))


def _save_checkpoint(
    checkpoint: Path,
    model: ResectabilityNet,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    """Write the resumable state atomically (a crash mid-write leaves the previous one)."""
    best = state["best_state"]
    host_state = {**state, "best_state": None if best is None else _to_host(best)}
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".partial")
    torch.save(
        {
            "model": _to_host(model.state_dict()),
            "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": host_state,
        },
        partial,
    )
    partial.replace(checkpoint)


def _to_host(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in tensors.items()}


def fit_model(
    arrays: CohortArrays,
    train: IntArray,
    val: IntArray,
    hp: HyperParams,
    config: TrainConfig,
    *,
    mode: ModelMode,
    adaptive: bool,
    checkpoint: Path,
    seed: int,
    progress: Progress | None = None,
    init_weights: Path | None = None,
) -> FitResult:
    """Train on ``train``, early-stop on ``val`` macro-F1; resume from ``checkpoint``.

    The clinical preprocessor is fitted on the ``train`` rows only; after training the
    model stores the mean clinical embedding of those rows (for knock-out). A new fit (no
    checkpoint yet) starts its image branch from ``init_weights`` when given
    (:func:`training._init_from.load_image_branch`; the caller vouches for the rows).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = pick_device(config.device)
    preprocessor = ClinicalPreprocessor().fit(arrays.clinical[train])
    features = preprocessor.transform(arrays.clinical).features
    model_config = ModelConfig(
        clinical_features=preprocessor.n_features,
        feature_size=hp.feature_size,
        mode=mode.value,
        dropout=config.dropout,
        window_size=config.window_size,
        image_pooling=config.image_pooling,
        clinical_dropout=0.0 if mode is ModelMode.TABULAR_ONLY else config.clinical_dropout,
        fusion=config.fusion,
    )
    model = ResectabilityNet(model_config)
    if config.freeze_image_branch and mode is not ModelMode.TABULAR_ONLY:
        if init_weights is None:
            raise ValueError("freeze_image_branch needs a warm start (init_from)")
        run = _FrozenRun(model, arrays, features, (train, val), hp, config, seed)
        return run.fit(checkpoint, init_weights, device, preprocessor)
    if init_weights is not None and not checkpoint.is_file():
        copied = load_image_branch(model, init_weights)
        _LOG.info("%s: image branch (%d tensors) from %s", checkpoint.stem, copied, init_weights)
    model = model.to(device)
    # Logit-sum fusion: the clinical expert has its own stage after this loop.
    params = image_expert_params(model)
    optimiser = torch.optim.AdamW(params, lr=hp.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    label_weights = None
    if config.seg_label_balance == "median_frequency" and mode is not ModelMode.TABULAR_ONLY:
        label_weights = median_frequency_weights(
            arrays.labels[train], NUM_CLASSES, labelled=arrays.labelled_rows(train)
        )
        _LOG.info("%s: segmentation label weights %s", checkpoint.stem, label_weights)
    loss_fn = MultitaskLoss(
        SegmentationLoss(*hp.seg_coefficients, label_weights=label_weights),
        ClassificationLoss(config.class_weights),
        adaptive=adaptive,
    ).to(device)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    augment = None
    if config.augment and mode is not ModelMode.TABULAR_ONLY:
        augment = make_augmentation(seed, config.augmentation)
    if mode is ModelMode.TABULAR_ONLY:
        train = with_tumor(arrays, train)  # a tumor-free row teaches a clinical model nothing
    state: dict[str, Any] = {"epoch": 0, "best": -1.0, "stale": 0, "tau": 0.0, "best_state": None}
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        rng = np.random.default_rng([seed, int(state["epoch"])])
    loss_fn.set_tumor_dice(state["tau"])
    targets = torch.from_numpy(arrays.targets)
    feats = torch.from_numpy(features)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its kernels
    clock = _Budget(config.time_budget_min * 60.0)
    # A finished checkpoint is only reloaded: no cube set to copy to the device then.
    trains_images = mode is not ModelMode.TABULAR_ONLY and not _finished(state, config)
    batches = _Batches(arrays, augment, device) if trains_images else None
    saved_at = time.monotonic()
    gate = None if mode is ModelMode.TABULAR_ONLY else config.selection_min_tumor_dice
    while not _finished(state, config):
        model.train()
        order = rng.permutation(train)
        total = torch.zeros((), device=device)  # summed on the device: no sync per step
        for start in range(0, len(order), hp.batch_size):
            chunk = order[start : start + hp.batch_size]
            if len(chunk) < 2 and len(order) > 1:
                continue  # LayerNorm / instance norm are fine, but a 1-case batch is noisy
            image, seg = batches(chunk) if batches is not None else (None, None)
            known = batches.labelled(arrays, chunk) if batches is not None else None
            with torch.autocast(device.type, enabled=use_amp):
                out = model(image, feats[chunk].to(device))
                terms = loss_fn(
                    out.class_logits, targets[chunk].to(device), out.seg_logits, seg, known
                )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimiser)
            scaler.update()
            total += terms.total.detach().float() * len(chunk)
        scheduler.step()
        score, tau = _validate(model, arrays, val, features, device, batches)
        loss_fn.set_tumor_dice(tau)
        state["epoch"] += 1
        state["tau"] = tau
        limit = clock.epoch_limit(int(state["epoch"]), config.max_epochs, state)
        if limit is not None:
            state["epoch_limit"] = limit
            scheduler.T_max = limit  # anneal over the epochs the budget allows
        if _select(state, score, tau, gate):
            # A copy on the device: the host copy is made only when a checkpoint is written.
            state["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if _finished(state, config) or time.monotonic() - saved_at >= _CHECKPOINT_INTERVAL_S:
            _save_checkpoint(checkpoint, model, optimiser, scheduler, state)
            saved_at = time.monotonic()
        limit = int(state.get("epoch_limit", config.max_epochs))
        loss = float(total) / max(1, len(order))
        _LOG.info(
            "%s epoch %d/%d loss %.4f validation %.3f tumor Dice %.3f (%.1f s)",
            checkpoint.stem, state["epoch"], limit, loss, score, tau,
            clock.marks[-1] - (clock.marks[-2] if len(clock.marks) > 1 else clock.started),
        )  # fmt: skip
        if progress is not None:
            progress(int(state["epoch"]), limit, loss)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    if model.clinical_head is not None:
        state["best"] = _expert_stage(model, arrays, features, (train, val), hp, config, seed)
    if model.clinical_mlp is not None:
        model.store_clinical_mean(feats[train].to(device))
    model.cpu()
    return FitResult(
        model, preprocessor, float(state["best"]), int(state["epoch"]), float(state["tau"])
    )


def _expert_stage(
    model: ResectabilityNet,
    arrays: CohortArrays,
    features: npt.NDArray[np.float32],
    split: tuple[IntArray, IntArray],
    hp: HyperParams,
    config: TrainConfig,
    seed: int,
) -> float:
    """Fit the clinical expert of a logit-sum model; its validation score afterwards."""
    device = next(model.parameters()).device
    split = (with_tumor(arrays, split[0]), with_tumor(arrays, split[1]))  # no category: no row
    val = split[1]
    # Log-probabilities differ from the logits by a per-row constant: the same softmax.
    image = predict(model, arrays, val, features, device).probs
    image_logits = torch.from_numpy(np.log(np.clip(image, 1e-12, None))).float()
    _, summed = fit_clinical_expert(
        model, torch.from_numpy(features).to(device),
        torch.from_numpy(arrays.targets).to(device), split, image_logits, hp, config, seed,
    )  # fmt: skip
    probs = torch.softmax(summed, dim=1).cpu().numpy()
    return selection_score(arrays.targets[val].tolist(), probs)


@dataclass(frozen=True)
class _FrozenRun:
    """:func:`fit_model` for a frozen image branch (:mod:`training._frozen`)."""

    model: ResectabilityNet
    arrays: CohortArrays
    features: npt.NDArray[np.float32]
    split: tuple[IntArray, IntArray]
    hp: HyperParams
    config: TrainConfig
    seed: int

    def fit(
        self,
        checkpoint: Path,
        init_weights: Path,
        device: torch.device,
        preprocessor: ClinicalPreprocessor,
    ) -> FitResult:
        """Train the heads, or reload them from a finished checkpoint; write the checkpoint."""
        model, train = self.model, self.split[0]
        # The frozen branch's heads classify only: tumor-free rows have no category to learn.
        rows = (with_tumor(self.arrays, train), with_tumor(self.arrays, self.split[1]))
        saved = torch.load(checkpoint, weights_only=False) if checkpoint.is_file() else None
        if saved is not None and saved["state"].get("frozen"):
            model.load_state_dict(saved["model"])
            state = saved["state"]
        else:
            state = fit_heads(
                model, (self.arrays.images, self.arrays.labels, self.features),
                self.arrays.targets, rows, self.hp, self.config,
                init_weights=init_weights, checkpoints=checkpoint.parent.parent,
                seed=self.seed, device=device,
            )  # fmt: skip
            state = {**state, "frozen": True, "epoch_limit": state["epoch"], "best_state": None}
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            partial = checkpoint.with_suffix(".partial")
            torch.save({"model": _to_host(model.state_dict()), "state": state}, partial)
            partial.replace(checkpoint)
        model.to(device)
        if model.clinical_mlp is not None:
            model.store_clinical_mean(torch.from_numpy(self.features[train]).to(device))
        model.cpu()
        return FitResult(
            model, preprocessor, float(state["best"]), int(state["epoch"]), float(state["tau"])
        )
