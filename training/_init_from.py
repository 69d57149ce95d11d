"""Start a run's image branch from an earlier bundle trained on the same rows, or on none of them.

The paper initialises its Swin-UNETR from BTCV-pretrained weights, which cannot be reached
here. What can be reached is an earlier bundle of our own, and its segmentation network is a
head start for a new run as long as it saw none of the new run's test rows. That holds exactly
when the earlier bundle was trained on the same preprocessed cohort (same training data
sha256) with the same split seed and number of outer folds: its member ``k`` was then fitted
on outer fold ``k``'s inner training rows and selected on its inner validation rows, the rows
the new fold ``k`` fits and selects on too. It also holds when the earlier bundle was trained
on an independent cohort that shares no patient with the new one (``init_from_cohort =
"independent"``: another phantom seed, another site), as the paper's BTCV weights were; every
fold then starts from the earlier bundle's first member, and the two cohorts' training data
sha256 must differ. Anything else is refused with a one-line reason.

Only the image branch is copied (the Swin-UNETR encoder, decoder and segmentation head, and
the bottleneck projection); the clinical MLP and the fusion head start from their seeded
initialisation in every variant, so the multimodal and CT-only fits start alike.

An ``init_from`` ending in ``.pt`` or ``.pth`` is instead one of MONAI's published Swin-UNETR
checkpoints (the BTCV-finetuned SwinUNETR, or the self-supervised Swin ViT encoder), which
:mod:`training._monai_weights` maps onto the Swin-UNETR by key layout (:func:`monai_init`).
Such weights saw none of the run's patients, so every fold starts from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from inference.bundle import BundleError, LoadedBundle, load_bundle
from inference.tasks.resectability.model import ModelConfig, ResectabilityNet
from training._monai_weights import (
    is_monai_checkpoint,
    load_monai_weights,
    read_monai_checkpoint,
)
from training.config import TrainConfig

__all__ = [
    "IMAGE_BRANCH",
    "image_branch_cohorts",
    "image_branch_weights",
    "load_image_branch",
    "load_init_bundle",
    "monai_init",
]

#: State-dict prefixes of the image branch: what a warm start copies.
IMAGE_BRANCH: Final = ("swin.", "image_projection.")


def _lineage(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cohorts a bundle's image branch learned from (its own, for bundles before 2026-11-26)."""
    training = meta.get("training", {})
    cohorts = training.get("image_branch_cohorts")
    if isinstance(cohorts, list) and cohorts:
        return [dict(c) for c in cohorts]
    source = training.get("config", {})
    own = {
        "training_data_sha256": meta.get("training_data_sha256"),
        "seed": source.get("seed"),
        "outer_folds": source.get("outer_folds"),
    }
    return [own]


