"""The clinical model's inputs: AJCC 8th T and N with their source, and the clinical row."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.tasks.survival import (
    CLINICAL_INPUTS,
    PAPER_CLINICAL_INPUTS,
    clinical_row,
    n_stage,
    t_stage,
)
from pancreas_contracts.prognosis import StageInput


@pytest.mark.parametrize(
    ("diameter", "expected"),
    [(5.0, "T1"), (20.0, "T1"), (20.01, "T2"), (40.0, "T2"), (40.5, "T3"), (90.0, "T3")],
)
def test_t_by_size(diameter: float, expected: str) -> None:
    stage = t_stage(diameter, {"SMA": 90.0, "CA": 0.0, "CHA": None, "SMV": 270.0, "PV": 181.0})
    assert stage == StageInput(value=expected, source="node")


@pytest.mark.parametrize("artery", ["SMA", "CA", "CHA"])
def test_t4_is_arterial_encasement(artery: str) -> None:
    assert t_stage(12.0, {artery: 181.0}).value == "T4"
    assert t_stage(12.0, {artery: 180.0}).value == "T1"  # abutment up to 180 is not T4


def test_venous_contact_is_not_t4_and_no_size_is_missing() -> None:
    assert t_stage(30.0, {"SMV": 360.0, "PV": 360.0}).value == "T2"
    assert t_stage(None, {"SMA": 270.0}) == StageInput(source="missing")
    assert t_stage(math.nan, {}).source == "missing"


def test_n_from_the_lymph_node_model() -> None:
    assert n_stage("N+") == StageInput(value="N+", source="lymph-node-model")
    assert n_stage("N0").value == "N0"
    assert n_stage(None) == StageInput(source="missing")


def test_the_clinical_row() -> None:
    assert CLINICAL_INPUTS == ("sex", "age", "T", "N", "M", "ca19_9_baseline")
    assert CLINICAL_INPUTS[: len(PAPER_CLINICAL_INPUTS)] == PAPER_CLINICAL_INPUTS
    staging = {"T": StageInput(value="T3", source="node"), "N": n_stage("N+"),
               "M": StageInput(value="M0", source="registry")}  # fmt: skip
    row = clinical_row({"sex": 1.0, "age": 67.0, "ca19_9_baseline": 1000.0}, staging)
    assert row.tolist() == [1.0, 67.0, 3.0, 1.0, 0.0, pytest.approx(3.0)]
    # CA 19-9 below 1 U/mL enters as log10(1); female (0) is a value, not missing
    low = clinical_row({"sex": 0.0, "age": 50.0, "ca19_9_baseline": 0.2}, staging)
    assert low[0] == 0.0 and low[-1] == 0.0
    n0 = clinical_row({}, {"T": StageInput(value="T4", source="node"), "N": n_stage("N0"),
                           "M": StageInput(value="M1", source="registry")})  # fmt: skip
    assert n0[2:5].tolist() == [4.0, 0.0, 1.0]


def test_missing_values_are_nan() -> None:
    staging = {"T": StageInput(source="missing"), "N": n_stage(None),
               "M": StageInput(source="missing")}  # fmt: skip
    row = clinical_row({"sex": None, "age": 70.0}, staging)
    assert row.shape == (len(CLINICAL_INPUTS),)
    assert [n for n, v in zip(CLINICAL_INPUTS, row, strict=True) if np.isnan(v)] == [
        "sex", "T", "N", "M", "ca19_9_baseline"
    ]  # fmt: skip
    assert np.isnan(clinical_row({"age": 70.0}, {})[2:5]).all()  # no staging at all
