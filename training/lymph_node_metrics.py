"""Lymph-node metrics (pure numpy): node detection, node classification, patient N status.

Node detection (the paper's section IV-D): a predicted node instance *hits* a truth node when
their voxel IoU is at least 0.3 (one-to-one, largest IoU first:
:func:`inference.tasks.lymph_nodes.nodes.match_instances`); per patient that gives hits,
false positives (predicted instances without a truth node) and truth nodes. Pooled over
patients: recall = hits / truth nodes, precision = hits / predicted instances, the
F-measure, and false positives per patient.

Node classification: the AUC (Mann-Whitney, ties one half:
:func:`training.detection_metrics.auroc`) of the classifier's positive probability.

Patient level (section IV-E): AUC of a patient score, and the accuracy, balanced accuracy,
sensitivity and specificity at a threshold chosen on the validation rows, the one with the
best balanced accuracy there ("an optimal threshold with the best balanced accuracy in the
validation set. Then the threshold is applied to the testing set"). A patient is positive
when its score is at or above the threshold. Candidate thresholds are the distinct
validation scores and one above the largest (everything negative); ties in balanced accuracy
go to the lowest threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.detection_metrics import auroc

__all__ = [
    "NodeCounts",
    "auroc",
    "best_threshold",
    "binary_metrics",
    "detection_summary",
    "score_metrics",
    "validation_threshold",
]


@dataclass(frozen=True)
class NodeCounts:
    """One patient's node detection.

    Attributes
    ----------
    hits
        Predicted instances matched to a truth node (IoU >= 0.3).
    false_positives
        Predicted instances matched to none.
    truth
        Truth nodes of the patient.
    """

    hits: int
    false_positives: int
    truth: int

    def __post_init__(self) -> None:
        if min(self.hits, self.false_positives) < 0 or not 0 <= self.hits <= self.truth:
            raise ValueError("need 0 <= hits <= truth and false_positives >= 0")


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def detection_summary(counts: Sequence[NodeCounts]) -> dict[str, float | int]:
    """Pooled node recall, precision, F-measure and false positives per patient.

    Recall is NaN without a truth node, precision NaN without a prediction, FP per patient
    NaN without a patient.
    """
    hits = sum(c.hits for c in counts)
    fps = sum(c.false_positives for c in counts)
    truth = sum(c.truth for c in counts)
    recall, precision = _ratio(hits, truth), _ratio(hits, hits + fps)
    f_measure = (
        2 * recall * precision / (recall + precision)
        if recall == recall and precision == precision and recall + precision > 0
        else float("nan")
    )
    return {
        "patients": len(counts),
        "truth_nodes": truth,
        "predicted_nodes": hits + fps,
        "hits": hits,
        "recall": recall,
        "precision": precision,
        "f_measure": f_measure,
        "fp_per_patient": _ratio(fps, len(counts)),
    }


def binary_metrics(
    labels: Sequence[int], scores: Sequence[float], threshold: float
) -> dict[str, float]:
    """Accuracy, balanced accuracy, sensitivity and specificity of ``score >= threshold``.

    Sensitivity is NaN without a positive, specificity without a negative; the balanced
    accuracy is their mean (NaN if either is).
    """
    y = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores, dtype=np.float64) >= threshold
    sensitivity = _ratio(float((predicted & y).sum()), float(y.sum()))
    specificity = _ratio(float((~predicted & ~y).sum()), float((~y).sum()))
    return {
        "accuracy": _ratio(float((predicted == y).sum()), float(len(y))),
        "balanced_accuracy": (sensitivity + specificity) / 2.0,
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def best_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The threshold of best balanced accuracy on these rows (see the module docstring).

    Raises
    ------
    ValueError
        Without both classes (the balanced accuracy is undefined) or with no score.
    """
    y = np.asarray(labels, dtype=bool)
    if len(y) != len(scores) or not y.any() or y.all():
        raise ValueError("choosing a threshold needs both classes and one score per label")
    values = np.unique(np.asarray(scores, dtype=np.float64))
    candidates = np.r_[values, np.nextafter(values[-1], np.inf)]
    accuracies = [binary_metrics(labels, scores, float(t))["balanced_accuracy"]
                  for t in candidates]  # fmt: skip
    return float(candidates[int(np.argmax(accuracies))])


def score_metrics(
    labels: Sequence[int], scores: Sequence[float], threshold: float
) -> dict[str, Any]:
    """A patient score's AUC and its :func:`binary_metrics` at ``threshold`` (NaN: all NaN)."""
    thresholded = (
        binary_metrics(labels, scores, threshold)
        if threshold == threshold
        else dict.fromkeys(("accuracy", "balanced_accuracy", "sensitivity", "specificity"),
                           float("nan"))
    )  # fmt: skip
    return {"auc": auroc(labels, scores), "threshold": threshold, **thresholded}


def validation_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """:func:`best_threshold`, NaN without both classes among the rows."""
    try:
        return best_threshold(labels, scores)
    except ValueError:
        return float("nan")
