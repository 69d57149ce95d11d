"""Classification and segmentation metrics of the training report (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DICE_GROUPS",
    "classification_metrics",
    "confusion_matrix",
    "dice_counts",
    "expected_calibration_error",
    "group_labelled",
    "labelled_dice_counts",
    "macro_auc",
    "roc_curve",
    "selection_score",
    "summarise",
    "total_dice_counts",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DICE_GROUPS: Mapping[str, tuple[int, ...]] = {
    "pancreas": (1, 2),  # the gland including its tumor
    "tumor": (2,),
    # The key vessels of the NCCN criteria: portal vein, SMV, SMA, celiac trunk, CHA.
    "major_vessels": (3, 5, 6, 7, 10),
    # Their arteries alone: contact with them is what makes a tumor borderline or locally
    # advanced, and the large veins would otherwise dominate the group above.
    "key_arteries": (6, 7, 10),
}


#: Which of a group's labels a case must annotate to count in its Dice (default: all). The
#: gland group needs only the pancreas: a pancreas-only annotation (NIH Pancreas-CT) outlines
#: the whole gland, and a predicted tumor inside it is still gland.
DICE_GROUP_NEEDS: Mapping[str, tuple[int, ...]] = {"pancreas": (1,)}


def group_labelled(labelled: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.bool_]:
    """Which :data:`DICE_GROUPS` a case with ``labelled`` classes (``None``: all) counts in."""
    if labelled is None:
        return np.ones(len(DICE_GROUPS), dtype=bool)
    return np.array(
        [bool(labelled[list(DICE_GROUP_NEEDS.get(name, labels))].all())
         for name, labels in DICE_GROUPS.items()]
    )  # fmt: skip


def confusion_matrix(truth: Sequence[int], pred: Sequence[int], n: int = 3) -> IntArray:
    """``(n, n)`` counts, rows = truth, columns = prediction."""
    out = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        out[int(t), int(p)] += 1
    return out


def _binary_auc(positive: npt.NDArray[np.bool_], score: FloatArray) -> float:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_auc(truth: Sequence[int], probs: FloatArray) -> float:
    """Macro one-vs-rest ROC AUC over the classes present in ``truth`` (NaN if < 2)."""
    labels = np.asarray(truth)
    aucs = [_binary_auc(labels == c, probs[:, c]) for c in range(probs.shape[1])]
    valid = [a for a in aucs if a == a]
    return float(np.mean(valid)) if valid else float("nan")


def roc_curve(positive: npt.NDArray[np.bool_], score: FloatArray) -> tuple[FloatArray, FloatArray]:
    """False- and true-positive rates at every threshold (for the ROC figure)."""
    order = np.argsort(-score, kind="mergesort")
    hits = positive[order].astype(np.float64)
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(1.0, hits.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(1 - hits) / max(1.0, (1 - hits).sum())])
    return fpr, tpr


def classification_metrics(truth: Sequence[int], probs: FloatArray) -> dict[str, Any]:
    """Macro AUC (OvR), macro-F1, accuracy, per-class recall and the confusion matrix."""
    pred = [int(p) for p in np.argmax(probs, axis=1)]
    cm = confusion_matrix(truth, pred, probs.shape[1])
    recall = [float(cm[c, c] / cm[c].sum()) if cm[c].sum() else float("nan") for c in range(3)]
    f1s = []
    for c in range(cm.shape[0]):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c].sum() - cm[c, c]
        f1s.append(float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) else 0.0)
    return {
        "auc": macro_auc(truth, probs),
        "macro_f1": float(np.mean(f1s)),
        "accuracy": float(np.trace(cm) / max(1, cm.sum())),
        "recall": recall,
        "confusion": cm.tolist(),
    }


def expected_calibration_error(truth: Sequence[int], probs: FloatArray, bins: int = 10) -> float:
    """Expected calibration error of the top-class probability (NaN without cases).

    The cases are put in ``bins`` equal-width bins of their top probability (``(0, 1/bins]``,
    ...); the ECE is the case-weighted mean over bins of ``|accuracy - mean top probability|``
    (Guo et al., ICML 2017).
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    probs = np.asarray(probs, dtype=np.float64)
    if len(truth) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = (np.argmax(probs, axis=1) == np.asarray(truth)).astype(np.float64)
    # Bin b holds (b/bins, (b+1)/bins]; a confidence of exactly 0 would go to bin 0.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(confidence))


def selection_score(truth: Sequence[int], probs: FloatArray) -> float:
    """Inner-validation score that selects and early-stops fits: macro-F1, AUC as tie-break."""
    metrics = classification_metrics(truth, probs)
    auc = metrics["auc"] if metrics["auc"] == metrics["auc"] else 0.0
    return float(metrics["macro_f1"]) + 1e-3 * float(auc)


def dice_counts(
    pred: npt.NDArray[np.integer[Any]], truth: npt.NDArray[np.integer[Any]]
) -> FloatArray:
    """``(groups, 2)`` Dice numerators and denominators for :data:`DICE_GROUPS`."""
    out = np.zeros((len(DICE_GROUPS), 2))
    for g, labels in enumerate(DICE_GROUPS.values()):
        p, t = np.isin(pred, labels), np.isin(truth, labels)
        out[g] = (2.0 * np.logical_and(p, t).sum(), p.sum() + t.sum())
    return out


def total_dice_counts(
    preds: Sequence[npt.NDArray[np.integer[Any]]], truths: Sequence[npt.NDArray[np.integer[Any]]]
) -> FloatArray:
    """:func:`dice_counts` summed over cases."""
    out = np.zeros((len(DICE_GROUPS), 2))
    for pred, truth in zip(preds, truths, strict=True):
        out += dice_counts(pred, truth)
    return out


def labelled_dice_counts(
    preds: Sequence[npt.NDArray[np.integer[Any]]],
    truths: Sequence[npt.NDArray[np.integer[Any]]],
    labelled: npt.NDArray[np.bool_] | None,
) -> tuple[FloatArray, IntArray]:
    """:func:`total_dice_counts` over the cases that label each group, and their numbers.

    Parameters
    ----------
    preds, truths
        Predicted and true label maps, case by case.
    labelled
        ``(cases, NUM_CLASSES)`` labelled classes, or ``None`` when every case labels all.

    Returns
    -------
    tuple
        ``(groups, 2)`` Dice numerators and denominators, and ``(groups,)`` case counts.
    """
    out = np.zeros((len(DICE_GROUPS), 2))
    counted = np.zeros(len(DICE_GROUPS), dtype=np.int64)
    for row, (pred, truth) in enumerate(zip(preds, truths, strict=True)):
        groups = group_labelled(None if labelled is None else labelled[row])
        out[groups] += dice_counts(pred, truth)[groups]
        counted += groups
    return out, counted


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation over folds, ignoring NaN."""
    arr = np.asarray([v for v in values if v == v], dtype=np.float64)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}
