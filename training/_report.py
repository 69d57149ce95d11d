"""``report.md``, ROC curves and confusion matrices of a training run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.tasks.resectability.model import NCCN_CLASSES
from training._metrics import roc_curve, summarise

__all__ = ["VARIANT_TITLES", "plot_confusion", "plot_roc", "write_report"]

VARIANT_TITLES: Mapping[str, str] = {
    "geometry": "segmentation-geometry baseline",
    "multimodal": "multimodal Swin-UNETR",
    "ct_only": "CT only",
    "tabular_only": "tabular only",
    "knockout": "knockout: clinical -> mean embedding",
    "fixed_weights": "fixed loss weights (1, 1)",
}


def plot_roc(
    path: Path, truth: npt.NDArray[np.int64], probs: npt.NDArray[np.float64], title: str
) -> None:
    """One-vs-rest ROC curves of the pooled outer-test predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for c, name in enumerate(NCCN_CLASSES):
        fpr, tpr = roc_curve(truth == c, probs[:, c])
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(path: Path, matrix: npt.NDArray[np.int64], title: str) -> None:
    """Confusion matrix (rows truth, columns prediction) with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    ticks = range(len(NCCN_CLASSES))
    short = ["R", "BR", "LA"]
    ax.set(xticks=ticks, yticks=ticks, xticklabels=short, yticklabels=short)
    ax.set(xlabel="predicted", ylabel="truth", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cell(stats: Mapping[str, float]) -> str:
    if stats["mean"] != stats["mean"]:
        return "n/a"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def write_report(
    path: Path, folds: Mapping[str, Sequence[Mapping[str, Any]]], header: Sequence[str]
) -> dict[str, Any]:
    """Write ``report.md`` and return the mean ± std summary per variant."""
    summary: dict[str, Any] = {}
    lines = ["# Resectability training report", "", *header, ""]
    lines += ["## Table 1: NCCN classification (outer test folds, mean ± std)", ""]
    lines += ["| method | AUC | macro-F1 | accuracy | recall R | recall BR | recall LA | folds |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for variant, rows in folds.items():
        if not rows:
            continue
        stats = {k: summarise([r[k] for r in rows]) for k in ("auc", "macro_f1", "accuracy")}
        recalls = [summarise([r["recall"][c] for r in rows]) for c in range(3)]
        summary[variant] = {**stats, "recall": recalls, "folds": len(rows)}
        cells = [_cell(stats[k]) for k in ("auc", "macro_f1", "accuracy")]
        cells += [_cell(r) for r in recalls]
        title = VARIANT_TITLES.get(variant, variant)
        lines.append(f"| {title} | {' | '.join(cells)} | {len(rows)} |")
    dice_rows = [r for r in folds.get("multimodal", []) if "dice" in r]
    if dice_rows:
        lines += ["", "## Table 2: auxiliary segmentation Dice (outer test folds)", ""]
        lines += ["| structure | Dice | n labelled |", "|---|---|---|"]
        dice: dict[str, Any] = {}
        for name in dice_rows[0]["dice"]:
            dice[name] = summarise([r["dice"][name] for r in dice_rows])
            # Test-fold patients that label the structure (older folds.json: not recorded).
            counted = [r["dice_n"][name] for r in dice_rows if "dice_n" in r]
            n = str(sum(counted)) if counted else "-"
            lines.append(f"| {name.replace('_', ' ')} | {_cell(dice[name])} | {n} |")
        summary["dice"] = dice
    lines += ["", "## Per fold", ""]
    lines += ["| method | fold | AUC | macro-F1 | accuracy | epochs | hyper-parameters |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for variant, rows in folds.items():
        for r in rows:
            lines.append(
                f"| {VARIANT_TITLES.get(variant, variant)} | {r['fold']} | {r['auc']:.3f} | "
                f"{r['macro_f1']:.3f} | {r['accuracy']:.3f} | {r.get('epochs', '-')} | "
                f"{r.get('hp', '-')} |"
            )
    lines += ["", "Figures: `roc_<method>.png`, `confusion_<method>.png` (pooled outer folds).", ""]
    lines += ["Investigational, not for clinical use.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return summary
