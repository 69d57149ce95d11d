"""Held-out generator: truth.csv and clinical.csv, and the truth angles against the label map."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.resectability.measurements import measure
from inference.volume import read_nifti
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.nccn import nccn_rule_category
from pancreas_contracts.result import KEY_VESSELS
from phantom import CLINICAL_COLUMNS, TRUTH_COLUMNS
from phantom.holdout import HOLDOUT_TRUTH_COLUMNS, HoldoutCohort
from tests.phantom.holdout.conftest import read_rows

# The node's read-out on 0.78 x 0.78 x 2 mm voxels against the angle on the solids: a jagged
# voxel edge tips rays towards contact (measurements.py documents about +3 degrees).
ANGLE_TOLERANCE_DEG = 15.0


def test_tables_have_the_training_generators_columns_plus_the_holdout_ones(
    holdout_cohort: HoldoutCohort,
) -> None:
    truth = read_rows(holdout_cohort.out / "truth.csv")
    clinical = read_rows(holdout_cohort.out / "clinical.csv")
    assert tuple(truth[0]) == HOLDOUT_TRUTH_COLUMNS
    assert HOLDOUT_TRUTH_COLUMNS[: len(TRUTH_COLUMNS)] == TRUTH_COLUMNS
    assert tuple(clinical[0]) == CLINICAL_COLUMNS
    assert [r["patient_id"] for r in truth] == [r["patient_id"] for r in clinical]
    assert {r["generator"] for r in truth} == {"holdout"}


def test_tumor_free_row_has_empty_angles_and_labels(
    truth_rows: dict[str, dict[str, str]],
) -> None:
    row = truth_rows["HOLDOUT-0003"]
    assert row["has_tumor"] == "0"
    assert row["tumor_location"] == "none"
    assert float(row["tumor_volume_ml"]) == 0.0
    empty = ("nccn_label", "rule_category", "tumor_attenuation", "tumor_shape")
    for column in (*empty, *(f"contact_{v}" for v in KEY_VESSELS)):
        assert row[column] == "", column


@pytest.mark.parametrize("index", [0, 1])
def test_truth_row_follows_the_rule_and_the_label_map(
    holdout_cohort: HoldoutCohort, index: int
) -> None:
    record = holdout_cohort.records[index]
    row = record.truth
    angles = {v: float(row[f"contact_{v}"]) for v in KEY_VESSELS}
    assert row["has_tumor"] == "1"
    assert -80.0 <= float(row["tumor_attenuation"]) <= 0.0
    assert row["tumor_shape"] in ("round", "lobulated")
    assert int(row["rule_category"]) == nccn_rule_category(angles) == int(row["nccn_label"])
    label = read_nifti(record.label)
    voxel_ml = float(abs(np.linalg.det(label.affine[:3, :3]))) / 1000.0
    tumor_voxels = int(np.count_nonzero(label.array == label_by_name("tumor").value))
    assert float(row["tumor_volume_ml"]) == pytest.approx(tumor_voxels * voxel_ml, rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_truth_angles_match_the_nodes_measurement_of_the_label_map(
    holdout_cohort: HoldoutCohort, index: int
) -> None:
    record = holdout_cohort.records[index]
    measured = measure(read_nifti(record.label))
    for vessel in KEY_VESSELS:
        truth = float(record.truth[f"contact_{vessel}"])
        got = measured.contact_deg[vessel]
        assert got is not None, vessel
        assert abs(got - truth) <= ANGLE_TOLERANCE_DEG, (vessel, truth, got)
    assert measured.rule_category == int(record.truth["rule_category"])


def test_cohort_has_contact_to_check(truth_rows: dict[str, dict[str, str]]) -> None:
    """The angle test above compares real contact, not only zeros."""
    row = truth_rows["HOLDOUT-0002"]
    assert float(row["contact_CA"]) >= 180.0
    assert 0.0 < float(row["contact_PV"]) < 180.0
    assert row["rule_category"] == "2"
    assert truth_rows["HOLDOUT-0001"]["rule_category"] == "0"
