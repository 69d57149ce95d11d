"""The lymph-node metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.tasks.lymph_nodes.nodes import match_instances
from training.lymph_node_metrics import (
    NodeCounts,
    auroc,
    best_threshold,
    binary_metrics,
    detection_summary,
    score_metrics,
    validation_threshold,
)


def test_detection_summary_pools_patients() -> None:
    # patient 1: 2 of 3 nodes found, 1 false positive; patient 2: 1 of 1, 3 false positives;
    # patient 3: no node, nothing found
    counts = [NodeCounts(2, 1, 3), NodeCounts(1, 3, 1), NodeCounts(0, 0, 0)]
    summary = detection_summary(counts)
    assert summary["truth_nodes"] == 4 and summary["predicted_nodes"] == 7
    assert summary["recall"] == pytest.approx(3 / 4)
    assert summary["precision"] == pytest.approx(3 / 7)
    assert summary["f_measure"] == pytest.approx(2 * (3 / 4) * (3 / 7) / (3 / 4 + 3 / 7))
    assert summary["fp_per_patient"] == pytest.approx(4 / 3)


def test_detection_summary_without_nodes_or_predictions_is_nan() -> None:
    summary = detection_summary([NodeCounts(0, 0, 0)])
    assert math.isnan(summary["recall"]) and math.isnan(summary["precision"])
    assert math.isnan(summary["f_measure"]) and summary["fp_per_patient"] == 0.0
    assert math.isnan(detection_summary([])["fp_per_patient"])
    with pytest.raises(ValueError):
        NodeCounts(2, 0, 1)


def test_counts_from_the_iou_matching() -> None:
    truth = np.zeros((10, 1, 1), dtype=np.int64)
    truth[0:4] = 1  # node 1: 4 voxels
    truth[6:8] = 2  # node 2: 2 voxels
    predicted = np.zeros_like(truth)
    predicted[1:4] = 1  # IoU 3/4 with node 1: a hit
    predicted[7:10] = 2  # IoU 1/4 with node 2: below 0.3, a false positive
    matching = match_instances(predicted, truth)
    counts = NodeCounts(len(matching.hits), len(matching.false_positives), 2)
    assert matching.hits == ((1, 1, 0.75),) and counts == NodeCounts(1, 1, 2)


def test_binary_metrics_by_hand() -> None:
    labels = [1, 1, 1, 0, 0]
    scores = [0.9, 0.6, 0.2, 0.7, 0.1]
    # threshold 0.5: predicted 1, 1, 0, 1, 0 -> TP 2, FN 1, FP 1, TN 1
    out = binary_metrics(labels, scores, 0.5)
    assert out["sensitivity"] == pytest.approx(2 / 3) and out["specificity"] == 0.5
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert out["accuracy"] == pytest.approx(3 / 5)
    assert binary_metrics(labels, scores, 0.6)["sensitivity"] == pytest.approx(2 / 3)  # >=


def test_best_threshold_by_hand() -> None:
    labels = [0, 0, 1, 0, 1, 1]
    scores = [0.1, 0.3, 0.4, 0.5, 0.8, 0.9]
    # candidates 0.1, 0.3, 0.4, 0.5, 0.8, 0.9 and above all: balanced accuracy 0.5, 0.667,
    # 0.833 (0.4: TP 3, FN 0, TN 2, FP 1 -> (1 + 2/3) / 2), 0.667, 0.833 (0.8: TP 2, FN 1,
    # TN 3 -> (2/3 + 1) / 2), 0.667, 0.5; the tie between 0.4 and 0.8 goes to the lowest
    assert best_threshold(labels, scores) == 0.4
    assert best_threshold([0, 1, 1], [0.2, 0.5, 0.8]) == 0.5  # 0.5, 1.0, 0.75, 0.5
    # an inverted score: 0.2 (all positive) and above 0.8 (all negative) both give 0.5, 0.8
    # gives 0; the tie goes to the lowest threshold
    assert best_threshold([1, 0], [0.2, 0.8]) == 0.2
    with pytest.raises(ValueError):
        best_threshold([1, 1], [0.2, 0.3])


def test_score_metrics_and_the_validation_threshold() -> None:
    assert math.isnan(validation_threshold([0, 0], [0.1, 0.2]))
    labels, scores = [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]
    out = score_metrics(labels, scores, 0.5)
    assert out["auc"] == pytest.approx(0.75) == auroc(labels, scores)
    assert out["balanced_accuracy"] == pytest.approx(0.5) and out["threshold"] == 0.5
    missing = score_metrics(labels, scores, float("nan"))
    assert math.isnan(missing["balanced_accuracy"]) and missing["auc"] == pytest.approx(0.75)
