"""The time rule and per-cell conversion (pure: no database)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from db._registry_select import RegistryRow, choose_value
from db.registry import TimeRule, VariableConfig

CT = date(2025, 3, 14)


def _source(
    rule: TimeRule = TimeRule.LATEST_BEFORE_CT, unit: str = "mg/dL", **extra: object
) -> VariableConfig:
    return VariableConfig.model_validate(
        {
            "query": "SELECT 1 AS value WHERE :patient_key = ''",
            "unit": unit,
            "time_rule": rule,
            **extra,
        }
    )


def test_latest_value_before_the_ct_within_the_window_wins() -> None:
    rows = [
        RegistryRow("200", taken_at=datetime(2024, 1, 1)),  # too old
        RegistryRow("110", taken_at=datetime(2025, 3, 1, 8)),
        RegistryRow("99,1", taken_at="2025-03-12T07:30:00"),  # the one
        RegistryRow("300", taken_at=datetime(2025, 3, 20)),  # after the CT
    ]
    choice = choose_value("glucose", _source(), rows, CT, 30)
    assert choice.value == pytest.approx(99.1 / 18.016)
    assert choice.taken_at == datetime(2025, 3, 12, 7, 30)
    assert choice.warnings == ()


def test_the_ct_day_itself_counts_and_the_window_edge_is_inclusive() -> None:
    rows = [
        RegistryRow("90", taken_at=date(2025, 3, 4)),
        RegistryRow("95", taken_at="14.03.2025 18:00"),
    ]
    assert choose_value("glucose", _source(), rows, CT, 10).value == pytest.approx(95 / 18.016)
    edge = [RegistryRow("90", taken_at=date(2025, 3, 4))]
    assert choose_value("glucose", _source(), edge, CT, 10).value == pytest.approx(90 / 18.016)
    assert choose_value("glucose", _source(), edge, CT, 9).value is None


def test_nothing_in_the_window_is_missing_with_a_warning() -> None:
    rows = [
        RegistryRow("90", taken_at=date(2024, 1, 1)),
        RegistryRow("95", taken_at=date(2025, 4, 1)),
    ]
    choice = choose_value("glucose", _source(), rows, CT, 30)
    assert choice.value is None
    assert choice.warnings == ("glucose: no value within 30 days before the CT date",)


def test_newer_unusable_value_does_not_hide_an_older_valid_one() -> None:
    rows = [
        RegistryRow("n.a.", taken_at=date(2025, 3, 13)),
        RegistryRow("90", taken_at=date(2025, 3, 10)),
    ]
    choice = choose_value("glucose", _source(), rows, CT, 30)
    assert choice.value == pytest.approx(90 / 18.016)
    assert choice.warnings == ("glucose: newer row skipped (value not available)",)


def test_out_of_range_is_missing_with_a_warning() -> None:
    rows = [RegistryRow("5000", taken_at=date(2025, 3, 10))]  # 277 mmol/L
    choice = choose_value("glucose", _source(), rows, CT, 30)
    assert choice.value is None
    assert choice.warnings == ("glucose: value out of plausible range, treated as missing",)
    assert "5000" not in " ".join(choice.warnings)


def test_censored_value_is_used_with_a_warning() -> None:
    rows = [RegistryRow("<2", unit="U/mL", taken_at=date(2025, 3, 10))]
    choice = choose_value("ca19_9_baseline", _source(unit="kU/L"), rows, CT, 30)
    assert choice.value == 2.0
    assert choice.warnings == ("ca19_9_baseline: censored value ('<' limit) used as the value",)


def test_row_unit_and_glued_unit_override_the_configured_one() -> None:
    rows = [RegistryRow("1,0", unit="mg/dL", taken_at=date(2025, 3, 10))]
    assert choose_value("bilirubin", _source(unit="umol/L"), rows, CT, 30).value == pytest.approx(
        17.104
    )
    glued = [RegistryRow("17,1 µmol/L", unit="mg/dL", taken_at=date(2025, 3, 10))]
    assert choose_value("bilirubin", _source(), glued, CT, 30).value == pytest.approx(17.1)
    unknown = [RegistryRow("1,0", unit="g/L", taken_at=date(2025, 3, 10))]
    choice = choose_value("bilirubin", _source(), unknown, CT, 30)
    assert choice.value is None
    assert choice.warnings == ("bilirubin: unit not recognised, treated as missing",)


def test_undated_rows_are_ignored_by_the_ct_rule_but_used_by_latest() -> None:
    rows = [RegistryRow("90")]
    choice = choose_value("glucose", _source(), rows, CT, 30)
    assert choice.value is None
    assert choice.warnings == ("glucose: 1 undated value(s) ignored",)
    latest = choose_value("glucose", _source(TimeRule.LATEST), rows, CT, 30)
    assert latest.value == pytest.approx(90 / 18.016)


def test_latest_rule_ignores_the_ct_date() -> None:
    rows = [
        RegistryRow("G1", taken_at=date(2020, 1, 1)),
        RegistryRow("G3", taken_at=date(2025, 6, 1)),
    ]
    source = _source(TimeRule.LATEST, unit="", categories={"G1": 1, "G2": 2, "G3": 3})
    assert choose_value("grade", source, rows, CT, 30).value == 3


def test_single_rule_refuses_conflicting_values() -> None:
    source = _source(TimeRule.SINGLE, unit="", categories={"M": 1, "F": 0})
    assert choose_value("sex", source, [RegistryRow("M"), RegistryRow("m")], CT, 0).value == 1
    choice = choose_value("sex", source, [RegistryRow("M"), RegistryRow("F")], CT, 0)
    assert choice.value is None
    assert choice.warnings == ("sex: conflicting values in 2 rows, treated as missing",)
    unknown = choose_value("sex", source, [RegistryRow("x")], CT, 0)
    assert unknown.warnings == ("sex: unknown category, treated as missing",)
    bad_code = choose_value("sex", source, [RegistryRow("7")], CT, 0)
    assert bad_code.warnings == ("sex: value out of plausible range, treated as missing",)


def test_age_from_date_of_birth() -> None:
    source = _source(TimeRule.SINGLE, unit="date_of_birth")
    choice = choose_value("age", source, [RegistryRow(date(1958, 3, 14))], CT, 0)
    assert choice.value == pytest.approx(67.0, abs=0.01)
    unreadable = choose_value("age", source, [RegistryRow("long ago")], CT, 0)
    assert unreadable.value is None
    assert unreadable.warnings == ("age: date of birth not readable, treated as missing",)


def test_no_rows_is_missing_without_noise() -> None:
    choice = choose_value("cea", _source(unit="ng/mL"), [], CT, 30)
    assert choice == type(choice)(None, None, ())
