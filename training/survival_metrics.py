"""Survival metrics: per-horizon AUC and accuracy, time-dependent AUC, C-index, risk groups.

- **Binary AUC and accuracy per horizon**, the paper's: death by the horizon against alive
  after it, patients censored before it left out; accuracy at probability 0.5.
- **Time-dependent AUC** (cumulative/dynamic, inverse-probability-of-censoring weighted;
  Uno et al., *JASA* 102:1251-1263, 2007; scikit-survival ``cumulative_dynamic_auc``), which
  keeps the censored patients.
- **Harrell's C-index** of the 3-year death probability as the risk score.
- **Risk groups**: high when the probability at the risk horizon reaches the cut-off (the
  paper's 0.8), Kaplan-Meier curves per group and the log-rank test (``lifelines``).
- **Calibration**: patients in quantile bins of the predicted probability, the mean
  prediction against the Kaplan-Meier death by the horizon in the bin; ECE is the
  patient-weighted mean absolute gap.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from sksurv.metrics import concordance_index_censored, cumulative_dynamic_auc
from sksurv.util import Surv

from pancreas_contracts.prognosis import HORIZONS_MONTHS, KaplanMeierCurve
from training._metrics import _binary_auc

__all__ = [
    "calibration",
    "horizon_metrics",
    "kaplan_meier",
    "risk_groups",
    "survival_metrics",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _known(time: FloatArray, event: BoolArray, horizon: float) -> tuple[BoolArray, BoolArray]:
    died = event & (time <= horizon)
    return died | (time > horizon), died


def horizon_metrics(
    probs: FloatArray, time: FloatArray, event: BoolArray
) -> list[dict[str, float]]:
    """Per horizon: ``auc``, ``accuracy``, ``td_auc``, ``n_known``, ``deaths``."""
    y = Surv.from_arrays(event=event, time=time)
    out = []
    for h, horizon in enumerate(HORIZONS_MONTHS):
        known, died = _known(time, event, horizon)
        p = probs[:, h]
        auc = _binary_auc(died[known], p[known])
        accuracy = float(np.mean((p[known] >= 0.5) == died[known])) if known.any() else math.nan
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                td, _ = cumulative_dynamic_auc(y, y, p, [horizon])
            td_auc = float(np.asarray(td).ravel()[0])
        except ValueError:  # no event before or no one at risk after the horizon
            td_auc = math.nan
        out.append({"auc": auc, "accuracy": accuracy, "td_auc": td_auc,
                    "n_known": int(known.sum()), "deaths": int(died[known].sum())})  # fmt: skip
    return out


def kaplan_meier(time: FloatArray, event: BoolArray, label: str) -> KaplanMeierCurve:
    """The Kaplan-Meier estimate as a step curve (``lifelines``)."""
    fitter = KaplanMeierFitter().fit(time, event_observed=event)
    table = fitter.survival_function_
    months = tuple(float(t) for t in table.index)
    survival = tuple(min(1.0, max(0.0, float(s))) for s in table.iloc[:, 0])
    return KaplanMeierCurve(label=label, months=months, survival=survival)


def risk_groups(
    probs: FloatArray, time: FloatArray, event: BoolArray, horizon_years: int, cutoff: float
) -> dict[str, Any]:
    """Group sizes, log-rank p and Kaplan-Meier curves of the high- and low-risk groups."""
    high = probs[:, horizon_years - 1] >= cutoff
    result: dict[str, Any] = {"n_high": int(high.sum()), "n_low": int((~high).sum()),
                              "logrank_p": math.nan, "curves": []}  # fmt: skip
    if high.any() and (~high).any():
        test = logrank_test(time[high], time[~high], event[high], event[~high])
        result["logrank_p"] = float(test.p_value)
    for name, rows in (("high risk", high), ("low risk", ~high)):
        if rows.any():
            result["curves"].append(kaplan_meier(time[rows], event[rows], name))
    return result


def calibration(
    probs: FloatArray, time: FloatArray, event: BoolArray, horizon_index: int, bins: int = 5
) -> dict[str, Any]:
    """Mean prediction against Kaplan-Meier death by the horizon, in quantile bins; ECE."""
    p = probs[:, horizon_index]
    horizon = HORIZONS_MONTHS[horizon_index]
    edges = np.quantile(p, np.linspace(0.0, 1.0, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows, gap = [], 0.0
    for b in range(bins):
        member = which == b
        if not member.any():
            continue
        fitter = KaplanMeierFitter().fit(time[member], event_observed=event[member])
        observed = 1.0 - float(fitter.predict(horizon))
        predicted = float(p[member].mean())
        rows.append({"n": int(member.sum()), "predicted": predicted, "observed": observed})
        gap += member.sum() * abs(predicted - observed)
    return {"horizon_months": horizon, "bins": rows, "ece": gap / len(p)}


def survival_metrics(
    probs: FloatArray,
    time: FloatArray,
    event: BoolArray,
    *,
    horizon_years: int = 3,
    cutoff: float = 0.8,
) -> dict[str, Any]:
    """Everything the report tables need for one model's probabilities ``(n, horizons)``."""
    c_index = float(concordance_index_censored(event, time, probs[:, -1])[0])
    return {
        "n": len(time),
        "horizons": horizon_metrics(probs, time, event),
        "c_index": c_index,
        "risk": risk_groups(probs, time, event, horizon_years, cutoff),
        "calibration": calibration(probs, time, event, len(HORIZONS_MONTHS) - 1),
    }
