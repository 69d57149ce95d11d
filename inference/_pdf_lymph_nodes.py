"""The lymph-node page of the PDF report (result schema 1.6, issue 24).

The first page is full (images, resectability, vessel contacts, inputs and warnings), so a
result with a ``lymph_nodes`` section gets a second A4 page, drawn by
:func:`inference._pdf_layout.draw_report` with the same header and footer: the patient's N
estimate with its probability and threshold, a table of the reported nodes, the most probable
first (station, short and long axis, volume, probability of metastasis, suspicious, centre),
at most :data:`MAX_ROWS` of them (the SR and ``result.json`` hold all), the inputs the model
used and lacked, its warnings, its version and the investigational notice. The first page
names the N estimate in one line (:func:`page_one_line`).
"""

from __future__ import annotations

import textwrap
from typing import Final

import matplotlib as mpl
from matplotlib.figure import Figure

from inference._sr_lymph_nodes import lymph_node_line
from pancreas_contracts.lymph_nodes import JPS_STATIONS, LymphNodeAssessment, LymphNodeFinding

__all__ = ["MAX_ROWS", "lymph_node_block", "n_estimate_line", "page_one_line"]

#: Most node rows on the page.
MAX_ROWS: Final = 30
_RED: Final = "#b00020"
_GREY: Final = "#555555"
_COLUMNS: Final = (0.0, 0.05, 0.14, 0.25, 0.36, 0.47, 0.59, 0.69)
_HEADS: Final = (
    "Node", "Station", "Short axis", "Long axis", "Volume", "P(metastasis)", "Suspicious",
    "Centre LPS (mm)",
)  # fmt: skip
_STEP: Final = 0.0145
_STATIONS: Final = {s.code: s.description for s in JPS_STATIONS}


def n_estimate_line(assessment: LymphNodeAssessment) -> str:
    """The N estimate as the report prints it."""
    count = len(assessment.nodes)
    return (
        f"N estimate: {assessment.n_estimate} (probability of N+ "
        f"{assessment.n_positive_probability:.2f}, threshold {assessment.threshold:.2f}); "
        f"{len(assessment.suspicious_nodes)} suspicious of {count} node{'s' if count != 1 else ''}"
    )


def page_one_line(assessment: LymphNodeAssessment) -> str:
    """The first page's line on the lymph nodes (the table is on page 2)."""
    return f"{lymph_node_line(assessment)} (table on page 2)"


def _cells(node: LymphNodeFinding) -> tuple[str, ...]:
    x, y, z = node.centre_lps_mm
    return (
        str(node.node_id),
        node.station or "-",
        f"{node.short_axis_mm:.1f} mm",
        f"{node.long_axis_mm:.1f} mm",
        f"{node.volume_ml:.2f} mL",
        f"{node.probability:.2f}",
        "yes" if node.suspicious else "no",
        f"{x:.0f}, {y:.0f}, {z:.0f}",
    )


def _line(fig: Figure, y: float, text: str, **style: object) -> float:
    wrapped = "\n".join(textwrap.wrap(text, 115)) or "-"
    fig.text(0.06, y, wrapped, va="top", **style)  # type: ignore[arg-type]
    return y - _STEP * (wrapped.count("\n") + 1)


def lymph_node_block(fig: Figure, assessment: LymphNodeAssessment, y: float) -> float:
    """Draw the lymph-node section from ``y`` down (figure coordinates); returns the ``y`` below.

    Parameters
    ----------
    fig
        The page.
    assessment
        ``result.lymph_nodes``.
    y
        Where the section's title goes.
    """
    x = 0.06
    fig.text(x, y, "Lymph nodes", fontsize=10.5, fontweight="bold", va="top")
    fig.add_artist(
        mpl.lines.Line2D([x, x + 0.88], [y - 0.018, y - 0.018], color="#999999", linewidth=0.6)
    )
    y -= 0.026
    colour = _RED if assessment.n_estimate == "N+" else "black"
    y = _line(fig, y, n_estimate_line(assessment), fontsize=9, fontweight="bold", color=colour)
    used = ", ".join(assessment.inputs_used) or "none"
    missing = ", ".join(assessment.inputs_missing) or "none"
    y = _line(fig, y, f"Model {assessment.model_version}; inputs used: {used}; missing: "
              f"{missing}", fontsize=8)  # fmt: skip
    y -= 0.006
    nodes = assessment.nodes
    if not nodes:
        y = _line(fig, y, "No lymph node found.", fontsize=8.5)
    else:
        for dx, head in zip(_COLUMNS, _HEADS, strict=True):
            fig.text(x + dx, y, head, fontsize=7.5, color=_GREY, va="top")
        y -= _STEP
        for node in nodes[:MAX_ROWS]:
            for n, (dx, cell) in enumerate(zip(_COLUMNS, _cells(node), strict=True)):
                weight = "bold" if node.suspicious and n == 6 else "normal"
                fig.text(x + dx, y, cell, fontsize=8, va="top", fontweight=weight)
            y -= _STEP
        if len(nodes) > MAX_ROWS:
            y = _line(fig, y, f"+{len(nodes) - MAX_ROWS} more nodes in the SR and result.json",
                      fontsize=7.5, color=_GREY)  # fmt: skip
        stations = sorted({n.station for n in nodes if n.station}, key=list(_STATIONS).index)
        if stations:
            legend = "; ".join(f"{s} {_STATIONS[s]}" for s in stations)
            y = _line(fig, y - 0.004, f"JPS stations: {legend}", fontsize=7, color=_GREY)
    for warning in assessment.warnings:
        y = _line(fig, y, f"Warning: {warning}", fontsize=8, color=_RED)
    y = _line(
        fig,
        y - 0.004,
        "Short and long axis in the axial plane; P(metastasis) is the node classifier's "
        "probability, 'suspicious' its bundle's node threshold; the N estimate is the patient "
        "model's probability at the bundle's threshold. Investigational, not for clinical use: "
        "check every node on the images.",
        fontsize=7,
        color=_GREY,
    )
    return y
