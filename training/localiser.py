"""Train the learned localiser for a bundle: which rows it may fit on, and shipping it.

The localiser is one network, so it fits on one set of rows and is judged on rows it never saw.
A bundle trained by :func:`training.cohort.train_cohort` records its outer-fold protocol in
``bundle.json`` (``training.config``: ``outer_folds``, ``seed``; ``training.patients``): the
localiser then fits on outer fold 0's training and validation rows (those of the bundle's first
member) and is evaluated on fold 0's test rows. When ``bundle.json`` does not say (or the
cohort's size differs from what it records), it fits on a stratified 80 % of the cohort (seed
0) and is evaluated on the other 20 %, and its bundle section says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.bundle import BundleError, add_localiser
from inference.localiser import LocaliserConfig
from training._localiser_train import (
    EpochProgress,
    LocaliserFit,
    load_coarse_cases,
    train_localiser,
)
from training._splits import nested_splits, stratified_folds
from training.dataset import CaseRecord, discover_cases

__all__ = [
    "LocaliserRows",
    "fit_and_ship",
    "localiser_rows",
    "ship_localiser",
    "train_bundle_localiser",
]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LocaliserRows:
    """The rows the localiser fits on, the rows it is judged on, and why these."""

    fit: IntArray
    heldout: IntArray
    note: str


def localiser_rows(meta: dict[str, Any], targets: Sequence[int]) -> LocaliserRows:
    """The localiser's rows for a cohort of ``targets`` (NCCN labels) and a ``bundle.json``.

    Parameters
    ----------
    meta
        The bundle's ``bundle.json`` content.
    targets
        The cohort's NCCN labels in :func:`training.dataset.discover_cases` order.
    """
    training = meta.get("training")
    training = training if isinstance(training, dict) else {}
    config = training.get("config")
    config = config if isinstance(config, dict) else {}
    folds, seed = config.get("outer_folds"), config.get("seed")
    if (
        isinstance(folds, int)
        and isinstance(seed, int)
        and 2 <= folds <= len(targets) == training.get("patients")
    ):
        split = nested_splits(list(targets), folds, seed)[0]
        fit = np.sort(np.concatenate([split.train, split.val]))
        note = (
            f"outer fold 0 of the bundle's {folds}-fold split (seed {seed}): fit on its "
            f"training + validation rows, held out its test rows"
        )
        return LocaliserRows(fit, split.test, note)
    n = len(targets)
    if n < 2:
        raise ValueError("the localiser needs at least 2 cases (one to fit, one held out)")
    k = min(5, n)
    test = stratified_folds(list(targets), k, 0)[0]
    fit = np.setdiff1d(np.arange(n), test)
    share = f"{100 * (k - 1) / k:.0f} %"
    note = (
        f"bundle.json names no fold split for this cohort: fit on a stratified {share} of the "
        f"cohort (seed 0, {k} folds), held out the rest"
    )
    return LocaliserRows(fit, test, note)


def fit_and_ship(
    cases: Sequence[CaseRecord],
    rows: LocaliserRows,
    bundle_dir: Path,
    *,
    config: LocaliserConfig | None = None,
    epochs: int = 30,
    seed: int = 0,
    cache: Path | None = None,
    status: Callable[[str, int, int], None] | None = None,
    progress: EpochProgress | None = None,
) -> LocaliserFit:
    """Train the localiser on ``rows`` of ``cases`` and add it to the bundle in ``bundle_dir``.

    Raises
    ------
    ValueError
        On unusable cases (no label map, no pancreas) or rows.
    BundleError
        If ``bundle_dir`` holds no bundle.
    OSError
        If files cannot be read or written.
    """
    cfg = config or LocaliserConfig()
    coarse = load_coarse_cases(cases, cfg.spacing_mm, cache, status)
    fit = train_localiser(
        coarse, rows.fit.tolist(), rows.heldout.tolist(), cfg, epochs=epochs, seed=seed,
        progress=progress,
    )  # fmt: skip
    training = {**fit.training, "rows": rows.note, "labels": "pancreas = labels 1 and 2"}
    add_localiser(bundle_dir, fit.localiser, metrics=fit.metrics, training=training)
    return LocaliserFit(fit.localiser, fit.metrics, training)


def ship_localiser(
    cases: Sequence[CaseRecord],
    bundle_dir: Path,
    *,
    epochs: int = 30,
    spacing_mm: float = 5.0,
    seed: int = 0,
    status: Callable[[str, int, int], None] | None = None,
    progress: EpochProgress | None = None,
) -> LocaliserFit:
    """Train a localiser on the bundle's own training rows of ``cases`` and add it.

    The rows follow :func:`localiser_rows` for the bundle's ``bundle.json``; the coarse grids
    are cached under ``bundle_dir/cache``.

    Raises
    ------
    BundleError
        If ``bundle_dir`` holds no readable bundle.
    ValueError
        On an unusable cohort or settings.
    OSError
        If files cannot be read or written.
    """
    meta_path = bundle_dir / "bundle.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {bundle_dir}: cannot read bundle.json") from exc
    if not isinstance(meta, dict):
        raise BundleError(f"bundle {bundle_dir}: bundle.json is not an object")
    rows = localiser_rows(meta, [c.nccn_label for c in cases])
    return fit_and_ship(
        cases, rows, bundle_dir, config=LocaliserConfig(spacing_mm=spacing_mm), epochs=epochs,
        seed=seed, cache=bundle_dir / "cache", status=status, progress=progress,
    )  # fmt: skip


def train_bundle_localiser(
    data_dir: Path,
    bundle_dir: Path,
    *,
    epochs: int = 30,
    spacing_mm: float = 5.0,
    seed: int = 0,
    status: Callable[[str, int, int], None] | None = None,
    progress: EpochProgress | None = None,
) -> LocaliserFit:
    """:func:`ship_localiser` on the cohort folder ``data_dir`` (``train-localiser``).

    Raises
    ------
    BundleError
        If ``bundle_dir`` holds no readable bundle.
    ValueError
        On an unusable cohort or settings.
    OSError
        If files cannot be read or written.
    """
    if not (bundle_dir / "bundle.json").is_file():
        raise BundleError(f"bundle {bundle_dir}: no bundle.json")
    return ship_localiser(
        discover_cases(data_dir), bundle_dir, epochs=epochs, spacing_mm=spacing_mm, seed=seed,
        status=status, progress=progress,
    )  # fmt: skip
