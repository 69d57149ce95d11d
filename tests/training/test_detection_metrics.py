"""Detection metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.detection_metrics import (
    ablation_table,
    auroc,
    average_precision,
    froc,
    iou_matrix,
    lesion_average_precision,
    match_lesions,
)


def test_auroc_by_hand() -> None:
    # pairs (pos, neg): (0.35, 0.1) win, (0.35, 0.4) loss, (0.8, 0.1) win, (0.8, 0.4) win: 3/4
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert auroc([0, 0, 1], [0.2, 0.5, 0.5]) == pytest.approx(0.75)
    assert math.isnan(auroc([1, 1], [0.2, 0.3]))


def test_patient_average_precision_by_hand() -> None:
    # ranked: P (P=1, R=.5), N, P (P=2/3, R=1), N -> 0.5 * 1 + 0.5 * 2/3
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    # tied scores form one step: (P=1/2, R=1)
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_iou_matrix_by_hand() -> None:
    predicted = np.zeros((4, 4, 4), dtype=np.int32)
    truth = np.zeros((4, 4, 4), dtype=np.int32)
    predicted[0, 0, :2] = 1  # 2 voxels
    truth[0, 0, 1:4] = 1  # 3 voxels, 1 shared: IoU 1/4
    predicted[3, 3, 3] = 2  # no overlap
    truth[2, 2, 2] = 2
    ious = iou_matrix(predicted, truth)
    assert ious == pytest.approx(np.array([[0.25, 0.0], [0.0, 0.0]]))
    assert iou_matrix(np.zeros((2, 2, 2), int), truth[:2, :2, :2] * 0).shape == (0, 0)
    # a third predicted component with no voxel on this grid (outside the scan): zeros
    assert iou_matrix(predicted, truth, 3)[2].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        iou_matrix(predicted, truth, 1)


def _patient_a() -> list[list[float]]:
    return [[0.5, 0.0], [0.2, 0.0], [0.0, 0.1], [0.0, 0.0], [0.0, 0.3]]


def test_matching_follows_panorama_rules() -> None:
    match = match_lesions(_patient_a(), [0.9, 0.8, 0.7, 0.6, 0.5])
    # 0 hits truth 0 (best IoU); 1 also overlaps truth 0 by >= 0.15: ignored (split-merge);
    # 2 overlaps truth 1 by only 0.1: a false positive, as is 3; 4 hits truth 1
    assert match.true_positive.tolist() == [True, False, False, False, True]
    assert match.ignored.tolist() == [False, True, False, False, False]
    assert match.false_positive.tolist() == [False, False, True, True, False]
    assert match.n_truth == 2


def test_lesion_ap_and_froc_by_hand() -> None:
    a = match_lesions(_patient_a(), [0.9, 0.8, 0.7, 0.6, 0.5])
    b = match_lesions(np.zeros((1, 0)), [0.95])  # a patient without lesions, one FP
    # counted, ranked: 0.95 FP, 0.9 TP (P 1/2, R 1/2), 0.7 FP, 0.6 FP, 0.5 TP (P 2/5, R 1)
    assert lesion_average_precision([a, b]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.4)
    # FP per patient (2 patients) at each step: 0.5, 0.5, 1.0, 1.5, 1.5; sensitivity 0, .5,
    # .5, .5, 1
    assert froc([a, b]) == pytest.approx({0.5: 0.5, 1.0: 0.5, 2.0: 1.0})
    empty = match_lesions(np.zeros((0, 1)), [])  # a missed lesion, nothing predicted
    assert froc([empty]) == {0.5: 0.0, 1.0: 0.0, 2.0: 0.0}
    assert lesion_average_precision([empty]) == 0.0
    assert math.isnan(lesion_average_precision([b]))


def test_ablation_table_keeps_the_score_order() -> None:
    table = ablation_table([0, 1], {"classification": [0.2, 0.8], "combined": [0.9, 0.1]})
    assert [row["score"] for row in table] == ["classification", "combined"]
    assert table[0]["auroc"] == 1.0 and table[1]["auroc"] == 0.0
    assert table[0]["ap"] == 1.0 and table[1]["ap"] == pytest.approx(0.5)
