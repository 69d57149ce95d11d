"""Parsing registry cells and converting units (pure functions)."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db._registry_values import age_at
from db.registry import (
    Censoring,
    ParseIssue,
    from_model_units,
    normalise_unit,
    parse_category,
    parse_registry_date,
    parse_registry_value,
    supported_units,
    to_model_units,
)


@pytest.mark.parametrize(
    ("raw", "value", "censoring", "unit"),
    [
        ("12", 12.0, Censoring.NONE, None),
        ("12,5", 12.5, Censoring.NONE, None),
        ("12.5", 12.5, Censoring.NONE, None),
        ("1.234,5", 1234.5, Censoring.NONE, None),
        ("1,234.5", 1234.5, Censoring.NONE, None),
        ("1 234,5", 1234.5, Censoring.NONE, None),
        ("1.234.567", 1234567.0, Censoring.NONE, None),
        ("  7.1 \t", 7.1, Censoring.NONE, None),
        ("\u00a07,1\u00a0", 7.1, Censoring.NONE, None),
        ("-3,2", -3.2, Censoring.NONE, None),
        ("\u22123.2", -3.2, Censoring.NONE, None),
        (".5", 0.5, Censoring.NONE, None),
        ("1e3", 1000.0, Censoring.NONE, None),
        ("<2", 2.0, Censoring.BELOW, None),
        ("< 0,6", 0.6, Censoring.BELOW, None),
        ("≤5", 5.0, Censoring.BELOW, None),
        (">1000", 1000.0, Censoring.ABOVE, None),
        (">=1000", 1000.0, Censoring.ABOVE, None),
        ("12 mg/dL", 12.0, Censoring.NONE, "mg/dL"),
        ("12mg/dL", 12.0, Censoring.NONE, "mg/dL"),
        ("6,5 %", 6.5, Censoring.NONE, "%"),
        ("24.3 kg/m²", 24.3, Censoring.NONE, "kg/m²"),
        ("<2 U/mL", 2.0, Censoring.BELOW, "U/mL"),
        (12, 12.0, Censoring.NONE, None),
        (12.5, 12.5, Censoring.NONE, None),
        (Decimal("12.50"), 12.5, Censoring.NONE, None),
        (True, 1.0, Censoring.NONE, None),
        (b"12,5", 12.5, Censoring.NONE, None),
    ],
)
def test_numbers_registries_write(
    raw: object, value: float, censoring: Censoring, unit: str | None
) -> None:
    parsed = parse_registry_value(raw)
    assert parsed.value == pytest.approx(value)
    assert parsed.censoring is censoring
    assert parsed.unit == unit
    assert not parsed.missing


@pytest.mark.parametrize(
    ("raw", "issue"),
    [
        (None, ParseIssue.EMPTY),
        ("", ParseIssue.EMPTY),
        ("   ", ParseIssue.EMPTY),
        ("n.a.", ParseIssue.NOT_AVAILABLE),
        ("NA", ParseIssue.NOT_AVAILABLE),
        ("N/A", ParseIssue.NOT_AVAILABLE),
        ("-", ParseIssue.NOT_AVAILABLE),
        ("null", ParseIssue.NOT_AVAILABLE),
        ("abc", ParseIssue.NOT_A_NUMBER),
        ("12-15", ParseIssue.NOT_A_NUMBER),
        ("12 to 15", ParseIssue.NOT_A_NUMBER),
        ("1.2.3", ParseIssue.NOT_A_NUMBER),
        ("1,2,3", ParseIssue.NOT_A_NUMBER),
        ("<", ParseIssue.NOT_A_NUMBER),
        ("ca. 12", ParseIssue.NOT_A_NUMBER),
        ("1" * 100, ParseIssue.NOT_A_NUMBER),
        ("9e999", ParseIssue.NOT_FINITE),
        (float("nan"), ParseIssue.NOT_FINITE),
        (float("inf"), ParseIssue.NOT_FINITE),
        (10**400, ParseIssue.NOT_FINITE),
        (Decimal("sNaN"), ParseIssue.NOT_FINITE),
        (date(2025, 1, 1), ParseIssue.NOT_A_NUMBER),
        ([1], ParseIssue.NOT_A_NUMBER),
    ],
)
def test_missing_cells(raw: object, issue: ParseIssue) -> None:
    parsed = parse_registry_value(raw)
    assert parsed.missing
    assert parsed.value is None
    assert parsed.issue is issue


_CELLS = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.,<>-+ e%mgdLU/\u00a0'≤≥µ"),
    st.binary(),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=600, deadline=None)
@given(_CELLS)
def test_parser_returns_a_finite_number_or_missing_and_never_raises(raw: object) -> None:
    parsed = parse_registry_value(raw)
    if parsed.value is None:
        assert parsed.issue is not None
    else:
        assert math.isfinite(parsed.value)
        assert parsed.issue is None


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.sampled_from([".", ","]))
def test_written_numbers_parse_back(value: float, separator: str) -> None:
    text = f"{value:.3f}".replace(".", separator)
    parsed = parse_registry_value(text)
    assert parsed.value == pytest.approx(round(value, 3), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.dictionaries(st.text(max_size=8), st.integers(0, 5), max_size=4))
def test_category_parser_never_raises(raw: str, mapping: dict[str, int]) -> None:
    code = parse_category(raw, mapping)
    assert code is None or isinstance(code, int)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.none(), st.integers(), st.dates(), st.datetimes()))
def test_date_parser_never_raises(raw: object) -> None:
    parsed = parse_registry_date(raw)
    assert parsed is None or isinstance(parsed, date)


def test_unit_conversions_to_model_units() -> None:
    assert to_model_units("bilirubin", 1.0, "mg/dL") == pytest.approx(17.104)
    assert to_model_units("bilirubin", 17.1, "µmol/L") == pytest.approx(17.1)
    assert to_model_units("bilirubin", 17.1, "umol/l") == pytest.approx(17.1)
    assert to_model_units("glucose", 100.0, "mg/dL") == pytest.approx(100 / 18.016)
    assert to_model_units("glucose", 5.5, "mmol/L") == pytest.approx(5.5)
    assert to_model_units("hba1c", 6.5, "%") == pytest.approx(10.929 * (6.5 - 2.15))
    assert to_model_units("hba1c", 48.0, "mmol/mol") == pytest.approx(48.0)
    assert to_model_units("ca19_9_baseline", 37.0, "kU/L") == pytest.approx(37.0)
    assert to_model_units("ca19_9_post", 37.0, "U/mL") == pytest.approx(37.0)
    assert to_model_units("cea", 3.0, "µg/L") == pytest.approx(3.0)
    assert to_model_units("cea", 3.0, "ng/mL") == pytest.approx(3.0)
    assert to_model_units("bmi", 24.0, "kg/m²") == pytest.approx(24.0)
    assert to_model_units("glucose", 5.5, "g/L") is None
    assert to_model_units("sex", 1.0, "") == 1.0  # categorical codes carry no unit


@pytest.mark.parametrize(
    ("variable", "unit"),
    [
        (v, u)
        for v in ("glucose", "bilirubin", "hba1c", "cea", "ca19_9_delta")
        for u in supported_units(v)
    ],
)
def test_from_model_units_inverts_to_model_units(variable: str, unit: str) -> None:
    for value in (-50.0, 0.0, 5.5, 48.0, 1234.5):
        assert to_model_units(
            variable, from_model_units(variable, value, unit), unit
        ) == pytest.approx(value)
    with pytest.raises(ValueError, match="not supported"):
        from_model_units(variable, 1.0, "furlong")


def test_unit_spellings_normalise() -> None:
    assert normalise_unit(" µmol/L ") == "umol/l"
    assert normalise_unit("μg/L") == "ug/l"
    assert normalise_unit("mcg/L") == "ug/l"
    assert normalise_unit("kg/m^2") == normalise_unit("kg/m²") == "kg/m2"
    assert normalise_unit(None) == ""


def test_categories_map_labels_and_codes() -> None:
    sexes = {"M": 1, "male": 1, "F": 0, "female": 0}
    assert parse_category("m", sexes) == 1
    assert parse_category(" Male ", sexes) == 1
    assert parse_category("F", sexes) == 0
    assert parse_category("1", sexes) == 1
    assert parse_category(2, sexes) == 2
    assert parse_category(True, {}) == 1
    assert parse_category("1,5", sexes) is None
    assert parse_category("<1", sexes) is None
    assert parse_category("unknown", sexes) is None
    assert parse_category("ASA  III", {"ASA III": 3}) == 3


def test_dates_in_registry_spellings() -> None:
    assert parse_registry_date("2025-03-14") == datetime(2025, 3, 14)
    assert parse_registry_date("20250314") == datetime(2025, 3, 14)
    assert parse_registry_date("14.03.2025") == datetime(2025, 3, 14)
    assert parse_registry_date("14.03.2025 08:30") == datetime(2025, 3, 14, 8, 30)
    assert parse_registry_date("2025-03-14 08:30:00") == datetime(2025, 3, 14, 8, 30)
    assert parse_registry_date(date(2025, 3, 14)) == date(2025, 3, 14)
    assert parse_registry_date("soon") is None
    assert parse_registry_date(20250314) is None
    assert age_at(date(1958, 3, 14), date(2025, 3, 14)) == pytest.approx(67.0, abs=0.01)
