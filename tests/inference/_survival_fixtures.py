"""A hand-made survival prognosis for the SR and PDF tests (result schema 1.7, issue 25)."""

from __future__ import annotations

from pancreas_contracts.prognosis import (
    KaplanMeierCurve,
    ModelProbabilities,
    StageInput,
    SurvivalPrognosis,
)
from pancreas_contracts.result import AnalysisResult


def make_prognosis(death: tuple[float, float, float] = (0.41, 0.72, 0.86)) -> SurvivalPrognosis:
    """A hand-made prognosis (high risk unless the 3-year probability is under 0.8)."""
    return SurvivalPrognosis(
        model_version="survival-fusion 0.2.0",
        death_probability=death,
        risk_group="high" if death[2] >= 0.8 else "low",
        risk_cutoff=0.8,
        components={
            "radiomics": ModelProbabilities(death_probability=(0.38, 0.70, 0.84)),
            "densenet": ModelProbabilities(death_probability=(0.45, 0.75, 0.88)),
            "clinical": ModelProbabilities(death_probability=(0.40, 0.69, 0.83)),
        },
        staging={
            "T": StageInput(value="T3", source="node"),
            "N": StageInput(value="N+", source="lymph-node-model"),
            "M": StageInput(source="missing"),
        },
        reference_curves=(
            KaplanMeierCurve(
                label="high risk", months=(0, 6, 12, 24, 36), survival=(1.0, 0.8, 0.55, 0.25, 0.1)
            ),
            KaplanMeierCurve(
                label="low risk", months=(0, 12, 24, 36, 48), survival=(1.0, 0.85, 0.6, 0.45, 0.35)
            ),
        ),
        inputs_used=("ct", "tumor_mask", "sex", "age", "T", "N"),
        inputs_missing=("M", "ca19_9_baseline"),
        warnings=("phantom study: synthetic follow-up",),
    )


def with_prognosis(result: AnalysisResult, prognosis: SurvivalPrognosis) -> AnalysisResult:
    """``result`` with a ``prognosis`` section, validated as ``result.json`` would be."""
    return AnalysisResult.model_validate(
        {**result.model_dump(), "prognosis": prognosis.model_dump()}
    )
