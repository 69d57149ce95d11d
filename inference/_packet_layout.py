"""Page layout of the board packet (:mod:`inference.board_packet`): cover, case pages, footer.

Drawn like the PDF report (A4 matplotlib figures, no pyplot) and with its blocks where they
fit: the NCCN category block, the vessel-contact table, the overlay colours and legend come
from :mod:`inference._pdf_layout`, so a case reads the same in the report and in the packet.
Tick boxes are the ballot-box characters (U+2610 empty, U+2612 ticked), so the decision is
in the PDF's text as well as on paper.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from inference._packet_images import KeyPlane
from inference._pdf_layout import (
    A4_INCHES,
    WINDOW,
    category_block,
    legend,
    overlay,
    section,
    vessel_block,
)
from inference._sr_lymph_nodes import lymph_node_line
from inference._sr_survival import survival_line
from pancreas_contracts.boards import (
    BOARD_CATEGORY_TEXT,
    TREATMENT_TEXT,
    BoardCategory,
    ReviewVerdict,
    Treatment,
    nccn_board_category,
)
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import CATEGORY_LABELS, INVESTIGATIONAL_NOTICE, AnalysisResult

if TYPE_CHECKING:  # the value objects live in the public module, which imports this one
    from inference.board_packet import BoardPacket, PacketCase, PacketReview

__all__ = ["draw_case_pages", "draw_cover", "finish_pages"]

_RED: Final = "#b00020"
_GREY: Final = "#555555"
_EMPTY: Final = "\u2610"
_TICKED: Final = "\u2612"
_LINE: Final = 0.0145
#: The decision area without its notes (figure fraction); the footer starts below ``_BOTTOM``.
_DECISION_FIXED: Final = 0.19
_BOTTOM: Final = 0.062
_TICK_STEP: Final = 0.016
#: Room for hand-written notes when the board's decision is not recorded yet.
_NOTE_STEP: Final = 0.03
_VERDICT_TEXT: Final = {
    ReviewVerdict.AGREE: "Agrees with the AI category",
    ReviewVerdict.OVERRIDE: "Overrides the AI category",
    ReviewVerdict.CORRECT: "Corrected the segmentation",
}
#: Patient-direction letters per view (radiological: the patient's right on the left).
_MARKS: Final = {"axial": ("R", "L", "A"), "coronal": ("R", "L", "S")}


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width)) or "-"


def _lines(fig: Figure, x: float, y: float, lines: Sequence[str], **style: object) -> float:
    """Draw wrapped lines top-down from ``y``; return the ``y`` below them."""
    for line in lines:
        wrapped = _wrap(line)
        fig.text(x, y, wrapped, fontsize=8, va="top", **style)  # type: ignore[arg-type]
        y -= _LINE * (wrapped.count("\n") + 1)
    return y


def ai_category_text(result: AnalysisResult | None) -> str:
    """The node's answer in a few words (the cover's column)."""
    if result is None:
        return "not analysed"
    if result.category is None:
        return {"no-tumor": "no tumor", "out-of-domain": "withheld (out of domain)"}.get(
            result.outcome, "no PDAC detected"
        )
    board = nccn_board_category(CATEGORY_LABELS.index(result.category.label))
    return BOARD_CATEGORY_TEXT[board]


def review_text(review: PacketReview | None) -> str:
    """The review verdict in a few words (the cover's column)."""
    if review is None:
        return "not reviewed"
    if review.category is None:
        return _VERDICT_TEXT[review.verdict]
    return f"{_VERDICT_TEXT[review.verdict]}: {BOARD_CATEGORY_TEXT[review.category]}"


def _banner(fig: Figure) -> None:
    fig.text(
        0.94, 0.972, "INVESTIGATIONAL - NOT FOR CLINICAL USE", fontsize=8.5, color="white",
        ha="right", va="center", fontweight="bold",
        bbox={"facecolor": _RED, "edgecolor": _RED, "boxstyle": "square,pad=0.4"},
    )  # fmt: skip


def draw_cover(packet: BoardPacket) -> Figure:
    """The cover page: the board and its cases in order, with the AI and review columns."""
    fig = Figure(figsize=A4_INCHES, dpi=200)
    fig.text(0.06, 0.972, "PancreasAI Node: tumor board packet", fontsize=15, va="center")
    _banner(fig)
    fig.text(0.06, 0.935, packet.title, fontsize=13, fontweight="bold", va="top")
    members = ", ".join(packet.members) or "-"
    y = _lines(
        fig, 0.06, 0.91,
        [f"Board {packet.board_id} on {packet.board_date.isoformat()}   "
         f"{len(packet.cases)} case(s)", f"Members: {members}"],
    )  # fmt: skip
    y = section(fig, 0.06, y - 0.015, "Cases in order of discussion", width=0.88)
    columns = (0.0, 0.05, 0.33, 0.55, 0.78)
    heads = ("#", "Case", "AI category", "Review", "Board decision")
    for dx, head in zip(columns, heads, strict=True):
        fig.text(0.06 + dx, y, head, fontsize=8, color=_GREY, va="top")
    y -= 0.018
    for case in packet.cases:
        decided = "-" if case.decision is None else BOARD_CATEGORY_TEXT[case.decision.category]
        cells = (
            str(case.position), case.label, ai_category_text(case.result),
            review_text(case.review), decided,
        )  # fmt: skip
        height = 1
        for dx, cell in zip(columns, cells, strict=True):
            wrapped = textwrap.fill(cell, 30 if dx < 0.7 else 22)
            height = max(height, wrapped.count("\n") + 1)
            fig.text(0.06 + dx, y, wrapped, fontsize=8.5, va="top")
        y -= 0.016 * height + 0.004
    if not packet.cases:
        fig.text(0.06, y, "No cases on this board yet.", fontsize=9, va="top", color=_GREY)
    _lines(
        fig, 0.06, max(y - 0.02, 0.16),
        ["Cases are named by the last 12 characters of the StudyInstanceUID and the study "
         "date; the packet prints no patient name or ID. Match them to the patients from the "
         "worklist before the board."],
        color=_GREY,
    )  # fmt: skip
    return fig


def _draw_plane(ax: Axes, plane: KeyPlane) -> None:
    ax.imshow(plane.ct, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=plane.aspect)
    ax.imshow(overlay(plane.labels), aspect=plane.aspect, interpolation="nearest")
    for name, width in (("pancreas", 0.6), ("tumor", 1.0)):
        entry = label_by_name(name)
        mask = (plane.labels == entry.value).astype(np.float32)
        if mask.any() and not mask.all():
            colour = tuple(c / 255.0 for c in entry.rgb)
            ax.contour(mask, levels=[0.5], colors=[colour], linewidths=width)
    ax.set_xticks([])
    ax.set_yticks([])
    left, right, top = _MARKS[plane.view]
    style = {"transform": ax.transAxes, "color": "white", "fontsize": 7, "fontweight": "bold"}
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)  # type: ignore[arg-type]
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)  # type: ignore[arg-type]
    ax.text(0.5, 0.97, top, ha="center", va="top", **style)  # type: ignore[arg-type]
    ax.set_title(plane.title, fontsize=7.5, pad=3)


