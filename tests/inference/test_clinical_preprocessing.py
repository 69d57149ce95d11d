"""KNN / mode imputation, one-hot, z-score: fitted on training rows only, JSON round trip."""

from __future__ import annotations

import json

import numpy as np

from inference.clinical_preprocessing import ClinicalPreprocessor, clinical_matrix
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from phantom import plan_cohort

AGE = [v.name for v in CLINICAL_VARIABLES].index("age")
SEX = [v.name for v in CLINICAL_VARIABLES].index("sex")


def _raw(n: int = 40) -> np.ndarray:
    return clinical_matrix([p.clinical for p in plan_cohort(n, seed=5)])


def test_output_has_no_missing_and_right_width() -> None:
    raw = _raw()
    pre = ClinicalPreprocessor().fit(raw)
    out = pre.transform(raw)
    assert out.features.shape == (raw.shape[0], pre.n_features)
    assert np.isfinite(out.features).all()
    assert (out.imputed == np.isnan(raw)).all()
    assert len(pre.feature_names) == pre.n_features


def test_knn_imputes_from_the_nearest_training_rows() -> None:
    train = np.full((7, len(CLINICAL_VARIABLES)), np.nan)
    train[:, AGE] = [40, 41, 42, 43, 44, 90, 91]
    bmi = [v.name for v in CLINICAL_VARIABLES].index("bmi")
    train[:, bmi] = [20, 20, 20, 20, 20, 40, 40]
    pre = ClinicalPreprocessor(k=2).fit(train)
    query = np.full((1, len(CLINICAL_VARIABLES)), np.nan)
    query[0, bmi] = 40
    out = pre.transform(query)
    state = pre.to_json()
    age = out.features[0, 0] * state["scaler_std"][0] + state["scaler_mean"][0]
    assert abs(age - 90.5) < 1e-4
    assert out.imputed_names(0)[0] == "age"


def test_test_rows_never_reach_the_fitted_state() -> None:
    raw = _raw(60)
    train, test = raw[:40], raw[40:]
    pre = ClinicalPreprocessor().fit(train)
    before = json.dumps(pre.to_json())
    poisoned = test.copy()
    poisoned[:, AGE] = 1e6  # would shift every statistic if it leaked in
    pre.transform(poisoned)
    assert json.dumps(pre.to_json()) == before
    assert pre.n_fitted == 40
    again = ClinicalPreprocessor().fit(np.concatenate([train, poisoned]))
    assert again.to_json()["scaler_mean"] != pre.to_json()["scaler_mean"]


def test_json_round_trip_gives_identical_features() -> None:
    raw = _raw()
    pre = ClinicalPreprocessor().fit(raw[:30])
    state = json.loads(json.dumps(pre.to_json()))
    back = ClinicalPreprocessor.from_json(state)
    np.testing.assert_array_equal(back.transform(raw).features, pre.transform(raw).features)


def test_unknown_category_falls_back_to_mode() -> None:
    raw = _raw()
    pre = ClinicalPreprocessor().fit(raw)
    row = raw[:1].copy()
    row[0, SEX] = np.nan
    feats = pre.transform(row).features[0]
    names = pre.feature_names
    assert feats[names.index("sex=0")] + feats[names.index("sex=1")] == 1.0
