"""``evaluation.md`` and ``evaluation.json`` of :mod:`training.evaluation` (no torch here)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from training._evaluation_sections import (
    own_generator_note,
    pipeline_sections,
    real_ct_section,
)
from training._metrics import DICE_GROUPS
from training._report import VARIANT_TITLES

__all__ = ["clean_json", "row_title", "write_outputs"]

_KIND_TITLES = {
    "knockout": "knock-out (clinical -> mean embedding)",
    "pipeline": "end-to-end pipeline",
}


def row_title(bundle: Mapping[str, Any], kind: str = "cube") -> str:
    """The table's name of one row: bundle name, version and what was run."""
    what = VARIANT_TITLES.get(str(bundle["variant"]), str(bundle["variant"]))
    if kind != "cube":
        what = f"{what}, {_KIND_TITLES[kind]}"
    return f"{bundle['name']} {bundle['version']} ({what})"


def clean_json(value: Any) -> Any:
    """``value`` with NaN/infinite floats as ``None`` and numpy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _over(counted: int | None, scored: int) -> str:
    """`` (n=k)`` when a Dice is over fewer cases than were scored (partial labels)."""
    return "" if counted is None or counted >= scored else f" (n={counted})"


def _table(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| model | n | macro AUC | macro-F1 | accuracy | recall R | recall BR | recall LA | "
        "Dice pancreas | Dice tumor | Dice vessels | Dice arteries | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        dice = row.get("dice") or {}
        cells = [str(row["n"]), _num(row["auc"]), _num(row["macro_f1"]), _num(row["accuracy"])]
        cells += [_num(r) for r in row["recall"]]
        counted = row.get("dice_n") or {}
        scored = row["cases_total"] - len(row.get("failed") or [])
        # A structure labelled by fewer of the scored cases says over how many (n=).
        cells += [_num(dice.get(k)) + _over(counted.get(k), scored) for k in DICE_GROUPS]
        cells.append(_num(row.get("ece")))
        lines.append(f"| {row['label']} | {' | '.join(cells)} |")
    return lines


def _pipeline_lines(row: Mapping[str, Any]) -> list[str]:
    total = row["cases_total"]
    refused = ", ".join(f"{k} {v}" for k, v in row["refused"].items()) or "none"
    loc = row["localisation_distance_mm"]
    where = "n/a"
    if loc["n"]:
        where = f"median {loc['median']:.1f} mm, max {loc['max']:.1f} mm ({loc['n']} cases)"
    return [
        f"- End to end: {row['n']} of {total} cases got a category (metrics over those); "
        f"no tumor segmented (no category): {row.get('no_tumor', 0)}; "
        f"refused or failed: {refused}.",
        f"- Localisation centre to the true pancreas centroid: {where}.",
        f"- Rule category (NCCN rule on the contact angles measured on the predicted "
        f"segmentation) equal to the label: {_agreement(row.get('rule_agreement'))}.",
    ]


def _agreement(value: Any) -> str:
    if not isinstance(value, Mapping) or not value.get("n"):
        return "n/a (no case had one)"
    return f"{value['agree']} of {value['n']} ({100 * value['fraction']:.0f} %)"


def write_outputs(out: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``out/evaluation.md`` and ``out/evaluation.json``; return both paths.

    Raises
    ------
    OSError
        If ``out`` cannot be written.
    """
    out.mkdir(parents=True, exist_ok=True)
    cohort = report["cohort"]
    generator = str(cohort.get("generator", "phantom"))
    lines = [f"# Resectability evaluation: generator `{generator}`", ""]
    lines += [f"**{report['notice'].capitalize()}.**", ""]
    lines += [
        f"- cohort: `{cohort['path']}`, generator `{generator}`{own_generator_note(generator)}, "
        f"{cohort['patients']} patients ({cohort.get('tumor_free', 0)} tumor-free), classes "
        f"(resectable, borderline, locally advanced) {cohort['classes']}"
        + (
            f", {cohort['nccn_unknown']} of unknown category (not in the NCCN metrics)"
            if cohort.get("nccn_unknown")
            else ""
        )
        + (
            f"; {cohort['partially_labelled']} partially labelled (each structure's Dice over "
            "the patients that label it)"
            if cohort.get("partially_labelled")
            else ""
        ),
        f"- date: {report['created']}; device: {report['device']}",
    ]
    for i, b in enumerate(report["bundles"], start=1):
        lines.append(
            f"- bundle {i}: {b['name']} {b['version']} ({b['variant']}, {b['members']} "
            f"member(s)), `{b['path']}`, bundle.json sha256 {b['sha256']}, training data "
            f"sha256 {b['training_data_sha256']}"
        )
    lines += [
        "",
        "Cube rows: each case preprocessed as in training (the cube centred on its label map's "
        "pancreas centroid, each bundle's own preprocessing), the members' probabilities "
        "averaged, nothing refitted on this cohort; Dice pooled over cases in the cube. "
        "Knock-out: the clinical pathway replaced by the training-mean embedding. End-to-end: "
        "the analysis pipeline on the full CT (localisation, cube, ensemble, checks).",
        "",
        *_table(list(report["rows"])),
        "",
    ]
    for row in report["rows"]:
        if row["kind"] == "pipeline":
            lines += _pipeline_lines(row)
        for failure in row["failed"]:
            lines.append(f"- {row['label']}: {failure['patient_id']} failed: {failure['error']}")
    lines += [f"- {note}" for note in report.get("notes", [])]
    for row in report["rows"]:
        if row["kind"] == "pipeline":
            lines += pipeline_sections(row, generator)
    if report.get("real_ct") is not None:
        lines += real_ct_section(report["real_ct"])
    lines += ["", "Per-case predictions: `evaluation.json`.", ""]
    markdown = out / "evaluation.md"
    markdown.write_text("\n".join(lines), encoding="utf-8")
    path = out / "evaluation.json"
    path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return markdown, path