def image_branch_cohorts(
    config: TrainConfig, digest: str, source: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The cohorts the image branch of this run's bundle will have learned from.

    Recorded in ``bundle.json`` (``training.image_branch_cohorts``), so that a later run can
    tell whether that branch saw its rows: a frozen branch keeps its source's cohorts, a
    warm-started one adds this run's, a fresh one has this run's alone.

    Parameters
    ----------
    config
        This run's configuration.
    digest
        This run's training data sha256.
    source
        The ``bundle.json`` of ``config.init_from`` (:func:`load_init_bundle`), or ``None``
        for a run without one.
    """
    own = {"training_data_sha256": digest, "seed": config.seed, "outer_folds": config.outer_folds}
    if source is None:
        return [own]
    cohorts = _lineage(source)
    if config.freeze_image_branch or own in cohorts:
        return cohorts
    return [*cohorts, own]


def load_init_bundle(path: Path) -> LoadedBundle:
    """The ``init_from`` bundle, loaded once for both its weights and its branch's cohorts.

    Raises
    ------
    ValueError
        With a one-line reason when it cannot be loaded.
    """
    try:
        return load_bundle(path)
    except BundleError as exc:
        raise ValueError(f"init_from: {exc}") from exc


def _mismatch(meta: Mapping[str, Any], digest: str, config: TrainConfig) -> str | None:
    """Why the bundle ``meta`` cannot start this run, or ``None`` when it can.

    What counts is the cohorts its image branch learned from (:func:`image_branch_cohorts`),
    which for a bundle of heads over a frozen branch are not the bundle's own.
    """
    source = meta.get("training", {}).get("config", {})
    cohorts = _lineage(meta)
    seen = [c for c in cohorts if c.get("training_data_sha256") == digest]
    if config.init_from_cohort == "independent":
        if seen:
            return "its image branch learned from this very cohort, which is not independent"
    elif len(seen) != len(cohorts):
        return "its image branch learned from other data (training data sha256 differs)"
    else:
        for key in ("seed", "outer_folds"):
            if any(c.get(key) != getattr(config, key) for c in cohorts):
                used = sorted({str(c.get(key)) for c in cohorts})
                return (
                    f"its {key} {', '.join(used)} differs from this run's {getattr(config, key)!r}"
                )
    for key in ("target_size", "cube_mm", "window_size"):
        if source.get(key) != getattr(config, key):
            return f"its {key} {source.get(key)!r} differs from this run's {getattr(config, key)!r}"
    return None


def image_branch_weights(
    bundle: Path | LoadedBundle, digest: str, config: TrainConfig
) -> list[Path]:
    """The weight file that starts each outer fold this run trains, in fold order.

    Parameters
    ----------
    bundle
        The earlier bundle (``config.init_from``), or its directory.
    digest
        This run's training data sha256.
    config
        This run's configuration.

    Returns
    -------
    list[Path]
        ``config.folds_to_run`` files, hash-verified.

    Raises
    ------
    ValueError
        With a one-line reason when the bundle cannot be loaded, was trained on other data or
        another split, has too few members, or has a feature size other than the grid's only one.
    """
    loaded = bundle if isinstance(bundle, LoadedBundle) else load_init_bundle(bundle)
    reason = _mismatch(loaded.meta, digest, config)
    independent = config.init_from_cohort == "independent"
    wanted = 1 if independent else config.folds_to_run
    if reason is None and len(loaded.members) < wanted:
        reason = f"it has {len(loaded.members)} member(s) for {config.folds_to_run} fold(s)"
    used = loaded.members[:wanted]
    # Every grid point of fold k starts from member k, so each must have the grid's one size.
    sizes = {m.model.config.feature_size for m in used}
    if reason is None and sizes != set(config.feature_size):
        reason = f"its feature size {sorted(sizes)} is not the grid's {list(config.feature_size)}"
    if reason is None and any(m.model.swin is None for m in used):
        reason = "it has no image branch (tabular only)"
    if reason is not None:
        raise ValueError(f"init_from {loaded.path}: cannot start this run from it: {reason}")
    entries = loaded.meta["members"][:wanted]
    files = [loaded.path / str(entry["weights"]) for entry in entries]
    return files * config.folds_to_run if independent else files


def monai_init(config: TrainConfig) -> tuple[list[Path], dict[str, Any]]:
    """The weight file of every fold run, and its ``bundle.json`` provenance, for a MONAI
    checkpoint ``init_from`` (:mod:`training._monai_weights`).

    The file is checked against the network of every feature size of the grid before any
    training starts.

    Raises
    ------
    ValueError
        With a one-line reason when the file is unreadable, of unknown layout, or does not fit
        the grid's networks.
    """
    path = Path(config.init_from)
    checkpoint = read_monai_checkpoint(path)
    record: dict[str, Any] = {}
    for size in config.feature_size:
        model_config = ModelConfig(
            clinical_features=1, feature_size=size, window_size=config.window_size,
            image_pooling=config.image_pooling,
        )  # fmt: skip
        loaded = load_monai_weights(ResectabilityNet(model_config), checkpoint)
        record = record or {**loaded.provenance(checkpoint), "feature_size": size}
    return [path] * config.folds_to_run, record


def load_image_branch(model: ResectabilityNet, weights: Path) -> int:
    """Copy the image branch of ``weights`` into ``model`` (cast to its dtypes).

    A MONAI checkpoint (``.pt``, ``.pth``) copies what fits its Swin-UNETR
    (:func:`training._monai_weights.load_monai_weights`) instead.

    Returns
    -------
    int
        The number of tensors copied.

    Raises
    ------
    ValueError
        If ``model`` has no image branch, or the file lacks or mis-shapes one of its tensors.
    """
    if is_monai_checkpoint(weights):
        return load_monai_weights(model, weights).copied
    own = model.state_dict()
    wanted = [k for k in own if k.startswith(IMAGE_BRANCH)]
    if not wanted:
        raise ValueError("this model has no image branch to start from earlier weights")
    try:
        saved = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"cannot read {weights.name}: {exc}") from exc
    bad = [k for k in wanted if k not in saved or saved[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"{weights.name} does not fit the image branch (first: {bad[0]})")
    with torch.no_grad():
        for key in wanted:
            own[key].copy_(saved[key].to(own[key].dtype))
    return len(wanted)
