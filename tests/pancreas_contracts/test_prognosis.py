"""The survival prognosis contract (issue 25; result schema 1.7)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pancreas_contracts.prognosis import (
    HORIZONS_MONTHS,
    HORIZONS_YEARS,
    KaplanMeierCurve,
    ModelProbabilities,
    StageInput,
    SurvivalPrognosis,
)
from pancreas_contracts.result import RESULT_SCHEMA_VERSION, AnalysisResult


def _prognosis(**changes: Any) -> SurvivalPrognosis:
    values: dict[str, Any] = {
        "model_version": "survival 0.1.0",
        "death_probability": (0.41, 0.72, 0.86),
        "risk_group": "high",
        "risk_cutoff": 0.8,
        "components": {
            "radiomics": {"death_probability": (0.3, 0.6, 0.8)},
            "clinical": {"death_probability": (0.2, 0.5, 0.7)},
        },
        "staging": {
            "T": {"value": "T3", "source": "node"},
            "N": {"value": "N+", "source": "lymph-node-model"},
            "M": {"source": "missing"},
        },
        "reference_curves": [
            {"label": "high risk", "months": (0.0, 6.0, 12.0), "survival": (1.0, 0.6, 0.3)},
            {"label": "low risk", "months": (0.0, 12.0, 24.0), "survival": (1.0, 0.9, 0.7)},
        ],
        "inputs_used": ("ct", "tumor_mask", "T", "N"),
        "inputs_missing": ("M",),
    }
    return SurvivalPrognosis.model_validate(values | changes)


def test_the_paper_s_horizons() -> None:
    assert HORIZONS_YEARS == (1, 2, 3)
    assert tuple(12.0 * y for y in HORIZONS_YEARS) == HORIZONS_MONTHS


def test_death_by_a_later_horizon_cannot_be_less_probable() -> None:
    assert _prognosis().death_probability == (0.41, 0.72, 0.86)
    assert _prognosis(death_probability=(0.5, 0.5, 0.9)).death_probability[1] == 0.5
    for bad in ((0.5, 0.4, 0.9), (0.1, 0.9, 0.85)):
        with pytest.raises(ValidationError, match="later horizon"):
            _prognosis(death_probability=bad)
    for bad in ((-0.1, 0.4, 0.9), (0.1, 0.4, 1.2), (float("nan"), 0.4, 0.9)):
        with pytest.raises(ValidationError, match=r"\[0, 1\]"):
            _prognosis(death_probability=bad)
    with pytest.raises(ValidationError, match="later horizon"):
        ModelProbabilities(death_probability=(0.3, 0.2, 0.4))
    with pytest.raises(ValidationError, match="later horizon"):
        _prognosis(components={"densenet": {"death_probability": (0.9, 0.2, 0.4)}})


def test_the_risk_group_is_the_cutoff_s_answer() -> None:
    with pytest.raises(ValidationError, match="risk_group"):
        _prognosis(risk_group="low")  # 0.86 reaches 0.8
    low = _prognosis(death_probability=(0.2, 0.5, 0.79), risk_group="low")
    assert low.risk_group == "low"
    with pytest.raises(ValidationError, match="risk_group"):
        _prognosis(death_probability=(0.2, 0.5, 0.79), risk_group="high")
    # exactly at the cut-off is high risk
    assert _prognosis(death_probability=(0.2, 0.5, 0.8)).risk_group == "high"
    # the horizon picks which probability is compared
    one_year = _prognosis(risk_horizon_years=1, risk_group="low")
    assert one_year.risk_group == "low"  # 0.41 < 0.8 at one year
    with pytest.raises(ValidationError, match="risk_group"):
        _prognosis(risk_horizon_years=1, risk_cutoff=0.4, risk_group="low")
    with pytest.raises(ValidationError):
        _prognosis(risk_horizon_years=5)
    with pytest.raises(ValidationError):
        _prognosis(risk_cutoff=1.5)


def test_a_stage_input_is_missing_exactly_when_it_has_no_value() -> None:
    assert StageInput(source="missing").value is None
    assert StageInput(value="N+", source="registry").value == "N+"
    for value, source in ((None, "node"), ("T2", "missing")):
        with pytest.raises(ValidationError, match="missing stage input"):
            StageInput(value=value, source=source)  # type: ignore[arg-type]
    for value in ("T5", "N1", "M2", "t1", ""):
        with pytest.raises(ValidationError):
            StageInput(value=value, source="node")
    with pytest.raises(ValidationError):
        StageInput(value="T1", source="guess")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        _prognosis(staging={"X": {"value": "T1", "source": "node"}})


def test_a_kaplan_meier_curve_steps_down() -> None:
    curve = KaplanMeierCurve(label="low risk", months=(0.0, 5.0, 5.0, 9.0),
                             survival=(1.0, 0.8, 0.8, 0.1))  # fmt: skip
    assert curve.survival[-1] == 0.1
    for months, survival, message in (
        ((0.0, 6.0, 12.0), (1.0, 0.7, 0.8), "must not increase"),
        ((0.0, 12.0, 6.0), (1.0, 0.7, 0.5), "months must not decrease"),
        ((0.0, 6.0), (1.0, 0.7, 0.5), "same length"),
        ((0.0, 6.0), (1.0, 1.1), r"\[0, 1\]"),
    ):
        with pytest.raises(ValidationError, match=message):
            KaplanMeierCurve(label="x", months=months, survival=survival)
    with pytest.raises(ValidationError):
        KaplanMeierCurve(label="", months=(0.0,), survival=(1.0,))
    with pytest.raises(ValidationError, match="must not increase"):
        _prognosis(reference_curves=[{"label": "x", "months": (0, 1), "survival": (0.5, 0.6)}])


def test_the_contract_is_frozen_and_closed() -> None:
    prognosis = _prognosis()
    with pytest.raises(ValidationError):
        prognosis.risk_group = "low"
    with pytest.raises(ValidationError, match="extra"):
        _prognosis(overall_survival_months=14.0)


def test_describe_and_survival_probability() -> None:
    prognosis = _prognosis()
    assert prognosis.describe() == (
        "high risk (death by 1/2/3 years 0.41/0.72/0.86; cut-off 0.80 at 3 years)"
    )
    assert prognosis.survival_probability == pytest.approx((0.59, 0.28, 0.14))
    one = _prognosis(death_probability=(0.1, 0.2, 0.3), risk_group="low", risk_horizon_years=1,
                     risk_cutoff=0.5)  # fmt: skip
    assert one.describe() == (
        "low risk (death by 1/2/3 years 0.10/0.20/0.30; cut-off 0.50 at 1 year)"
    )


def test_a_result_carries_the_prognosis_section() -> None:
    prognosis = _prognosis()
    result = AnalysisResult.model_validate(
        {
            "study_uid": "1.2.3",
            "series_uid": "1.2.3.4",
            "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
            "category": {
                "label": "resectable",
                "probabilities": (0.8, 0.1, 0.1),
                "uncertainty": 0.0,
            },
            "localisation": {"found": True, "confidence": 0.9},
            "prognosis": prognosis.model_dump(mode="json"),
        }
    )
    assert RESULT_SCHEMA_VERSION == "1.7"
    again = AnalysisResult.model_validate_json(result.to_json())
    assert again.schema_version == "1.7" and again.prognosis == prognosis
    assert again.prognosis is not None
    assert again.prognosis.staging["M"].source == "missing"
    assert again.prognosis.reference_curves[0].months == (0.0, 6.0, 12.0)
    assert again.prognosis.components["radiomics"].death_probability == (0.3, 0.6, 0.8)
    assert again.prognosis.describe() == prognosis.describe()
    without = AnalysisResult.model_validate_json(result.model_copy(update={"prognosis": None})
                                                 .to_json())  # fmt: skip
    assert without.prognosis is None
