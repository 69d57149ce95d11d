"""Follow-up truth of a phantom PDAC patient: overall survival from a stated hazard model.

Issue 25 (survival prognosis) needs cohorts whose survival a model can learn, and an oracle to
score it against. Every PDAC patient therefore draws an overall survival time from a Weibull
proportional-hazards model whose only inputs are truths the cohort records
(:class:`HazardModel`):

    lp = 1.0 * log2(V / 8 mL) + 0.7 * c + 0.8 * N + 0.5 * log10(max(CA 19-9, 1) / 37) +
         0.3 * (age - 65) / 10

    S(t | x) = exp(-(t / 23 months) ** 1.5 * exp(lp))

with ``V`` the truth tumor volume (``truth.csv`` ``tumor_volume_ml``), ``c`` the anatomical
NCCN rule category of the constructed contact angles (``rule_category``, not the noisy
``nccn_label``), ``N`` the N status (``n_status``), and the patient's true baseline CA 19-9
(U/mL) and age (years), before any cell is blanked. The event time is the inverse of the
survival function at ``U ~ Uniform(0, 1)`` (:func:`event_time`). Censoring is administrative:
potential follow-up ``F ~ Uniform(6, 72)`` months (accrual over six years, data cut-off six
months after the last entry) and loss to follow-up ``L ~ Exponential(mean 240 months)``;
``os_months = min(T, F, L)`` (0.1 month steps, at least 0.1) and ``os_event = 1`` exactly when
``T <= min(F, L)`` (:func:`draw_follow_up`).

The three draws (``U``, then ``F``, then ``L``) come from a random stream of the patient's own,
so that switching follow-up on or off changes no other draw of the cohort. ``truth.csv`` gains
:data:`FOLLOW_UP_TRUTH_COLUMNS` (empty cells for tumor-free patients); ``hazard_lp`` is ``lp``
rounded to 4 decimals, from which an evaluation computes the oracle's risk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from pancreas_contracts.prognosis import FOLLOW_UP_COLUMNS

__all__ = [
    "FOLLOW_UP_TRUTH_COLUMNS",
    "FollowUp",
    "HazardModel",
    "draw_follow_up",
    "event_time",
    "follow_up_cells",
    "linear_predictor",
]

#: ``truth.csv`` columns with follow-up on: overall survival (months), death observed (0/1)
#: and the linear predictor of the hazard model (the oracle's risk score).
FOLLOW_UP_TRUTH_COLUMNS: Final = (*FOLLOW_UP_COLUMNS, "hazard_lp")


@dataclass(frozen=True)
class HazardModel:
    """The Weibull proportional-hazards model of phantom overall survival and its censoring.

    Plausible for resected and unresected PDAC together (median survival of a reference
    patient about 18 months), not fitted to any cohort.

    Attributes
    ----------
    volume_per_doubling
        Log hazard per doubling of the tumor volume above ``reference_volume_ml``.
    reference_volume_ml
        Tumor volume (mL) of the reference patient (about a 2.5 cm sphere).
    min_volume_ml
        Volumes below this are taken as this (guards ``log2(0)``; a 5.8 mm sphere).
    rule_category
        Log hazard per NCCN rule category (0 resectable, 1 borderline, 2 locally advanced).
    n_positive
        Log hazard of N+ against N0.
    ca19_9_per_decade
        Log hazard per tenfold baseline CA 19-9 above ``ca19_9_reference`` (values below
        ``ca19_9_floor`` count as the floor: non-secretors).
    ca19_9_reference, ca19_9_floor
        U/mL.
    age_per_decade
        Log hazard per ten years above ``age_reference``.
    age_reference
        Years.
    shape
        Weibull shape (above 1: a hazard rising with time).
    scale_months
        Weibull scale of the reference patient (``lp = 0``): its median survival is
        ``scale * ln(2) ** (1 / shape)``, 31.3 months.
    follow_up_min_months, follow_up_max_months
        Range of the uniform potential follow-up (administrative censoring).
    loss_mean_months
        Mean of the exponential time to loss to follow-up.
    """

    volume_per_doubling: float = 1.0
    reference_volume_ml: float = 8.0
    min_volume_ml: float = 0.1
    rule_category: float = 0.7
    n_positive: float = 0.8
    ca19_9_per_decade: float = 0.5
    ca19_9_reference: float = 37.0
    ca19_9_floor: float = 1.0
    age_per_decade: float = 0.3
    age_reference: float = 65.0
    shape: float = 1.5
    scale_months: float = 40.0
    follow_up_min_months: float = 6.0
    follow_up_max_months: float = 72.0
    loss_mean_months: float = 240.0

    def __post_init__(self) -> None:
        positive = (
            self.reference_volume_ml, self.min_volume_ml, self.ca19_9_reference,
            self.ca19_9_floor, self.shape, self.scale_months, self.loss_mean_months,
        )  # fmt: skip
        if not all(math.isfinite(v) and v > 0 for v in positive):
            raise ValueError(f"hazard model scales and references must be positive: {self}")
        if not 0.0 <= self.follow_up_min_months <= self.follow_up_max_months:
            raise ValueError(
                "potential follow-up needs 0 <= minimum <= maximum, got "
                f"{self.follow_up_min_months} and {self.follow_up_max_months}"
            )


@dataclass(frozen=True)
class FollowUp:
    """One patient's drawn follow-up.

    Attributes
    ----------
    os_months
        Observed time: death or censoring, months (0.1 steps, at least 0.1).
    os_event
        Whether death was observed (``event_months <= min(follow_up, loss)``).
    lp
        The linear predictor the event time was drawn with.
    event_months, follow_up_months, loss_months
        The latent death time, potential follow-up and time to loss (unrounded).
    """

    os_months: float
    os_event: bool
    lp: float
    event_months: float
    follow_up_months: float
    loss_months: float


def linear_predictor(
    tumor_volume_ml: float,
    rule_category: int,
    n_status: int,
    ca19_9_baseline: float,
    age: float,
    model: HazardModel | None = None,
) -> float:
    """The hazard model's linear predictor ``lp`` (log hazard ratio to the reference patient).

    Parameters
    ----------
    tumor_volume_ml
        Truth tumor volume (mL).
    rule_category
        Anatomical NCCN rule category, 0-2.
    n_status
        0 (N0) or 1 (N+).
    ca19_9_baseline
        True baseline CA 19-9 (U/mL).
    age
        True age (years).
    model
        The model (defaults: :class:`HazardModel`).

    Returns
    -------
    float
        ``lp``; the hazard is ``exp(lp)`` times the reference patient's.
    """
    m = model or HazardModel()
    volume = max(tumor_volume_ml, m.min_volume_ml)
    ca19_9 = max(ca19_9_baseline, m.ca19_9_floor)
    return (
        m.volume_per_doubling * math.log2(volume / m.reference_volume_ml)
        + m.rule_category * rule_category
        + m.n_positive * n_status
        + m.ca19_9_per_decade * math.log10(ca19_9 / m.ca19_9_reference)
        + m.age_per_decade * (age - m.age_reference) / 10.0
    )


def event_time(lp: float, u: float, model: HazardModel | None = None) -> float:
    """The death time (months) at which ``S(t | lp) = u``.

    That is ``scale * (-ln u / exp(lp)) ** (1 / shape)``, the inverse of the survival function.

    Raises
    ------
    ValueError
        If ``u`` is not within (0, 1].
    """
    if not 0.0 < u <= 1.0:
        raise ValueError(f"u must be within (0, 1], got {u}")
    m = model or HazardModel()
    return float(m.scale_months * (-math.log(u) / math.exp(lp)) ** (1.0 / m.shape))


def draw_follow_up(
    lp: float, rng: np.random.Generator, model: HazardModel | None = None
) -> FollowUp:
    """Draw one patient's death time, potential follow-up and loss, and what is observed.

    Parameters
    ----------
    lp
        The patient's linear predictor (:func:`linear_predictor`).
    rng
        The patient's follow-up stream; three draws, ``U``, ``F`` and ``L``, in this order.
    model
        The model (defaults: :class:`HazardModel`).

    Returns
    -------
    FollowUp
        ``os_months = min(T, F, L)`` rounded to 0.1 month (at least 0.1) and
        ``os_event = T <= min(F, L)``.
    """
    m = model or HazardModel()
    # 1 - random() lies in (0, 1]: U = 0 would give an infinite death time.
    u = 1.0 - float(rng.random())
    death = event_time(lp, u, m)
    follow_up = float(rng.uniform(m.follow_up_min_months, m.follow_up_max_months))
    loss = float(rng.exponential(m.loss_mean_months))
    censor = min(follow_up, loss)
    observed = max(round(min(death, censor), 1), 0.1)
    return FollowUp(observed, death <= censor, lp, death, follow_up, loss)


def follow_up_cells(
    covariates: tuple[float, int, int, float, float] | None,
    rng: np.random.Generator,
    model: HazardModel | None = None,
) -> dict[str, str]:
    """The :data:`FOLLOW_UP_TRUTH_COLUMNS` of one patient.

    Parameters
    ----------
    covariates
        ``(tumor_volume_ml, rule_category, n_status, ca19_9_baseline, age)``, the arguments of
        :func:`linear_predictor`; ``None`` for a tumor-free patient (empty cells, no draw).
    rng
        The patient's follow-up stream.
    model
        The model (defaults: :class:`HazardModel`).
    """
    if covariates is None:
        return dict.fromkeys(FOLLOW_UP_TRUTH_COLUMNS, "")
    lp = linear_predictor(*covariates, model=model)
    drawn = draw_follow_up(lp, rng, model)
    return {
        "os_months": format(drawn.os_months, ".10g"),
        "os_event": str(int(drawn.os_event)),
        # + 0.0 turns a rounded -0.0 into 0.0.
        "hazard_lp": format(round(lp, 4) + 0.0, ".10g"),
    }
