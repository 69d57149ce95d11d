"""The generalisation sections of ``evaluation.md`` (issue 21, item 6; no torch here).

Every number is printed with the cohort's generator (:func:`generator_note`), because a number
on the project's own generator shows that the code runs, not that the model works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["GENERATOR_NOTE", "own_generator_note", "pipeline_sections", "real_ct_section"]

#: What a number on the project's own generator does and does not show.
GENERATOR_NOTE = "numbers on our own generator show that the code runs, not that the model works"


def own_generator_note(generator: str) -> str:
    """`` (GENERATOR_NOTE)`` for the training generators (``phantom``, ``phantom-*``), else ``""``.

    The held-out generator (``holdout``) and real CT are not what the model was trained on.
    """
    return f" ({GENERATOR_NOTE})" if generator.startswith("phantom") else ""


def _num(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _rate(value: Mapping[str, Any] | None) -> str:
    if not value or not value.get("n"):
        return "n/a (none)"
    return f"{value['count']} of {value['n']} ({100 * float(value['rate']):.0f} %)"


def _structures(row: Mapping[str, Any]) -> list[str]:
    dice = row.get("structures_dice") or {}
    lines = ["| structure | mean Dice | patients |", "|---|---|---|"]
    for name, value in dice.items():
        lines.append(f"| {name} | {_num(value['mean'])} | {value['n']} |")
    return lines


def _angles(row: Mapping[str, Any]) -> list[str]:
    lines = ["| vessel | contact-angle MAE (deg) | measured / with truth |", "|---|---|---|"]
    for vessel, value in (row.get("contact_mae") or {}).items():
        lines.append(
            f"| {vessel} | {_num(value['mae_deg'], 1)} | "
            f"{value['n_measured']} / {value['n_truth']} |"
        )
    return lines


def _withheld(row: Mapping[str, Any]) -> str:
    withheld = row.get("withheld") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in (withheld.get("reasons") or {}).items())
    return f"{_rate(withheld)}" + (f" ({reasons})" if reasons else "")


def pipeline_sections(row: Mapping[str, Any], generator: str) -> list[str]:
    """The end-to-end scores of one pipeline row, headed with the generator."""
    present = row.get("tumor_present") or {}
    free = row.get("tumor_free") or {}
    strict = present.get("found_dice") or {}
    lines = [
        "",
        f"## End to end on generator `{generator}`{own_generator_note(generator)}",
        "",
        f"- Tumor found when present (a predicted tumor voxel overlaps the true tumor; refused "
        f"or failed patients count as missed): {_rate(present.get('found'))}; with tumor Dice "
        f">= {_num(strict.get('min_dice'), 1)}: {_rate(strict)}.",
        f"- Mean tumor Dice {_num(present.get('dice_mean'))}; predicted tumor "
        f"{_num(present.get('pred_ml_mean'))} mL against {_num(present.get('true_ml_mean'))} mL "
        f"true (means over {present.get('scored', 0)} segmented tumor-bearing patients).",
        f"- False tumor in tumor-free patients (any predicted tumor voxel): "
        f"{_rate(free.get('false_tumor'))}; category given to a tumor-free patient: "
        f"{_rate(free.get('category_given'))}.",
        f"- NCCN (tumor-bearing patients with a category): accuracy {_num(row.get('accuracy'))}, "
        f"macro AUC {_num(row.get('auc'))}, ECE (10 equal-width bins of the top probability) "
        f"{_num(row.get('ece'))}, n {row.get('n')}.",
        f"- Withheld (tumor-bearing patients without a category: no tumor found, out of domain, "
        f"refused or failed): {_withheld(row)}.",
        "",
        "Dice per structure: the pipeline's label map on the truth grid (nearest neighbour), "
        "mean over the patients whose truth holds the structure.",
        "",
        *_structures(row),
        "",
        *_angles(row),
    ]
    return lines


def _where(value: Mapping[str, Any] | None) -> str:
    if not value:
        return "n/a (none)"
    state = "found" if value["found"] else "not found"
    return (
        f"{_num(value['distance_mm'], 1)} mm from the mask centroid (confidence "
        f"{_num(value['confidence'])}, {state}; {value['method']})"
    )


def _answer(value: Mapping[str, Any] | None) -> str:
    if not value:
        return "n/a"
    if value.get("reason"):
        return f"refused, {value.get('message') or value['reason']}"
    category = value.get("category") or "no category"
    return f"{value.get('outcome')}: {category}"


def real_ct_section(real: Mapping[str, Any]) -> list[str]:
    """The NIH Pancreas-CT 0001 section (generator: real CT)."""
    lines = ["", f"## Real CT: NIH Pancreas-CT `{real.get('case')}` (never trained on)", ""]
    if real.get("error"):
        return [*lines, f"- not evaluated: {real['error']}"]
    seg = real.get("segmentation") or {}
    forced = bool(real.get("forced"))
    how = "forced past the localiser refusal; the node itself refuses" if forced else "as analysed"
    lines += [
        f"- Learned localiser: {_where(real.get('learned_localiser'))}.",
        f"- Anatomical landmarks: {_where(real.get('landmarks'))}.",
        f"- The node's localisation (learned, cross-checked): "
        f"{_where(real.get('node_localisation'))}.",
        f"- The node's answer: {_answer(real.get('node'))}.",
    ]
    if forced:
        lines.append(f"- Forced past the refusal: {_answer(real.get('forced_answer'))}.")
    lines += [
        f"- Pancreas Dice ({how}): **{_num(seg.get('pancreas_dice'))}**; predicted pancreas "
        f"{_num(seg.get('pancreas_pred_ml'), 1)} mL against {_num(seg.get('pancreas_true_ml'), 1)}"
        f" mL in the mask; predicted tumor in this healthy pancreas "
        f"{_num(seg.get('tumor_pred_ml'), 2)} mL.",
    ]
    placed = real.get("segmentation_at_landmarks")
    if forced and placed:
        lines.append(
            f"- With the cube at the landmarks' centre instead: pancreas Dice "
            f"**{_num(placed.get('pancreas_dice'))}**, predicted pancreas "
            f"{_num(placed.get('pancreas_pred_ml'), 1)} mL, predicted tumor "
            f"{_num(placed.get('tumor_pred_ml'), 2)} mL; answer "
            f"{_answer(real.get('landmarks_answer'))}."
        )
    return lines
