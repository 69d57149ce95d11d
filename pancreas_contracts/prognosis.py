"""Survival prognosis (issue 25; METHOD.md section 4, ``seeds/survival_radiomics_densenet_fusion``).

What the phantom generator writes as follow-up truth and the survival task returns, defined
once:

* the three **horizons** of the paper (death within 1, 2 and 3 years of diagnosis);
* the follow-up columns of a phantom cohort's ``truth.csv`` (overall survival in months and
  whether death was observed; administrative censoring otherwise);
* the **TNM** inputs the paper's clinical model uses, each with where it came from (the
  node's own staging, the lymph-node model, the registry, or missing);
* ``result.json``'s ``prognosis`` section (schema 1.7): :class:`SurvivalPrognosis`, with the
  death probability per horizon, the paper's risk group (fusion probability at or above the
  cut-off 0.8 is high risk) and, for the PDF's small survival plot, the Kaplan-Meier curves
  of the bundle's own high- and low-risk training groups.

Investigational, not for clinical use.
"""

from __future__ import annotations

import math
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FOLLOW_UP_COLUMNS",
    "HORIZONS_MONTHS",
    "HORIZONS_YEARS",
    "KaplanMeierCurve",
    "ModelProbabilities",
    "RiskGroup",
    "StageInput",
    "SurvivalPrognosis",
    "TnmSource",
]

#: The paper's horizons: death within 1, 2 and 3 years of diagnosis.
HORIZONS_YEARS: Final = (1, 2, 3)
#: The same in months, the unit of the follow-up truth.
HORIZONS_MONTHS: Final = (12.0, 24.0, 36.0)
#: ``truth.csv`` follow-up columns: overall survival in months from diagnosis to death or
#: censoring, and 1 when death was observed (0: alive at last contact, censored).
FOLLOW_UP_COLUMNS: Final = ("os_months", "os_event")

_Frozen = ConfigDict(frozen=True, extra="forbid")

RiskGroup = Literal["high", "low"]
#: Where a TNM input came from: the node's own measurement, another of its models, the
#: hospital registry, or nowhere (then imputed as the bundle says, and listed as missing).
TnmSource = Literal["node", "lymph-node-model", "registry", "missing"]


def _probability(value: float) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError("a probability must lie in [0, 1]")
    return value


def _cumulative(value: tuple[float, float, float]) -> tuple[float, float, float]:
    for p in value:
        _probability(p)
    if not value[0] <= value[1] <= value[2]:
        raise ValueError("death by a later horizon cannot be less probable than by an earlier")
    return value


class StageInput(BaseModel):
    """One TNM input of the clinical model (AJCC 8th edition, pancreas).

    Attributes
    ----------
    value
        ``T1`` .. ``T4``, ``N0`` / ``N+``, ``M0`` / ``M1``; ``None`` when missing.
    source
        Where the value came from (:data:`TnmSource`).
    """

    model_config = _Frozen
    value: str | None = Field(default=None, pattern=r"^(T[1-4]|N0|N\+|M[01])$")
    source: TnmSource

    @model_validator(mode="after")
    def _missing_has_no_value(self) -> StageInput:
        if (self.source == "missing") != (self.value is None):
            raise ValueError("a missing stage input has no value, and only a missing one")
        return self


class ModelProbabilities(BaseModel):
    """One model's death probabilities by 1, 2 and 3 years (non-decreasing)."""

    model_config = _Frozen
    death_probability: tuple[float, float, float]

    @field_validator("death_probability")
    @classmethod
    def _non_decreasing(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return _cumulative(value)


class KaplanMeierCurve(BaseModel):
    """A Kaplan-Meier survival curve as steps: ``survival[i]`` from ``months[i]`` on."""

    model_config = _Frozen
    label: str = Field(min_length=1, max_length=64)
    months: tuple[float, ...] = Field(min_length=1)
    survival: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps(self) -> KaplanMeierCurve:
        if len(self.months) != len(self.survival):
            raise ValueError("months and survival must have the same length")
        if any(b < a for a, b in zip(self.months, self.months[1:], strict=False)):
            raise ValueError("months must not decrease")
        for s in self.survival:
            _probability(s)
        if any(b > a for a, b in zip(self.survival, self.survival[1:], strict=False)):
            raise ValueError("survival must not increase")
        return self


class SurvivalPrognosis(BaseModel):
    """The survival model's answer for one CT (investigational, not for clinical use).

    Attributes
    ----------
    model_version
        The survival bundle's ``name version``.
    death_probability
        The fusion model's probability of death within 1, 2 and 3 years (non-decreasing).
    risk_group
        ``high`` when the probability at ``risk_horizon_years`` reaches ``risk_cutoff``.
    risk_horizon_years, risk_cutoff
        The paper's stratification: the fusion probability against the cut-off 0.8.
    components
        The unimodal models' probabilities (``radiomics``, ``densenet``, ``clinical``) that
        the fusion combined; a model without its inputs is absent.
    staging
        The TNM inputs (``T``, ``N``, ``M``) and where each came from.
    reference_curves
        Kaplan-Meier curves of the bundle's training cohort by risk group (for the plot).
    inputs_used, inputs_missing
        Which inputs the fusion had (``ct``, ``tumor_mask``, ``sex``, ``age``, ``T``, ``N``,
        ``M``, ``ca19_9_baseline``); a missing one was imputed from the training folds.
    """

    model_config = _Frozen
    model_version: str = Field(min_length=1)
    death_probability: tuple[float, float, float]
    risk_group: RiskGroup
    risk_horizon_years: Literal[1, 2, 3] = 3
    risk_cutoff: float = Field(ge=0.0, le=1.0)
    components: dict[str, ModelProbabilities] = Field(default_factory=dict)
    staging: dict[Literal["T", "N", "M"], StageInput] = Field(default_factory=dict)
    reference_curves: tuple[KaplanMeierCurve, ...] = ()
    inputs_used: tuple[str, ...] = ()
    inputs_missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @field_validator("death_probability")
    @classmethod
    def _non_decreasing(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return _cumulative(value)

    @model_validator(mode="after")
    def _group_is_the_cutoffs_answer(self) -> SurvivalPrognosis:
        at = self.death_probability[self.risk_horizon_years - 1]
        expected = "high" if at >= self.risk_cutoff else "low"
        if self.risk_group != expected:
            raise ValueError("risk_group must say whether the probability reaches the cut-off")
        return self

    @property
    def survival_probability(self) -> tuple[float, float, float]:
        """The probability of being alive at 1, 2 and 3 years (``1 - death_probability``)."""
        d1, d2, d3 = self.death_probability
        return (1.0 - d1, 1.0 - d2, 1.0 - d3)

    def describe(self) -> str:
        """One line: ``high risk (death by 1/2/3 years 0.41/0.72/0.86; cut-off 0.80 at 3 years)``.

        Used by the PDF, the SR and the viewer alike.
        """
        p = "/".join(f"{v:.2f}" for v in self.death_probability)
        return (
            f"{self.risk_group} risk (death by 1/2/3 years {p}; cut-off {self.risk_cutoff:.2f} "
            f"at {self.risk_horizon_years} year{'s' if self.risk_horizon_years != 1 else ''})"
        )
