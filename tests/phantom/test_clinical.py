"""Phantom clinical variables: units and ranges, missingness, correlation with the class."""

from __future__ import annotations

import statistics

import pytest

from pancreas_contracts.clinical import CLINICAL_VARIABLES, VariableKind, variable_by_name
from phantom import CLINICAL_COLUMNS, PatientPlan, clinical_rows, plan_cohort


@pytest.fixture(scope="module")
def cohort() -> list[PatientPlan]:
    return plan_cohort(600, seed=21, options=None)


def _values(plans: list[PatientPlan], name: str) -> list[float]:
    return [p.clinical_truth[name] for p in plans if name in p.clinical_truth]


def test_missingness_is_between_10_and_20_percent(cohort: list[PatientPlan]) -> None:
    cells = len(cohort) * len(CLINICAL_VARIABLES)
    missing = sum(len(p.clinical.missing) for p in cohort)
    assert 0.10 <= missing / cells <= 0.20
    # Not-applicable values are missing exactly when no neoadjuvant therapy was given.
    for plan in cohort:
        treated = plan.clinical_truth["neoadjuvant"] > 0
        assert ("ca19_9_post" in plan.clinical_truth) == treated


def test_every_present_value_is_plausible(cohort: list[PatientPlan]) -> None:
    for plan in cohort:
        for name, value in plan.clinical_truth.items():
            assert variable_by_name(name).is_valid(value), (name, value)
        for name in plan.clinical.present:
            assert plan.clinical.values[name] == plan.clinical_truth[name]


def test_values_correlate_with_class_and_location(cohort: list[PatientPlan]) -> None:
    by_class = [[p for p in cohort if p.target_class == c] for c in range(3)]
    ca199 = [statistics.median(_values(group, "ca19_9_baseline")) for group in by_class]
    assert ca199[0] < ca199[1] < ca199[2]
    treated = [statistics.mean(v > 0 for v in _values(g, "neoadjuvant")) for g in by_class]
    assert treated[0] < 0.35 < treated[1] and treated[2] > 0.35
    head = [p for p in cohort if p.tumor_location == "head"]
    body = [p for p in cohort if p.tumor_location == "body"]
    assert statistics.median(_values(head, "bilirubin")) > 2 * statistics.median(
        _values(body, "bilirubin")
    )
    diabetic = [p for p in cohort if p.clinical_truth["diabetes"] == 1]
    other = [p for p in cohort if p.clinical_truth["diabetes"] == 0]
    for name in ("glucose", "hba1c"):
        assert statistics.mean(_values(diabetic, name)) > statistics.mean(_values(other, name)) + 1
    for plan in cohort:
        if "ca19_9_post" in plan.clinical_truth:
            delta = plan.clinical_truth["ca19_9_post"] - plan.clinical_truth["ca19_9_baseline"]
            assert plan.clinical_truth["ca19_9_delta"] == pytest.approx(delta, abs=0.11)


def test_csv_rows_use_model_units_and_empty_cells(cohort: list[PatientPlan]) -> None:
    rows = clinical_rows(cohort[:50])
    assert list(rows[0]) == list(CLINICAL_COLUMNS)
    assert rows[0]["patient_id"] == "PHANTOM-0001"
    for plan, row in zip(cohort[:50], rows, strict=True):
        for variable in CLINICAL_VARIABLES:
            cell = row[variable.name]
            value = plan.clinical.values[variable.name]
            if value is None:
                assert cell == ""
            elif variable.kind is VariableKind.CATEGORICAL:
                assert cell == str(int(value))
            else:
                assert float(cell) == pytest.approx(value)
