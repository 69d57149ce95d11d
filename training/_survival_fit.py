"""Fitting the survival models: radiomics -> forest, the DenseNet, the logistic models.

Everything here is fitted on the rows it is given (a training split or a cross-fitting fold)
and nothing else: the standardisation, PCA, LASSO and forest of the radiomics model, the
medians that impute missing clinical inputs, and the standardisation of the logistic models.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sksurv.ensemble import RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.util import Surv

from inference.tasks.survival import (
    DualInputDenseNet,
    HorizonLogistic,
    RadiomicsProjection,
    SurvivalForest,
    death_probabilities,
)
from pancreas_contracts.prognosis import HORIZONS_MONTHS
from training.survival_config import SurvivalConfig

__all__ = [
    "MONTH_GRID",
    "RadiomicsFit",
    "export_forest",
    "fit_densenet",
    "fit_horizon_logistic",
    "fit_radiomics",
    "horizon_labels",
    "predict_densenet",
]

FloatArray = npt.NDArray[np.float64]
#: Where the bundle keeps each forest node's survival function: the three horizons and a few
#: points between and beyond them (every node of 345 trees stores one value per point, so a
#: monthly grid would make the bundle ten times larger for nothing the node reads).
MONTH_GRID = np.array([0.0, 6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 48.0, 60.0], dtype=np.float32)


def horizon_labels(
    time: FloatArray, event: npt.NDArray[np.bool_], horizon: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Which patients' status at ``horizon`` is known, and 1 where they died by it.

    A patient censored before the horizon has an unknown status (the paper's binary labels
    exclude such patients).
    """
    died = event & (time <= horizon)
    known = died | (time > horizon)
    return known, died.astype(np.int64)


@dataclass(frozen=True, eq=False)
class RadiomicsFit:
    """The fitted radiomics model and what its fitting chose."""

    projection: RadiomicsProjection
    forest: SurvivalForest
    components: int
    selected: int
    lasso_alpha: float
    leaf_size: int
    oob_concordance: float


def _lasso_selection(
    scores: FloatArray, y: npt.NDArray[np.void], folds: int, seed: int
) -> tuple[npt.NDArray[np.int64], float]:
    path = CoxnetSurvivalAnalysis(l1_ratio=1.0, alpha_min_ratio=0.01, n_alphas=30).fit(scores, y)
    search = GridSearchCV(
        CoxnetSurvivalAnalysis(l1_ratio=1.0, fit_baseline_model=False),
        {"alphas": [[a] for a in path.alphas_]},
        cv=KFold(folds, shuffle=True, random_state=seed),
        error_score=0.5,
    )
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Coxnet warns at penalties where it stops early; the CV score already judges them.
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning, RuntimeWarning))
        search.fit(scores, y)
    alpha = float(search.best_params_["alphas"][0])
    coef = np.asarray(search.best_estimator_.coef_).ravel()
    selected = np.flatnonzero(np.abs(coef) > 1e-10)
    if selected.size == 0:
        # The LASSO kept nothing at its best penalty: the forest gets the first component
        # (the most variance) rather than no input at all; the report says so.
        selected = np.array([0])
    return selected.astype(np.int64), alpha


def export_forest(forest: RandomSurvivalForest, months: npt.NDArray[np.float32]) -> SurvivalForest:
    """scikit-survival's forest as arrays, each node's survival function on ``months``."""
    times = np.asarray(forest.unique_times_, dtype=np.float64)
    index = np.searchsorted(times, months.astype(np.float64), side="right") - 1
    offsets, left, right, feature, threshold, survival = [0], [], [], [], [], []
    for tree in forest.estimators_:
        t = tree.tree_
        start = offsets[-1]
        inner = t.children_left >= 0
        left.append(np.where(inner, t.children_left + start, -1))
        right.append(np.where(inner, t.children_right + start, -1))
        feature.append(np.where(inner, t.feature, -1))
        threshold.append(np.asarray(t.threshold, dtype=np.float64))
        values = np.asarray(t.value[:, :, 1], dtype=np.float64)
        grid = np.where(index[None, :] >= 0, values[:, np.maximum(index, 0)], 1.0)
        survival.append(grid.astype(np.float32))
        offsets.append(start + t.node_count)
    return SurvivalForest(
        tree_offset=np.asarray(offsets, dtype=np.int64),
        children_left=np.concatenate(left).astype(np.int64),
        children_right=np.concatenate(right).astype(np.int64),
        feature=np.concatenate(feature).astype(np.int64),
        threshold=np.concatenate(threshold),
        survival=np.concatenate(survival),
        months=months.astype(np.float32),
    )


