"""Fit only the heads of a model whose image branch is a frozen warm start.

With ``freeze_image_branch`` the Swin-UNETR of an earlier bundle (``init_from``, the same rows,
see :mod:`training._init_from`) is kept as it is: its segmentation, and so its Dice, are the
earlier bundle's. What is trained is what reads it: the bottleneck projection, the contact
projection (:mod:`inference.tasks.resectability._model_contact`), the clinical MLP and the fusion
head, with the classification loss alone (class weights of METHOD.md), AdamW, cosine annealing and
early
stopping on the inner-validation macro-F1 as in :func:`training._loop.fit_model`.

A frozen branch gives every case the same pooled image features in every epoch, so they are
computed once per case (one network pass, no augmentation: augmenting would only add passes)
and cached beside the checkpoints under the warm-start weights' sha256; the multimodal and the
CT-only fit of a fold share them. This makes head training a matter of seconds, and a run
without a GPU affordable: 159 cases at 96^3 take about ten minutes on two CPU cores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.bundle import sha256_file
from inference.tasks.resectability.model import ResectabilityNet
from training._experts import fit_clinical_expert, image_expert_params
from training._init_from import load_image_branch
from training._metrics import DICE_GROUPS, selection_score
from training.config import HyperParams, TrainConfig
from training.losses import ClassificationLoss

__all__ = ["classify_pooled", "encode_cohort", "fit_heads", "pooled_cache"]

_LOG = logging.getLogger(__name__)
_TUMOR = DICE_GROUPS["tumor"][0]

IntArray = npt.NDArray[np.int64]


def encode_cohort(
    model: ResectabilityNet,
    images: npt.NDArray[np.float32],
    labels: npt.NDArray[np.uint8],
    val: IntArray,
    device: torch.device,
    cache: Path | None = None,
) -> tuple[npt.NDArray[np.float32], float]:
    """Every case's pooled image features, and the tumor Dice over the ``val`` rows.

    Parameters
    ----------
    model
        A model with an image branch, already on ``device``.
    images, labels
        ``(N, S, S, S)`` cubes and label maps.
    val
        Rows whose tumor Dice is returned (the selection gate's input).
    device
        Where to run.
    cache
        ``.npz`` file read when an earlier fit wrote it for the same ``val`` rows, and
        written otherwise.

    Returns
    -------
    tuple
        ``(N, pooled_features)`` float32 and the pooled tumor Dice of ``val``.
    """
    if cache is not None and cache.is_file():
        with np.load(cache) as saved:
            if saved["val"].tolist() == val.tolist():
                return saved["pooled"].astype(np.float32), float(saved["tau"])
    model.eval()
    vectors, overlap, total = [], 0.0, 0.0
    in_val = set(val.tolist())
    with torch.no_grad():
        for i in range(len(images)):
            x = torch.from_numpy(np.ascontiguousarray(images[i])[None, None]).to(device)
            seg, vector = model.encode_image(x)
            vectors.append(vector.float().cpu().numpy()[0])
            if i in in_val:
                pred = (seg[0].argmax(dim=0) == _TUMOR).cpu().numpy()
                truth = labels[i] == _TUMOR
                overlap += 2.0 * float((pred & truth).sum())
                total += float(pred.sum() + truth.sum())
    pooled, tau = np.stack(vectors).astype(np.float32), (overlap / total if total else 0.0)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, pooled=pooled, tau=np.float64(tau), val=val)
        partial.replace(cache)
    return pooled, tau


def pooled_cache(checkpoints: Path, init_weights: Path) -> Path:
    """The file in which :func:`fit_heads` caches the encodings of ``init_weights``' branch.

    ``checkpoints`` is the run's checkpoint folder; every fold and variant shares the cache.
    """
    return checkpoints / "pooled" / f"{sha256_file(init_weights)[:16]}.npz"


def classify_pooled(
    model: ResectabilityNet,
    cache: Path,
    idx: IntArray,
    features: npt.NDArray[np.float32] | None,
    device: torch.device,
) -> npt.NDArray[np.float64]:
    """Class probabilities of rows ``idx`` from cached encodings (no image network pass).

    The same numbers as running the whole model on the cubes, since the branch is frozen, at a
    fraction of the cost: on the demo cohort the test predictions of the CT-only model and of
    the knock-out were most of a CPU run.

    Parameters
    ----------
    model
        A model whose image branch is the one encoded in ``cache``.
    cache
        :func:`pooled_cache` file written by :func:`encode_cohort`.
    idx
        Rows to classify.
    features
        Preprocessed clinical vectors of the whole cohort, or ``None`` for knock-out.
    device
        Where to run.

    Returns
    -------
    numpy.ndarray
        ``(len(idx), 3)`` float64 probabilities.
    """
    with np.load(cache) as saved:
        pooled = torch.from_numpy(saved["pooled"][idx].astype(np.float32)).to(device)
    clinical = None
    if features is not None and model.clinical_mlp is not None:
        clinical = torch.from_numpy(features[idx]).to(device)
    model.to(device).eval()
    with torch.no_grad():
        logits, _ = model.classify(pooled, clinical)
    model.cpu()
    out: npt.NDArray[np.float64] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return out.astype(np.float64)


def _score(model: ResectabilityNet, x: torch.Tensor, c: torch.Tensor | None, y: IntArray) -> float:
    model.eval()
    with torch.no_grad():
        logits, _ = model.classify(x, c)
    return selection_score(y.tolist(), torch.softmax(logits.float(), dim=1).cpu().numpy())


def fit_heads(
    model: ResectabilityNet,
    data: tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8], npt.NDArray[np.float32]],
    targets: IntArray,
    split: tuple[IntArray, IntArray],
    hp: HyperParams,
    config: TrainConfig,
    *,
    init_weights: Path,
    checkpoints: Path,
    seed: int,
    device: torch.device,
) -> dict[str, Any]:
    """Train ``model``'s heads in place on the frozen image branch of ``init_weights``.

    Parameters
    ----------
    model
        A freshly built model (on the CPU) with an image branch.
    data
        Cubes, label maps and preprocessed clinical features of the whole cohort.
    targets
        NCCN labels of the whole cohort.
    split
        ``(train, val)`` rows.
    hp, config
        The grid point (``lr``, ``batch_size``) and the run's settings.
    init_weights
        The warm-start weight file (its image branch is copied, then frozen).
    checkpoints
        The run's checkpoint folder, where :func:`pooled_cache` keeps the pooled features.
    seed, device
        Random seed and where to train.

    Returns
    -------
    dict
        ``epoch``, ``best`` (validation score) and ``tau`` (validation tumor Dice), as in
        :func:`training._loop.fit_model`'s state.
    """
    images, labels, features = data
    train, val = split
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    load_image_branch(model, init_weights)
    assert model.swin is not None
    model.swin.requires_grad_(False)
    model.to(device)
    cache = pooled_cache(checkpoints, init_weights)
    pooled, tau = encode_cohort(model, images, labels, val, device, cache)
    x = torch.from_numpy(pooled).to(device)
    c = torch.from_numpy(features).to(device) if model.clinical_mlp is not None else None
    y = torch.from_numpy(targets).to(device)
    params = image_expert_params(model)
    optimiser = torch.optim.AdamW(params, lr=hp.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.max_epochs)
    loss_fn = ClassificationLoss(config.class_weights).to(device)
    state: dict[str, Any] = {"epoch": 0, "best": -1.0, "stale": 0, "tau": tau}
    best: dict[str, torch.Tensor] | None = None
    val_rows = torch.from_numpy(val).to(device)
    while state["epoch"] < config.max_epochs and state["stale"] < config.patience:
        model.train()
        order = rng.permutation(train)
        for start in range(0, len(order), hp.batch_size):
            chunk = torch.from_numpy(order[start : start + hp.batch_size]).to(device)
            if len(chunk) < 2:
                continue  # LayerNorm is fine, but a one-case batch is noisy
            logits, _ = model.classify(x[chunk], None if c is None else c[chunk])
            loss = loss_fn(logits, y[chunk])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        scheduler.step()
        state["epoch"] += 1
        score = _score(model, x[val_rows], None if c is None else c[val_rows], targets[val])
        if score > state["best"]:
            state.update(best=score, stale=0)
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["stale"] += 1
    if best is not None:
        model.load_state_dict(best)
    if model.clinical_head is not None and c is not None:
        model.eval()
        with torch.no_grad():
            image_val, _ = model.classify(x[val_rows], c[val_rows])  # clinical weight still 0
        _, summed = fit_clinical_expert(model, c, y, split, image_val, hp, config, seed)
        probs = torch.softmax(summed, dim=1).cpu().numpy()
        state["best"] = selection_score(targets[val].tolist(), probs)
    _LOG.info(
        "heads on frozen %s: %d epochs, validation %.3f, tumor Dice %.3f",
        init_weights.name, state["epoch"], state["best"], tau,
    )  # fmt: skip
    return state
