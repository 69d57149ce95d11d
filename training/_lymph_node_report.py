"""The markdown report of a lymph-node training or evaluation run, with the paper's numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["HONEST", "PAPER", "metrics_section", "write_report"]

HONEST = (
    "Numbers on the project's own phantoms show that the code runs, not that the model "
    "works. Investigational, not for clinical use."
)
#: The paper's discovery-set numbers (nested 5-fold CV, 749 patients): Table VI (patient
#: level: balanced accuracy, AUC), Table V (class-agnostic instance-wise recall, precision,
#: F-measure, %) and Table IV (node AUC on truth instances).
PAPER: Mapping[str, Mapping[str, float]] = {
    "nodes_only_no_attention": {"balanced_accuracy": 0.545, "auc": 0.590},
    "nodes_only_attention": {"balanced_accuracy": 0.563, "auc": 0.603},
    "full": {"balanced_accuracy": 0.633, "auc": 0.682},
    "detection_no_attention": {"recall": 0.810, "precision": 0.253, "f_measure": 0.361},
    "detection_attention": {"recall": 0.809, "precision": 0.299, "f_measure": 0.406},
    "node_auc_truth": {"auc": 0.854},
}
_PAPER_NOTE = (
    "Paper (Zheng et al., discovery set, 749 patients, nested 5-fold CV, real multiphase CT): "
    "node AUC on truth instances 0.854 (Table IV); instance recall / precision / F-measure "
    "81.0 / 25.3 / 36.1 % without attention (nnU-Net) and 80.9 / 29.9 / 40.6 % with it "
    "(Table V); patient level balanced accuracy / AUC 0.545 / 0.590 (ClsbyLNSeg w/o Attn), "
    "0.563 / 0.603 (ClsbyLNSeg w/ Attn), 0.633 / 0.682 (ClsfromPDAC + ClsbyLNSeg w/ Attn, the "
    "full model; Table VI)."
)


def _f(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _detection_rows(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        "| node segmenter | recall | precision | F-measure | FP / patient | node AUC (truth "
        "nodes) | node AUC (detected nodes) | paper recall / precision / F |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    variants = [("no_attention", "without attention (nnU-Net baseline)"),
                ("attention", "with distance-guided attention")]  # fmt: skip
    for key, name in variants:
        if key not in summary:
            continue
        d, p = summary[key]["detection"], PAPER[f"detection_{key}"]
        lines.append(
            f"| {name} | {_f(d['recall'])} | {_f(d['precision'])} | {_f(d['f_measure'])} | "
            f"{_f(d['fp_per_patient'])} | {_f(summary[key]['node_auc_truth'])} | "
            f"{_f(summary[key]['node_auc_detected'])} | {p['recall']:.3f} / "
            f"{p['precision']:.3f} / {p['f_measure']:.3f} |"
        )
    return lines


def _froc_rows(summary: Mapping[str, Any]) -> list[str]:
    variants = [(k, n) for k, n in (("no_attention", "without attention"),
                                   ("attention", "with attention")) if k in summary]  # fmt: skip
    rates = list(summary["attention"]["detection"].get("froc", {}))
    if not rates:
        return []
    lines = [
        "Candidates before the node threshold, swept over their node probability (FROC): "
        "recall at false positives per patient",
        "",
        f"| node segmenter | {' | '.join(f'{r} FP' for r in rates)} |",
        f"| --- | {' | '.join('---' for _ in rates)} |",
    ]
    for key, name in variants:
        curve = summary[key]["detection"].get("froc", {})
        lines.append(f"| {name} | {' | '.join(_f(curve.get(r)) for r in rates)} |")
    return [*lines, ""]


def _patient_row(name: str, row: Mapping[str, Any], paper: Mapping[str, float]) -> str:
    return (
        f"| {name} | {_f(row['balanced_accuracy'])} | {_f(row['auc'])} | {_f(row['accuracy'])} "
        f"| {_f(row['sensitivity'])} | {_f(row['specificity'])} | {_f(row['threshold'])} | "
        f"{paper['balanced_accuracy']:.3f} | {paper['auc']:.3f} |"
    )


def _ablation_rows(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        "| patient model | balanced accuracy | AUC | accuracy | sensitivity | specificity | "
        "threshold | paper balanced accuracy | paper AUC |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if "no_attention" in summary:
        lines.append(_patient_row("ClsbyLNSeg w/o Attn (largest positive node, ml)",
                                  summary["no_attention"]["nodes_only"],
                                  PAPER["nodes_only_no_attention"]))  # fmt: skip
    lines.append(_patient_row("ClsbyLNSeg w/ Attn (largest positive node, ml)",
                              summary["attention"]["nodes_only"],
                              PAPER["nodes_only_attention"]))  # fmt: skip
    lines.append(_patient_row("full model (tumor slices + largest positive node)",
                              summary["patient"], PAPER["full"]))  # fmt: skip
    return lines


def metrics_section(title: str, summary: Mapping[str, Any], threshold_note: str) -> list[str]:
    """Markdown lines for one evaluated set (:func:`training._lymph_node_eval.summarise`)."""
    detection = summary["attention"]["detection"]
    kinds = ", ".join(f"{kind} {_f(value)}" for kind, value in detection["recall_by_kind"].items())
    return [
        f"## {title}",
        "",
        f"{summary['patients']} patients ({summary['n_positive']} N+), "
        f"{detection['truth_nodes']} truth nodes; tumor slices used for "
        f"{summary['tumor_used']:.0%} of the patients.",
        "",
        "### Node detection (hit: IoU >= 0.3) and classification",
        "",
        *_detection_rows(summary),
        "",
        f"Recall by node kind (with attention): {kinds or 'no truth node'}.",
        "",
        *_froc_rows(summary),
        "### Ablation: patient N status (the paper's Table VI)",
        "",
        *_ablation_rows(summary),
        "",
        threshold_note,
        "",
    ]


def write_report(
    path: Path, heading: str, facts: Sequence[str], sections: Sequence[list[str]]
) -> Path:
    """Write the report: heading, the honesty note, ``facts`` as bullets, sections, the paper."""
    lines = [f"# {heading}", "", HONEST, ""]
    lines += [f"- {fact}" for fact in facts]
    lines.append("")
    for section in sections:
        lines += section
    lines += [_PAPER_NOTE, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
