"""Shared contracts: settings, label map, clinical variables, job states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pancreas_contracts import (
    CLINICAL_VARIABLES,
    LABELS,
    NUM_CLASSES,
    ClinicalVariables,
    JobState,
    label_by_name,
    load_settings,
)
from pancreas_contracts.job_states import TRANSITIONS


def test_label_map_is_methods_sixteen_classes() -> None:
    assert NUM_CLASSES == 16
    assert [label.value for label in LABELS] == list(range(16))
    assert label_by_name("tumor").value == 2
    assert label_by_name("sma").property_type.value == "42258001"
    assert len({label.name for label in LABELS}) == 16


def test_seventeen_clinical_variables() -> None:
    assert len(CLINICAL_VARIABLES) == 17
    assert len({v.name for v in CLINICAL_VARIABLES}) == 17


def test_clinical_variables_valid_at_construction() -> None:
    row = ClinicalVariables({"age": 67.0, "sex": 1, "ca19_9_baseline": 350.0})
    assert "bmi" in row.missing
    assert row.present == ("age", "sex", "ca19_9_baseline")
    with pytest.raises(ValueError, match="implausible"):
        ClinicalVariables({"age": 250.0})
    with pytest.raises(ValueError, match="unknown"):
        ClinicalVariables({"shoe_size": 42.0})
    with pytest.raises(ValueError, match="implausible"):
        ClinicalVariables({"sex": 3})


def test_settings_defaults_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.ae_title == "PANCREAS_AI"
    assert settings.port == 11112
    assert settings.resolved_database_url.startswith("sqlite:///")
    monkeypatch.setenv("PANCREAS_AI_PORT", "11999")
    assert load_settings().port == 11999
    config = tmp_path / "node.toml"
    config.write_text('port = 12000\nae_title = "SITE_AI"\n')
    settings = load_settings(config)
    assert (settings.port, settings.ae_title) == (12000, "SITE_AI")
    assert load_settings(config, port=12001).port == 12001


def test_settings_reject_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        load_settings(ae_title="A" * 17)
    with pytest.raises(ValidationError):
        load_settings(port=70000)
    bad = tmp_path / "bad.toml"
    bad.write_text("port = ")
    with pytest.raises(ValueError, match="cannot read settings"):
        load_settings(bad)


def test_job_state_transitions_end_in_delivered() -> None:
    assert JobState.DELIVERED in TRANSITIONS[JobState.DONE]
    assert not TRANSITIONS[JobState.DELIVERED]
    assert JobState.QUEUED in TRANSITIONS[JobState.RUNNING]


def test_analysis_result_is_valid_at_construction() -> None:
    from pancreas_contracts.result import AnalysisResult

    base = {
        "study_uid": "1.2.3",
        "series_uid": "1.2.3.4",
        "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
        "category": {"label": "borderline", "probabilities": (0.2, 0.7, 0.1), "uncertainty": 0.05},
        "rule_category": "locally advanced",
        "disagreement": True,
        "measurements": {"tumor_volume_ml": 12.5, "contact_deg": {"SMA": 200.0, "PV": 0.0}},
        "localisation": {"found": True, "confidence": 0.9},
    }
    result = AnalysisResult.model_validate(base)
    assert result.notice == "Investigational, not for clinical use."
    assert AnalysisResult.model_validate_json(result.to_json()) == result
    for change in (
        {"disagreement": False},
        {"category": {**base["category"], "label": "resectable"}},  # type: ignore[dict-item]
        {"category": {**base["category"], "probabilities": (0.5, 0.7, 0.1)}},  # type: ignore[dict-item]
        {"measurements": {"contact_deg": {"AORTA": 10.0}}},
        {"measurements": {"contact_deg": {"SMA": 400.0}}},
        {"bundle": {"name": "demo", "version": "1", "sha256": "nope"}},
    ):
        with pytest.raises(ValidationError):
            AnalysisResult.model_validate({**base, **change})


_NO_TUMOR_BASE: dict[str, object] = {
    "study_uid": "1.2.3",
    "series_uid": "1.2.3.4",
    "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
    "outcome": "no-tumor",
    "category": None,
    "measurements": {"contact_deg": dict.fromkeys(("SMA", "CA", "CHA", "SMV", "PV"))},
    "localisation": {"found": True, "confidence": 0.9},
    "warnings": ("no tumor segmented: staging not possible",),
}


def test_a_no_tumor_result_has_no_category() -> None:
    from pancreas_contracts.result import (
        NO_TUMOR_NOTE,
        RESULT_SCHEMA_VERSION,
        AnalysisResult,
    )

    assert RESULT_SCHEMA_VERSION == "1.7"
    assert NO_TUMOR_NOTE == "no tumor segmented: staging not possible"
    result = AnalysisResult.model_validate(_NO_TUMOR_BASE)
    assert result.schema_version == RESULT_SCHEMA_VERSION and result.outcome == "no-tumor"
    assert result.category is None and result.rule_category is None and not result.disagreement
    assert AnalysisResult.model_validate_json(result.to_json()) == result
    category = {"label": "resectable", "probabilities": (0.8, 0.1, 0.1), "uncertainty": 0.0}
    for change in (
        {"category": category},  # no-tumor with a category
        {"outcome": "done"},  # done without a category
        {"rule_category": "resectable", "disagreement": True},
        {"disagreement": True},
        {"warnings": ()},  # the note is required
        {"outcome": "no-finding"},
    ):
        with pytest.raises(ValidationError):
            AnalysisResult.model_validate({**_NO_TUMOR_BASE, **change})


_OUT_OF_DOMAIN_BASE: dict[str, object] = {
    **_NO_TUMOR_BASE,
    "outcome": "out-of-domain",
    "measurements": {"tumor_volume_ml": 3.0, "contact_deg": {"SMA": 90.0}},
    "domain": {
        "grade": "out-of-domain",
        "reasons": ("CT intensities 30.0 training IQRs from the cohort",),
        "numbers": {"intensity_distance_iqr": 30.0, "sma_ml": None},
        "source": "seed 11, first 20",
    },
    "warnings": ("CT out of the training domain: NCCN category withheld",),
}


def test_an_out_of_domain_result_withholds_the_category() -> None:
    from pancreas_contracts.result import OUT_OF_DOMAIN_NOTE, AnalysisResult

    result = AnalysisResult.model_validate(_OUT_OF_DOMAIN_BASE)
    assert OUT_OF_DOMAIN_NOTE in result.warnings
    assert result.category is None and result.rule_category is None
    assert result.domain is not None and result.domain.grade == "out-of-domain"
    assert AnalysisResult.model_validate_json(result.to_json()) == result
    category = {"label": "resectable", "probabilities": (0.8, 0.1, 0.1), "uncertainty": 0.0}
    in_domain = {"grade": "in-domain"}
    for change in (
        {"category": category},  # a category although withheld
        {"rule_category": "resectable", "disagreement": True},
        {"warnings": ()},  # the note is required
        {"domain": in_domain},  # withheld without an out-of-domain check
        {"domain": None},
        {"domain": {"grade": "borderline"}},  # borderline without its reasons
        {"domain": {**_OUT_OF_DOMAIN_BASE["domain"], "numbers": {"x": float("nan")}}},  # type: ignore[dict-item]
    ):
        with pytest.raises(ValidationError):
            AnalysisResult.model_validate({**_OUT_OF_DOMAIN_BASE, **change})
    done = AnalysisResult.model_validate(
        {
            **_OUT_OF_DOMAIN_BASE,
            "outcome": "done",
            "category": category,
            "warnings": (),
            "domain": {"grade": "not-available", "reasons": ("the bundle has no domain",)},
        }
    )
    assert done.domain is not None and done.domain.grade == "not-available"


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_older_results_still_parse(version: str) -> None:
    from pancreas_contracts.result import AnalysisResult

    old = {
        "schema_version": version,
        "study_uid": "1.2.3",
        "series_uid": "1.2.3.4",
        "job_id": "job-1",
        "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
        "category": {"label": "resectable", "probabilities": [0.8, 0.1, 0.1], "uncertainty": 0.0},
        "rule_category": None,
        "disagreement": False,
        "measurements": {"tumor_volume_ml": None, "contact_deg": {"SMA": 0.0}},
        "localisation": {"found": True, "confidence": 0.9},
        "warnings": ["no tumor found"],
        "notice": "Investigational, not for clinical use.",
    }
    if version == "1.1":
        old["tasks"] = {}
    result = AnalysisResult.model_validate_json(json.dumps(old))
    assert result.schema_version == version and result.outcome == "done"
    assert result.category is not None and result.category.label == "resectable"


def test_test_time_flips_are_off_by_default_and_set_by_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().tta_flips is False
    monkeypatch.setenv("PANCREAS_AI_TTA_FLIPS", "true")
    assert load_settings().tta_flips is True


def test_a_category_has_a_spread_with_models_or_flip_passes() -> None:
    from pancreas_contracts.result import Category

    base = {"label": "resectable", "probabilities": (0.8, 0.1, 0.1), "uncertainty": 0.05}
    assert Category.model_validate(base).has_spread  # written before ensemble_size
    assert not Category.model_validate({**base, "ensemble_size": 1}).has_spread
    assert Category.model_validate({**base, "ensemble_size": 1, "passes": 4}).has_spread
    with pytest.raises(ValidationError):
        Category.model_validate({**base, "passes": 1})  # one pass is no spread: None


def test_the_source_series_says_which_version_was_read() -> None:
    from pancreas_contracts.result import AnalysisResult, SourceSeries

    assert SourceSeries(instance_count=301, series_version=2).describe() == (
        "series version 2, 301 instances"
    )
    assert SourceSeries(instance_count=1).describe() == "1 instance"
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SourceSeries(instance_count=0)
    older = AnalysisResult.model_validate({**_NO_TUMOR_BASE, "schema_version": "1.3"})
    assert older.source is None  # a 1.3 result still reads
    read = AnalysisResult.model_validate(
        {**_NO_TUMOR_BASE, "source": {"instance_count": 3, "series_version": 1}}
    )
    assert AnalysisResult.model_validate_json(read.to_json()).source == read.source


def test_a_failure_reason_names_its_stage() -> None:
    from pancreas_contracts.job_states import ASSEMBLY_STAGE, failed_stage, failure_reason

    reason = failure_reason(ASSEMBLY_STAGE, 1, "assembly failed: IndexError")
    assert reason == "failed at assembly after 1 attempt: assembly failed: IndexError"
    assert failed_stage(reason) == "assembly"
    assert failed_stage(failure_reason("analysis", 3, "x")) == "analysis"
    assert failed_stage("failed at analysis (attempt 1 of 3, retry scheduled): x") == "analysis"
    assert failed_stage(None) is None and failed_stage("refused: not-localised") is None