def _case_head(fig: Figure, packet: BoardPacket, case: PacketCase, more: str = "") -> None:
    fig.text(
        0.06, 0.972, f"{packet.title}, {packet.board_date.isoformat()}", fontsize=10,
        va="center", color=_GREY,
    )  # fmt: skip
    _banner(fig)
    fig.text(
        0.06, 0.945, f"Case {case.position}: {case.label}{more}", fontsize=13,
        fontweight="bold", va="top",
    )  # fmt: skip


def _images(fig: Figure, planes: Sequence[KeyPlane], missing: str | None) -> None:
    for n, plane in enumerate(planes):
        _draw_plane(fig.add_axes((0.06 + n * 0.45, 0.71, 0.43, 0.205)), plane)
    if planes:
        legend(fig, 0.69)
    else:
        fig.text(0.5, 0.8, missing or "No image available", ha="center", fontsize=10, color=_GREY)


def _ai_lines(result: AnalysisResult) -> list[str]:
    clinical = result.clinical
    lines = []
    if result.detection is not None:
        lines.append(f"PDAC detection ({result.detection.model_version}): "
                     f"{result.detection.describe()}")  # fmt: skip
    if result.lymph_nodes is not None:
        lines.append(lymph_node_line(result.lymph_nodes))
    if result.prognosis is not None:
        lines.append(survival_line(result.prognosis))
    lines += [
        f"Clinical inputs used ({len(clinical.used)}): {', '.join(clinical.used) or 'none'}; "
        f"missing ({len(clinical.missing)}): {', '.join(clinical.missing) or 'none'}",
        f"Model {result.bundle.name} {result.bundle.version} (sha256 {result.bundle.sha256[:12]}"
        f"...), result schema {result.schema_version}, job {result.job_id or '-'}",
    ]
    return lines


def _review_block(fig: Figure, review: PacketReview | None, y: float) -> float:
    y = section(fig, 0.06, y, "Radiologist's review", width=0.88)
    if review is None:
        return _lines(fig, 0.06, y, ["Not reviewed yet."], color=_GREY)
    when = review.reviewed_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    lines = [f"{review_text(review)}, by {review.reviewer} at {when}"]
    if review.reason:
        lines.append(f"Reason: {review.reason}")
    if review.verdict is ReviewVerdict.CORRECT:
        lines.append("The key images show the AI segmentation; the corrected version is in the "
                     "viewer.")  # fmt: skip
    return _lines(fig, 0.06, y, lines)