def fit_radiomics(
    features: FloatArray,
    names: Sequence[str],
    time: FloatArray,
    event: npt.NDArray[np.bool_],
    config: SurvivalConfig,
) -> RadiomicsFit:
    """Standardise, PCA (``pca_variance``), LASSO-Cox (CV), forest (leaf size by OOB)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    z = (features - mean) / np.where(scale > 1e-12, scale, 1.0)
    pca = PCA(n_components=config.pca_variance, svd_solver="full").fit(z)
    scores = pca.transform(z)
    y = Surv.from_arrays(event=event, time=time)
    folds = min(config.lasso_folds, int(event.sum()), len(time))
    selected, alpha = _lasso_selection(scores, y, max(2, folds), config.seed)
    best: tuple[float, int, RandomSurvivalForest] | None = None
    for leaf in config.rsf_leaf_sizes:
        forest = RandomSurvivalForest(
            n_estimators=config.rsf_trees, min_samples_leaf=leaf, max_features="sqrt",
            oob_score=True, random_state=config.seed, n_jobs=config.workers,
        ).fit(scores[:, selected], y)  # fmt: skip
        if best is None or forest.oob_score_ > best[0]:
            best = (float(forest.oob_score_), leaf, forest)
    assert best is not None  # rsf_leaf_sizes is never empty (SurvivalConfig)
    projection = RadiomicsProjection(
        feature_names=tuple(names), mean=mean, scale=scale,
        pca_mean=np.asarray(pca.mean_, dtype=np.float64),
        components=np.asarray(pca.components_, dtype=np.float64), selected=selected,
    )  # fmt: skip
    return RadiomicsFit(projection, export_forest(best[2], MONTH_GRID), int(pca.n_components_),
                        int(selected.size), alpha, best[1], best[0])  # fmt: skip


def fit_horizon_logistic(
    x: FloatArray, names: Sequence[str], time: FloatArray, event: npt.NDArray[np.bool_]
) -> HorizonLogistic:
    """One L2 logistic regression per horizon on the rows whose status there is known.

    ``x`` is ``(n, inputs)`` or ``(horizons, n, inputs)``; NaN is imputed with the median of
    all the given rows (0 when a column has none), and the standardisation is theirs too.

    Raises
    ------
    ValueError
        If a horizon has no death or no survivor among the known rows.
    """
    arr = x if x.ndim == 3 else np.broadcast_to(x, (len(HORIZONS_MONTHS), *x.shape))
    flat = arr.reshape(-1, arr.shape[-1])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: median NaN
        median = np.nan_to_num(np.nanmedian(flat, axis=0), nan=0.0)
    filled = np.where(np.isnan(arr), median, arr)
    mean = filled.reshape(-1, arr.shape[-1]).mean(axis=0)
    scale = filled.reshape(-1, arr.shape[-1]).std(axis=0)
    z = (filled - mean) / np.where(scale > 1e-12, scale, 1.0)
    coefs, intercepts = [], []
    for h, horizon in enumerate(HORIZONS_MONTHS):
        known, died = horizon_labels(time, event, horizon)
        if len(set(died[known].tolist())) < 2:
            raise ValueError(f"no deaths or no survivors at {horizon:.0f} months to fit on")
        model = LogisticRegression(C=1.0, max_iter=1000).fit(z[h][known], died[known])
        coefs.append(model.coef_[0])
        intercepts.append(model.intercept_[0])
    return HorizonLogistic(inputs=tuple(names), impute=median, mean=mean, scale=scale,
                           coef=np.asarray(coefs), intercept=np.asarray(intercepts))  # fmt: skip


def _augment(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(rng.integers(4))
    image, mask = torch.rot90(image, k, (2, 3)), torch.rot90(mask, k, (2, 3))
    for axis in (2, 3, 4):
        if rng.random() < 0.5:
            image, mask = torch.flip(image, (axis,)), torch.flip(mask, (axis,))
    return image + noise * torch.randn_like(image), mask


def fit_densenet(
    images: npt.NDArray[np.float32],
    masks: npt.NDArray[np.float32],
    time: FloatArray,
    event: npt.NDArray[np.bool_],
    config: SurvivalConfig,
    device: torch.device,
    seed: int,
) -> DualInputDenseNet:
    """Masked binary cross-entropy per horizon (unknown statuses left out), Adam, cosine."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = DualInputDenseNet(config.densenet).to(device)
    labels = [horizon_labels(time, event, h) for h in HORIZONS_MONTHS]
    known = torch.from_numpy(np.stack([k for k, _ in labels], axis=1).astype(np.float32))
    died = torch.from_numpy(np.stack([d for _, d in labels], axis=1).astype(np.float32))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    batches = max(1, len(time) // config.batch_size)
    for _ in range(config.epochs):
        net.train()
        for batch in np.array_split(rng.permutation(len(time)), batches):
            image, mask = _augment(
                torch.from_numpy(images[batch])[:, None], torch.from_numpy(masks[batch])[:, None],
                rng, config.noise_std,
            )  # fmt: skip
            logits = net(image.to(device), mask.to(device))
            weight = known[batch].to(device)
            losses = loss_fn(logits, died[batch].to(device)) * weight
            loss = losses.sum() / weight.sum().clamp(min=1.0)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def predict_densenet(
    nets: Sequence[DualInputDenseNet],
    images: npt.NDArray[np.float32],
    masks: npt.NDArray[np.float32],
    device: torch.device,
) -> FloatArray:
    """``(n, horizons)``: the members' mean death probabilities (non-decreasing)."""
    out = []
    for start in range(0, len(images), 16):
        x = torch.from_numpy(images[start : start + 16])[:, None].to(device)
        m = torch.from_numpy(masks[start : start + 16])[:, None].to(device)
        probs = torch.stack([death_probabilities(net.eval()(x, m)) for net in nets]).mean(dim=0)
        out.append(probs.cpu().double().numpy())
    result: FloatArray = np.maximum.accumulate(np.concatenate(out), axis=1)
    return result
