"""Detection metrics (pure numpy): PANORAMA's patient and lesion metrics, FROC, the ablation.

Patient level: AUROC (the Mann-Whitney statistic, ties counted one half) and average
precision (AP: the step-wise sum ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores, as
scikit-learn's ``average_precision_score``).

Lesion level (PANORAMA / PI-CAI evaluation, Yu et al. section 3.1): a predicted lesion is a
true positive when its IoU with a truth lesion is at least 0.15; when several predictions reach
that with the same truth lesion, the one of highest IoU is the true positive and the others
are ignored (neither true nor false positives, the split-merge rule); a prediction that reaches
it with no truth lesion is a false positive; a truth lesion left unmatched is missed (it
lowers recall at every threshold). Lesion AP is the step-wise AP over all predictions of all
patients with recall over all truth lesions; the FROC gives the sensitivity reached at no more
than 0.5, 1 and 2 false positives per patient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "FP_RATES",
    "MIN_IOU",
    "LesionMatch",
    "ablation_table",
    "auroc",
    "average_precision",
    "froc",
    "iou_matrix",
    "lesion_average_precision",
    "match_lesions",
]

MIN_IOU = 0.15
"""Smallest IoU of a hit (PANORAMA)."""

FP_RATES: tuple[float, ...] = (0.5, 1.0, 2.0)
"""False positives per patient at which the FROC sensitivity is reported."""

FloatArray = npt.NDArray[np.float64]


def _average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties given their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    return ranks


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (NaN unless both classes are present)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def _step_ap(scores: FloatArray, hits: npt.NDArray[np.bool_], total: int) -> float:
    """Step-wise AP of ranked items (``hits``: true positive or not) against ``total`` truths."""
    if total == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    s, h = scores[order], hits[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last item of every group of equal scores
    tp = np.cumsum(h)[last].astype(np.float64)
    fp = np.cumsum(~h)[last].astype(np.float64)
    recall = tp / total
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Patient-level average precision (NaN without a positive patient)."""
    y = np.asarray(labels, dtype=bool)
    return _step_ap(np.asarray(scores, dtype=np.float64), y, int(y.sum()))


def iou_matrix(
    predicted: npt.NDArray[np.integer],
    truth: npt.NDArray[np.integer],
    n_predicted: int | None = None,
) -> FloatArray:
    """IoU of every predicted component (rows) with every truth component (columns).

    Parameters
    ----------
    predicted, truth
        Component maps on the same grid: 0 background, 1..n the components.
    n_predicted
        Number of predicted components (default: the map's maximum); a component with no
        voxel on this grid (e.g. outside the scan) has a row of zeros.
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"grids differ: {predicted.shape} vs {truth.shape}")
    n_pred = int(predicted.max(initial=0)) if n_predicted is None else n_predicted
    n_truth = int(truth.max(initial=0))
    if int(predicted.max(initial=0)) > n_pred:
        raise ValueError("the predicted map holds more components than n_predicted")
    either = (predicted > 0) | (truth > 0)
    joint = predicted[either].astype(np.int64) * (n_truth + 1) + truth[either].astype(np.int64)
    counts = np.bincount(joint, minlength=(n_pred + 1) * (n_truth + 1))
    table = counts.reshape(n_pred + 1, n_truth + 1).astype(np.float64)
    inter = table[1:, 1:]
    union = table[1:, :].sum(axis=1)[:, None] + table[:, 1:].sum(axis=0)[None, :] - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


@dataclass(frozen=True)
class LesionMatch:
    """One patient's predictions judged against its truth lesions.

    Attributes
    ----------
    scores
        Each prediction's probability.
    true_positive
        Whether each prediction is its truth lesion's hit.
    ignored
        Predictions overlapping an already hit truth lesion (split-merge): not counted.
    n_truth
        Truth lesions of the patient.
    """

    scores: FloatArray
    true_positive: npt.NDArray[np.bool_]
    ignored: npt.NDArray[np.bool_]
    n_truth: int

    @property
    def false_positive(self) -> npt.NDArray[np.bool_]:
        """Predictions that count as false positives."""
        out: npt.NDArray[np.bool_] = ~self.true_positive & ~self.ignored
        return out


def match_lesions(
    ious: npt.ArrayLike, scores: Sequence[float], min_iou: float = MIN_IOU
) -> LesionMatch:
    """Judge one patient's predictions (rows of ``ious``) against its truth lesions (columns).

    Pairs reaching ``min_iou`` are taken in order of decreasing IoU; a pair whose prediction
    and truth lesion are both still free becomes a true positive. Remaining predictions that
    reach ``min_iou`` with some truth lesion are ignored; the others are false positives.

    Raises
    ------
    ValueError
        If ``ious`` is not 2D with one row per score.
    """
    matrix = np.asarray(ious, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(scores):
        raise ValueError(f"ious must be (predictions, truths); got {matrix.shape}")
    n_pred, n_truth = matrix.shape
    hit = np.zeros(n_pred, dtype=bool)
    taken = np.zeros(n_truth, dtype=bool)
    rows, cols = np.nonzero(matrix >= min_iou)
    for k in np.argsort(-matrix[rows, cols], kind="mergesort"):
        p, t = int(rows[k]), int(cols[k])
        if not hit[p] and not taken[t]:
            hit[p], taken[t] = True, True
    overlapping = (matrix >= min_iou).any(axis=1) if n_truth else np.zeros(n_pred, dtype=bool)
    return LesionMatch(np.asarray(scores, dtype=np.float64), hit, overlapping & ~hit, n_truth)


def _pooled(matches: Sequence[LesionMatch]) -> tuple[FloatArray, npt.NDArray[np.bool_], int]:
    """Counted predictions of all patients (scores, hit flags) and the number of truths."""
    scores = [m.scores[~m.ignored] for m in matches]
    hits = [m.true_positive[~m.ignored] for m in matches]
    total = sum(m.n_truth for m in matches)
    if not scores:
        return np.zeros(0), np.zeros(0, dtype=bool), total
    return np.concatenate(scores), np.concatenate(hits), total


def lesion_average_precision(matches: Sequence[LesionMatch]) -> float:
    """Lesion-level AP over all patients (NaN without a truth lesion)."""
    scores, hits, total = _pooled(matches)
    return _step_ap(scores, hits, total)


def froc(matches: Sequence[LesionMatch], rates: Sequence[float] = FP_RATES) -> dict[float, float]:
    """Sensitivity at no more than each of ``rates`` false positives per patient.

    The operating points are the distinct prediction scores (and "nothing detected"); the
    sensitivity at a rate is the best one among points within it. NaN without a truth lesion.
    """
    scores, hits, total = _pooled(matches)
    if total == 0 or not matches:
        return {float(r): float("nan") for r in rates}
    order = np.argsort(-scores, kind="mergesort")
    s, h = scores[order], hits[order]
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, dtype=bool)
    sensitivity = np.r_[0.0, np.cumsum(h)[last] / total]
    fp_rate = np.r_[0.0, np.cumsum(~h)[last] / len(matches)]
    return {float(r): float(sensitivity[fp_rate <= r].max()) for r in rates}


def ablation_table(
    labels: Sequence[int], scores: Mapping[str, Sequence[float]]
) -> list[dict[str, float | str]]:
    """Patient AUROC and AP of each score (``mode -> per-patient scores``), in mapping order."""
    return [
        {"score": mode, "auroc": auroc(labels, values), "ap": average_precision(labels, values)}
        for mode, values in scores.items()
    ]
