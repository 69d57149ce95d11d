"""The markdown report of a detection training or evaluation run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PAPER_NOTE", "metrics_section", "write_report"]

PAPER_NOTE = (
    "Paper (Yu et al., PANORAMA hidden validation, 100 real CTs): classification head alone "
    "AUROC 0.967, AP 0.801; combined with the detection map's maximum AUROC 0.983, AP 0.801."
)
_HONEST = (
    "Numbers on the project's own synthetic phantoms show that the code runs end to end; "
    "they do not show that the model detects PDAC on real CT. Investigational, not for "
    "clinical use."
)
_TITLES = {"classification": "classification head only", "detection_max": "detection map max only",
           "combined": "combined (reported likelihood)"}  # fmt: skip


def _f(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics_section(title: str, summary: Mapping[str, Any]) -> list[str]:
    """Markdown lines for one evaluated set (:func:`training._detection_eval.summarise`)."""
    negatives = summary["patients"] - summary["positives"]
    lines = [
        f"## {title}",
        "",
        f"{summary['patients']} patients ({summary['positives']} PDAC, {negatives} without); "
        f"{summary['truth_lesions']} truth lesions.",
        "",
        "| patient score | AUROC | AP |",
        "| --- | --- | --- |",
    ]
    for row in summary["ablation"]:
        name = _TITLES.get(str(row["score"]), str(row["score"]))
        lines.append(f"| {name} | {_f(row['auroc'])} | {_f(row['ap'])} |")
    froc = summary["froc"]
    lines += [
        "",
        f"Lesion level (hit: IoU >= 0.15): AP {_f(summary['lesion_ap'])}; sensitivity at "
        + ", ".join(f"{rate} FP/patient {_f(value)}" for rate, value in froc.items())
        + ".",
        "",
        f"Stage 1: pancreas found in {summary['pancreas_found']:.0%} of patients; "
        f"{summary['roi_coverage']:.0%} of the truth lesion voxels lie inside the stage-2 ROI.",
        "",
    ]
    return lines


def write_report(
    path: Path, heading: str, facts: Sequence[str], sections: Sequence[list[str]]
) -> Path:
    """Write the report: heading, the honesty note, ``facts`` as bullets, the sections."""
    lines = [f"# {heading}", "", _HONEST, ""]
    lines += [f"- {fact}" for fact in facts]
    lines.append("")
    for section in sections:
        lines += section
    lines += [PAPER_NOTE, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
