"""Fitting the survival models: the forest export, the horizon labels, the logistic models."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.ensemble import RandomSurvivalForest
from sksurv.util import Surv

from pancreas_contracts.prognosis import HORIZONS_MONTHS
from training._survival_fit import (
    MONTH_GRID,
    export_forest,
    fit_horizon_logistic,
    fit_radiomics,
    horizon_labels,
)
from training.survival_config import SurvivalConfig


def _cohort(n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                        npt.NDArray[np.bool_]]:  # fmt: skip
    """Rows whose first column drives the hazard; censoring at random and at 60 months."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    death = 20.0 * np.exp(-1.5 * x[:, 0]) * rng.exponential(1.0, n)
    censor = rng.uniform(6.0, 80.0, n)
    time = np.minimum(np.minimum(death, censor), 60.0)
    event = death <= np.minimum(censor, 60.0)
    return x, np.round(time, 1).astype(np.float64) + 0.1, event


def _step(times: npt.NDArray[np.float64], survival: npt.NDArray[np.float64],
          months: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:  # fmt: skip
    """S at each month: the value at the largest event time <= month, 1 before the first."""
    out = np.ones((len(survival), len(months)))
    for m, month in enumerate(months.astype(np.float64)):
        at = np.flatnonzero(times <= month)
        if at.size:
            out[:, m] = survival[:, at[-1]]
    return out


def test_the_exported_forest_is_scikit_survival_s_on_the_grid() -> None:
    x, time, event = _cohort(80, 0)
    forest = RandomSurvivalForest(n_estimators=12, min_samples_leaf=3, max_features="sqrt",
                                  random_state=0).fit(x, Surv.from_arrays(event, time))  # fmt: skip
    exported = export_forest(forest, MONTH_GRID)
    assert len(exported.tree_offset) == 13 and np.array_equal(exported.months, MONTH_GRID)
    rows = np.random.default_rng(1).normal(size=(25, 4))
    reference = forest.predict_survival_function(rows, return_array=True)
    expected = _step(np.asarray(forest.unique_times_, dtype=np.float64), reference, MONTH_GRID)
    assert float(forest.unique_times_[0]) > 0.0  # so month 0 checks the "1 before" rule
    got = exported.survival_function(rows)
    assert np.max(np.abs(got - expected)) < 1e-6
    assert got[:, 0] == pytest.approx(1.0)
    death = exported.death_probability(rows, HORIZONS_MONTHS)
    columns = [int(np.flatnonzero(np.isclose(MONTH_GRID, m))[0]) for m in HORIZONS_MONTHS]
    assert death == pytest.approx(1.0 - expected[:, columns], abs=1e-6)


def test_the_horizon_labels_leave_out_early_censoring() -> None:
    time = np.array([5.0, 10.0, 15.0, 30.0, 12.0, 12.0])
    event = np.array([True, False, True, False, True, False])
    known, died = horizon_labels(time, event, 12.0)
    # died by 12; censored at 10 (unknown); died later; censored later; died at 12; censored
    # at exactly 12 (alive at the horizon is not known)
    assert known.tolist() == [True, False, True, True, True, False]
    assert died.tolist() == [1, 0, 0, 0, 1, 0]
    known, died = horizon_labels(time, event, 36.0)
    assert known.tolist() == [True, False, True, False, True, False]
    assert died.tolist() == [1, 0, 1, 0, 1, 0]


def test_the_logistic_models_learn_a_monotone_signal() -> None:
    x, time, event = _cohort(120, 2)
    x[::9, 1] = np.nan  # a noise column with missing cells
    model = fit_horizon_logistic(x, ("risk", "noise", "a", "b"), time, event)
    assert model.inputs == ("risk", "noise", "a", "b") and model.coef.shape == (3, 4)
    assert np.all(np.isfinite(model.impute))
    assert model.impute[1] == pytest.approx(np.nanmedian(x[:, 1]))
    assert np.all(model.coef[:, 0] > 0)  # more hazard, more death
    p = model.predict(x)
    assert np.all(np.diff(p, axis=1) >= 0)
    for h, horizon in enumerate(HORIZONS_MONTHS):
        known, died = horizon_labels(time, event, horizon)
        assert roc_auc_score(died[known], p[known, h]) > 0.8
    ordered = model.predict(np.array([[-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                                      [2.0, 0.0, 0.0, 0.0]]))  # fmt: skip
    assert np.all(np.diff(ordered, axis=0) > 0)


def test_the_logistic_needs_deaths_and_survivors_at_every_horizon() -> None:
    x, time, _ = _cohort(40, 3)
    with pytest.raises(ValueError, match="no deaths or no survivors"):
        fit_horizon_logistic(x, ("a", "b", "c", "d"), np.full(40, 50.0), np.zeros(40, bool))
    late = np.where(time > 36.0, 30.0, time)  # nobody known alive at 36 months
    with pytest.raises(ValueError, match="36 months"):
        fit_horizon_logistic(x, ("a", "b", "c", "d"), late, np.ones(40, bool))


def test_the_radiomics_model_ranks_by_the_driving_feature() -> None:
    rng = np.random.default_rng(5)
    n = 60
    size = rng.uniform(5.0, 16.0, n)
    features = np.column_stack([size * 100.0, size**2, rng.normal(size=(n, 6))])
    time = 70.0 * np.exp(-2.5 * (size - 5.0) / 11.0 + rng.normal(0.0, 0.15, n))
    event = time < 60.0
    time = np.minimum(time, 60.0)
    config = SurvivalConfig(lasso_folds=3, rsf_trees=15, rsf_leaf_sizes=(3, 8), workers=1)
    fit = fit_radiomics(features, [f"f{i}" for i in range(8)], time, event, config)
    assert fit.leaf_size in (3, 8) and fit.components == len(fit.projection.components)
    assert 1 <= fit.selected <= fit.components and fit.oob_concordance > 0.7
    assert np.array_equal(fit.forest.months, MONTH_GRID)
    scores = fit.projection.transform(features)
    death = fit.forest.death_probability(scores, HORIZONS_MONTHS)[:, 2]
    assert np.corrcoef(death, size)[0, 1] > 0.7
