"""The generalisation scores of ``pancreas-node evaluate`` on hand-made arrays and tables.

ECE, per-structure Dice, tumor found / false tumor, contact-angle MAE with empty truth, the
withheld rate, nearest-neighbour resampling between grids, and the truth table with and
without the columns of the wide and held-out generators.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.volume import Volume
from training._evaluation_scores import (
    FOUND_DICE,
    STRUCTURES,
    label_dice,
    resample_nearest,
    score_label_map,
    summarise_pipeline,
    tumor_scores,
)
from training._evaluation_sections import own_generator_note
from training._evaluation_truth import PatientTruth, cohort_generator, read_truth
from training._metrics import expected_calibration_error


def test_ece_of_hand_made_probabilities() -> None:
    assert expected_calibration_error([0], np.array([[1.0, 0.0, 0.0]])) == 0.0
    # One bin (0.5, 0.6]: accuracy 0.5, mean confidence 0.6.
    two = np.array([[0.6, 0.3, 0.1], [0.6, 0.1, 0.3]])
    assert expected_calibration_error([0, 1], two) == pytest.approx(0.1)
    # Two bins: |1 - 0.95| and |0 - 0.55|, weighted by one case each.
    apart = np.array([[0.95, 0.05, 0.0], [0.55, 0.45, 0.0]])
    assert expected_calibration_error([0, 1], apart) == pytest.approx(0.3)
    # With one bin both cases share it: |0.5 - 0.75|.
    assert expected_calibration_error([0, 1], apart, bins=1) == pytest.approx(0.25)
    assert math.isnan(expected_calibration_error([], np.zeros((0, 3))))
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error([0], two[:1], bins=0)


def test_label_dice_per_structure() -> None:
    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[0, :2] = 1  # 8 pancreas voxels
    pred[0, :1] = 1  # 4 of them predicted
    truth[3, 3, 3] = 8  # one aorta voxel, missed
    pred[2, 2, 2] = 9  # an IVC where the truth has none
    dice = label_dice(pred, truth)
    assert set(dice) == set(STRUCTURES.values()) and len(dice) == 15
    assert dice["pancreas"] == pytest.approx(2 * 4 / 12)
    assert dice["aorta"] == 0.0
    assert dice["ivc"] is None and dice["tumor"] is None


def test_tumor_found_by_overlap_and_volume_in_ml() -> None:
    truth = np.zeros((10, 10, 10), dtype=np.uint8)
    truth[:5] = 2  # 500 voxels
    pred = np.zeros_like(truth)
    pred[4, 0, 0] = 2  # one overlapping voxel and 100 outside
    pred[6:, :5, :5] = 2
    got = tumor_scores(pred, truth, voxel_ml=0.002)
    n_pred = int((pred == 2).sum())
    assert got["overlap"] is True
    assert got["dice"] == pytest.approx(2 * 1 / (500 + n_pred)) and got["dice"] < FOUND_DICE
    assert got["true_ml"] == pytest.approx(1.0) and got["pred_ml"] == pytest.approx(n_pred * 0.002)
    none = tumor_scores(np.zeros_like(truth), np.zeros_like(truth), 1.0)
    assert none == {"true_ml": 0.0, "pred_ml": 0.0, "dice": None, "overlap": False}
    apart = tumor_scores(np.where(truth == 2, 0, 2).astype(np.uint8), truth, 1.0)
    assert apart["overlap"] is False and apart["dice"] == 0.0


def _volume(array: np.ndarray[Any, Any], affine: np.ndarray[Any, Any]) -> Volume:
    return Volume(array.astype(np.uint8), affine)


def test_resample_nearest_between_grids() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 16, size=(5, 6, 7)).astype(np.uint8)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    same = resample_nearest(_volume(labels, affine), (5, 6, 7), affine)
    np.testing.assert_array_equal(same, labels)
    # The same world grid stored with the first axis reversed (a RAS/LPS-like flip).
    flipped = affine.copy()
    flipped[0, 0], flipped[0, 3] = -2.0, 8.0
    np.testing.assert_array_equal(
        resample_nearest(_volume(labels[::-1], flipped), (5, 6, 7), affine), labels
    )
    # Axes permuted (k, j, i) with the affine's columns permuted to match.
    permuted = affine[:, [2, 1, 0, 3]]
    np.testing.assert_array_equal(
        resample_nearest(_volume(labels.transpose(2, 1, 0), permuted), (5, 6, 7), affine), labels
    )
    # A target grid shifted by two voxels along k: the last two slices lie outside (0).
    shifted = affine.copy()
    shifted[2, 3] = 6.0
    got = resample_nearest(_volume(labels, affine), (5, 6, 7), shifted)
    np.testing.assert_array_equal(got[:, :, :5], labels[:, :, 2:])
    assert not got[:, :, 5:].any()


def test_score_label_map_on_a_coarser_prediction_grid() -> None:
    truth = np.zeros((8, 8, 8), dtype=np.uint8)
    truth[2:6, 2:6, 2:6] = 2
    fine = np.diag([1.0, 1.0, 1.0, 1.0])
    # The prediction at 2 mm: its voxels 1 and 2 (2.0 and 4.0 mm) are the nearest of the fine
    # voxels 2..5 (the half-way voxels 3 and 5 round to the even index 2, still inside).
    coarse = np.zeros((4, 4, 4), dtype=np.uint8)
    coarse[1:3, 1:3, 1:3] = 2
    got = score_label_map(_volume(coarse, np.diag([2.0, 2.0, 2.0, 1.0])), _volume(truth, fine))
    assert got["tumor"]["overlap"] and got["tumor"]["true_ml"] == pytest.approx(0.064)
    assert got["dice"]["tumor"] == got["tumor"]["dice"] == pytest.approx(1.0)


def _case(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"has_tumor": True, "category": None, "scores": None}
    base.update(fields)
    return base


def _scores(pred_ml: float, dice: float | None, overlap: bool) -> dict[str, Any]:
    structures: dict[str, float | None] = dict.fromkeys(STRUCTURES.values())
    structures["pancreas"] = 0.8
    structures["tumor"] = dice
    tumor = {"true_ml": 5.0, "pred_ml": pred_ml, "dice": dice, "overlap": overlap}
    return {"dice": structures, "tumor": tumor}


def test_summary_found_false_tumor_angles_and_withheld() -> None:
    cases = [
        _case(category="resectable", scores=_scores(4.0, 0.7, True),
              contact_true={"SMA": 90.0, "SMV": 0.0}, contact_deg={"SMA": 60.0, "SMV": 10.0}),
        # Found by overlap, below the Dice bar; no angle measured for the SMA.
        _case(outcome="no-tumor", scores=_scores(0.1, 0.05, True),
              contact_true={"SMA": 180.0}, contact_deg={"SMA": None}),
        _case(reason="not-localised"),  # refused: counted as missed, no scores
        _case(has_tumor=False, scores=_scores(0.0, None, False), outcome="no-tumor"),
        _case(has_tumor=False, category="borderline", scores=_scores(2.0, None, False)),
    ]  # fmt: skip
    for c in cases[3:]:
        c["scores"]["tumor"]["true_ml"] = 0.0
    got = summarise_pipeline(cases)
    present = got["tumor_present"]
    assert present["found"] == {"count": 2, "n": 3, "rate": pytest.approx(2 / 3)}
    assert present["found_dice"]["count"] == 1 and present["scored"] == 2
    assert present["dice_mean"] == pytest.approx(0.375)
    assert present["pred_ml_mean"] == pytest.approx(2.05)
    free = got["tumor_free"]
    assert free["false_tumor"] == {"count": 1, "n": 2, "rate": 0.5}
    assert free["category_given"] == {"count": 1, "n": 2, "rate": 0.5}
    # Empty truth is skipped; a missing measurement is counted, not scored.
    assert got["contact_mae"]["SMA"] == {"n_truth": 2, "n_measured": 1, "mae_deg": 30.0}
    assert got["contact_mae"]["SMV"] == {"n_truth": 1, "n_measured": 1, "mae_deg": 10.0}
    assert got["contact_mae"]["CA"] == {"n_truth": 0, "n_measured": 0, "mae_deg": None}
    assert got["withheld"] == {
        "count": 2, "n": 3, "rate": pytest.approx(2 / 3),
        "reasons": {"no-tumor": 1, "not-localised": 1},
    }  # fmt: skip
    assert got["structures_dice"]["pancreas"] == {"mean": pytest.approx(0.8), "n": 4}
    assert got["structures_dice"]["tumor"] == {"mean": pytest.approx(0.375), "n": 2}
    assert got["structures_dice"]["aorta"] == {"mean": None, "n": 0}


def _write_truth(path: Path, rows: list[dict[str, str]]) -> None:
    with (path / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_truth_without_the_new_columns(tmp_path: Path) -> None:
    row = {"patient_id": "P1", "nccn_label": "2", "contact_SMA": "200.5", "contact_CA": ""}
    _write_truth(tmp_path, [row, {**row, "patient_id": "P2", "nccn_label": "0"}])
    truths = read_truth(tmp_path)
    assert truths["P1"] == PatientTruth("P1", True, 2, {"SMA": 200.5}, "phantom")
    assert truths["P2"].nccn_label == 0 and truths["P2"].has_tumor
    assert cohort_generator(list(truths.values())) == "phantom"


def test_truth_with_tumor_free_patients_and_generators(tmp_path: Path) -> None:
    rows = [
        {"patient_id": "P1", "nccn_label": "1", "contact_SMV": "120", "has_tumor": "1",
         "generator": "holdout", "tumor_location": "head"},
        {"patient_id": "P2", "nccn_label": "", "contact_SMV": "", "has_tumor": "0",
         "generator": "phantom-wide", "tumor_location": "none"},
    ]  # fmt: skip
    _write_truth(tmp_path, rows)
    truths = read_truth(tmp_path)
    assert truths["P2"] == PatientTruth("P2", False, None, {}, "phantom-wide")
    assert truths["P1"].contact_deg == {"SMV": 120.0}
    assert cohort_generator(list(truths.values())) == "holdout+phantom-wide"
    rows[1]["nccn_label"] = "1"
    _write_truth(tmp_path, rows)
    with pytest.raises(ValueError, match="tumor-free patient has no label"):
        read_truth(tmp_path)
    rows[1]["has_tumor"] = "maybe"
    _write_truth(tmp_path, rows)
    with pytest.raises(ValueError, match="has_tumor"):
        read_truth(tmp_path)


def test_only_the_training_generators_carry_the_caveat() -> None:
    for own in ("phantom", "phantom-wide", "phantom-synth"):
        assert "not that the model works" in own_generator_note(own)
    assert own_generator_note("holdout") == ""