def _ticks(fig: Figure, y: float, items: Sequence[tuple[str, bool]], per_column: int) -> float:
    """Tick boxes in columns of ``per_column`` from ``y`` down; return the ``y`` below them."""
    width = 0.86 / max(1, -(-len(items) // per_column))
    for n, (text, ticked) in enumerate(items):
        column, row = divmod(n, per_column)
        fig.text(
            0.07 + column * width, y - row * _TICK_STEP, f"{_TICKED if ticked else _EMPTY} {text}",
            fontsize=8, va="top", fontweight="bold" if ticked else "normal",
        )  # fmt: skip
    return y - _TICK_STEP * min(per_column, len(items)) - 0.004


def _notes(case: PacketCase) -> str | None:
    text = None if case.decision is None else case.decision.text
    return None if not text else _wrap(f"Notes: {text}", 120)


def decision_height(case: PacketCase) -> float:
    """The decision area's height (figure fraction): fixed, plus the notes when recorded."""
    notes = _notes(case)
    extra = _NOTE_STEP if notes is None else _LINE * (notes.count("\n") + 1)
    return _DECISION_FIXED + extra


def _status(case: PacketCase) -> str:
    decision = case.decision
    if decision is None:
        return "(not recorded yet: tick, write and sign below)"
    when = decision.decided_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    return f"(recorded by {decision.decided_by} at {when})"


def _decision_block(fig: Figure, case: PacketCase, top: float) -> None:
    """The boxed decision area, from ``top`` down :func:`decision_height`."""
    height = decision_height(case)
    bottom = top - height
    fig.patches.append(
        Rectangle(
            (0.05, bottom), 0.9, height, transform=fig.transFigure, fill=False,
            edgecolor="black", linewidth=1.0,
        )
    )  # fmt: skip
    decision = case.decision
    fig.text(0.07, top - 0.008, "Board decision", fontsize=11, fontweight="bold", va="top")
    fig.text(0.3, top - 0.011, _status(case), fontsize=8, color=_GREY, va="top")
    y = top - 0.032
    fig.text(0.07, y, "Category", fontsize=7.5, color=_GREY, va="top")
    category = None if decision is None else decision.category
    y = _ticks(fig, y - 0.012, [(BOARD_CATEGORY_TEXT[c], c is category) for c in BoardCategory], 1)
    fig.text(0.07, y, "Treatment", fontsize=7.5, color=_GREY, va="top")
    chosen = set() if decision is None else set(decision.treatments)
    y = _ticks(fig, y - 0.012, [(TREATMENT_TEXT[t], t in chosen) for t in Treatment], 5)
    notes = _notes(case)
    if notes is not None:
        fig.text(0.07, y, notes, fontsize=8, va="top")
    else:
        fig.text(0.07, y - _NOTE_STEP + 0.002, "Notes", fontsize=7.5, color=_GREY, va="bottom")
        fig.add_artist(
            mpl.lines.Line2D([0.14, 0.93], [y - _NOTE_STEP] * 2, color="#999999", linewidth=0.5)
        )
    sign_y = bottom + 0.012
    fig.text(0.07, sign_y + 0.002, "Signature", fontsize=7.5, color=_GREY, va="bottom")
    fig.text(0.6, sign_y + 0.002, "Date", fontsize=7.5, color=_GREY, va="bottom")
    for x0, x1 in ((0.15, 0.55), (0.65, 0.93)):
        fig.add_artist(mpl.lines.Line2D([x0, x1], [sign_y] * 2, color="black", linewidth=0.6))


def draw_case_pages(
    packet: BoardPacket, case: PacketCase, planes: Sequence[KeyPlane], missing: str | None
) -> list[Figure]:
    """A case's page, or two when the decision area does not fit below the results."""
    fig = Figure(figsize=A4_INCHES, dpi=200)
    _case_head(fig, packet, case)
    _images(fig, planes, missing)
    result = case.result
    y = 0.662
    if result is not None:
        left = category_block(fig, result, 0.06, y)
        right = vessel_block(fig, result, 0.52, y)
        y = section(fig, 0.06, min(left, right) - 0.006, "Further AI results", width=0.88)
        y = _lines(fig, 0.06, y, _ai_lines(result))
        y = _lines(fig, 0.06, y, [f"Warning: {w}" for w in result.warnings], color=_RED)
    y = _review_block(fig, case.review, y - 0.01)
    if y - 0.012 - decision_height(case) >= _BOTTOM:
        _decision_block(fig, case, y - 0.012)
        return [fig]
    second = Figure(figsize=A4_INCHES, dpi=200)
    _case_head(second, packet, case, " (continued)")
    _decision_block(second, case, 0.9)
    return [fig, second]


def finish_pages(packet: BoardPacket, pages: Sequence[tuple[Figure, str]], stamp: str) -> None:
    """Footer on every page: the notice, the model version(s), the board and the page."""
    for number, (fig, versions) in enumerate(pages, start=1):
        fig.text(
            0.06, 0.052, f"Model: {versions}   Board {packet.board_id}   generated {stamp}   "
            f"page {number} of {len(pages)}", fontsize=6.5, color=_GREY, va="top",
        )  # fmt: skip
        fig.text(
            0.5, 0.022, f"{INVESTIGATIONAL_NOTICE} AI findings must be checked against the "
            "images by a qualified reader.", fontsize=8.5, color=_RED, ha="center",
            va="center", fontweight="bold",
        )  # fmt: skip
