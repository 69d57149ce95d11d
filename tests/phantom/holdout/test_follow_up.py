"""Held-out generator: the hidden registry N status and the follow-up columns (issue 25)."""

from __future__ import annotations

import pytest

from phantom import FOLLOW_UP_TRUTH_COLUMNS, linear_predictor
from phantom.holdout import (
    HOLDOUT_TRUTH_COLUMNS,
    HoldoutCohort,
    HoldoutOptions,
    holdout_truth_columns,
)
from tests.phantom.holdout.conftest import read_rows


def test_truth_ends_with_n_status_node_counts_and_follow_up() -> None:
    tail = ("n_status", "node_count", "positive_nodes", *FOLLOW_UP_TRUTH_COLUMNS)
    assert HOLDOUT_TRUTH_COLUMNS[-6:] == tail
    off = holdout_truth_columns(HoldoutOptions(lymph_nodes=False))
    assert off[-4:] == ("n_status", *FOLLOW_UP_TRUTH_COLUMNS)


def test_tumor_free_patient_is_n0_without_follow_up(
    truth_rows: dict[str, dict[str, str]],
) -> None:
    row = truth_rows["HOLDOUT-0003"]
    assert row["n_status"] == "0"
    assert all(row[c] == "" for c in FOLLOW_UP_TRUTH_COLUMNS)


def test_tumor_patients_follow_the_hazard_model(holdout_cohort: HoldoutCohort) -> None:
    clinical = {r["patient_id"]: r for r in read_rows(holdout_cohort.out / "clinical.csv")}
    for row in read_rows(holdout_cohort.out / "truth.csv"):
        if row["has_tumor"] == "0":
            continue
        assert row["n_status"] in ("0", "1")
        assert float(row["os_months"]) >= 0.1 and row["os_event"] in ("0", "1")
        values = clinical[row["patient_id"]]
        if values["ca19_9_baseline"] == "" or values["age"] == "":
            continue  # blanked in clinical.csv; the draw used the true value
        lp = linear_predictor(
            float(row["tumor_volume_ml"]),
            int(row["rule_category"]),
            int(row["n_status"]),
            float(values["ca19_9_baseline"]),
            float(values["age"]),
        )
        assert float(row["hazard_lp"]) == pytest.approx(lp, abs=5e-5)
