"""The survival report: the paper's comparison table, risk groups, calibration, figures.

One section per evaluated set (the training run's held-out test split; ``pancreas-node
evaluate --task survival`` adds fresh phantoms and the held-out generator). Each has the
table of the four models of the paper (radiomics, 3D-DenseNet, clinical, fusion) plus the
paper's five-variable clinical model and the **oracle** (the generator's own linear
predictor, the best any model could do on these patients), the risk groups with the log-rank
p, the calibration of the fusion at 3 years, and three PNG figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pancreas_contracts.prognosis import HORIZONS_YEARS, KaplanMeierCurve
from training._metrics import roc_curve

__all__ = ["MODEL_TITLES", "plot_calibration", "plot_km", "plot_roc_horizons", "section"]

#: Report rows by model key, in the paper's order.
MODEL_TITLES: Mapping[str, str] = {
    "radiomics": "radiomics (PCA -> LASSO -> RSF)",
    "densenet": "3D-DenseNet (dual input)",
    "clinical_paper": "clinical (paper: sex, age, T, N, M)",
    "clinical": "clinical (+ CA 19-9)",
    "fusion": "fusion (logistic regression)",
    "fusion_no_n": "fusion, N unknown (imputed: the node without a lymph-node model)",
    "oracle": "oracle: the generator's hazard",
}
#: The paper's test-set AUCs at 1/2/3 years (its Table 2 / abstract).
PAPER_AUC: Mapping[str, tuple[float, float, float]] = {
    "radiomics": (0.78, 0.85, 0.91),
    "densenet": (0.81, 0.79, 0.75),
    "fusion": (0.87, 0.92, 0.94),
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2g}"


def plot_km(path: Path, curves: Sequence[KaplanMeierCurve], title: str) -> None:
    """Kaplan-Meier step curves of the risk groups."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for curve in curves:
        ax.step(curve.months, curve.survival, where="post", label=curve.label)
    ax.set(xlabel="months", ylabel="overall survival", ylim=(0, 1.02), xlim=(0, 60), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc_horizons(
    path: Path,
    probs: Mapping[str, npt.NDArray[np.float64]],
    died: Sequence[npt.NDArray[np.bool_]],
    known: Sequence[npt.NDArray[np.bool_]],
    title: str,
) -> None:
    """ROC curves at 1, 2 and 3 years, one line per model."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    for h, ax in enumerate(axes):
        for key, p in probs.items():
            fpr, tpr = roc_curve(died[h][known[h]], p[known[h], h])
            ax.plot(fpr, tpr, label=key)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(title=f"{HORIZONS_YEARS[h]} year", xlabel="false-positive rate")
    axes[0].set_ylabel("true-positive rate")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_calibration(path: Path, bins: Sequence[Mapping[str, float]], title: str) -> None:
    """Predicted against Kaplan-Meier observed death by the horizon, per bin."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted", ylabel="observed (Kaplan-Meier)", title=title, xlim=(0, 1),
           ylim=(0, 1))  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _row(key: str, metrics: Mapping[str, Any]) -> str:
    h = metrics["horizons"]
    auc = " / ".join(_f(x["auc"]) for x in h)
    td = " / ".join(_f(x["td_auc"]) for x in h)
    acc = "n/a" if key == "oracle" else " / ".join(_f(x["accuracy"]) for x in h)
    paper = PAPER_AUC.get(key)
    ref = " / ".join(f"{v:.2f}" for v in paper) if paper else ""
    return f"| {MODEL_TITLES[key]} | {auc} | {td} | {acc} | {_f(metrics['c_index'])} | {ref} |"


def section(title: str, results: Mapping[str, Mapping[str, Any]], figures: Mapping[str, str],
            notes: Sequence[str] = ()) -> str:  # fmt: skip
    """One evaluated set as Markdown (figures named relative to the report)."""
    fusion = results["fusion"]
    counts = fusion["horizons"]
    lines = [
        f"## {title}",
        "",
        f"{fusion['n']} PDAC patients; known status / deaths by 1, 2, 3 years: "
        + ", ".join(f"{c['n_known']}/{c['deaths']}" for c in counts) + ".",
        "",
        "| model | AUC 1/2/3 y | time-dependent AUC 1/2/3 y | accuracy 1/2/3 y | C-index | "
        "paper's test AUC |",
        "|---|---|---|---|---|---|",
        *(_row(key, results[key]) for key in MODEL_TITLES if key in results),
        "",
    ]  # fmt: skip
    risk = fusion["risk"]
    cal = fusion["calibration"]
    lines += [
        f"**Risk groups** (fusion, 3-year death probability >= the cut-off): {risk['n_high']} "
        f"high, {risk['n_low']} low; log-rank p = {_p(risk['logrank_p'])} "
        "(paper: p < 0.001).",
        "",
        f"**Calibration** (fusion, death by 36 months, quintiles): ECE {_f(cal['ece'], 3)}; "
        + "; ".join(f"predicted {_f(b['predicted'])} / observed {_f(b['observed'])} (n {b['n']})"
                    for b in cal["bins"]) + ".",
        "",
        *(f"![{name}]({file})" for name, file in figures.items()),
        "",
        *notes,
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
