"""Page layout of the PDF report (drawn with matplotlib's PDF backend, no pyplot).

One A4 page; a result with a ``lymph_nodes`` section (schema 1.6) gets a second page with the
lymph-node table (:mod:`inference._pdf_lymph_nodes`), the first page naming the N estimate, and
one with a ``prognosis`` section (schema 1.7) a further page with the survival prognosis and its
plot (:mod:`inference._pdf_survival`), the first page naming the risk group.

Kept apart from :mod:`inference.pdf_report` (which chooses slices and wraps the PDF in DICOM) so
each stays short. Everything shown comes from the :class:`AnalysisResult`, the CT volume, the
label map and the source header.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from pydicom.dataset import Dataset

from inference._pdf_lymph_nodes import lymph_node_block, page_one_line
from inference._pdf_survival import page_one_line as survival_page_one_line
from inference._pdf_survival import survival_block
from inference.tasks.resectability.measurements import ARTERIAL_VESSELS, nccn_rule_category
from pancreas_contracts.detection import NO_PDAC_NOTE, Detection
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    KEY_VESSELS,
    NO_TUMOR_NOTE,
    OUT_OF_DOMAIN_NOTE,
    AnalysisResult,
    Category,
    TaskSection,
)

__all__ = [
    "KeySlice",
    "category_block",
    "draw_report",
    "legend",
    "overlay",
    "pdf_style",
    "section",
    "vessel_block",
]

A4_INCHES: Final = (8.27, 11.69)
#: Abdominal soft-tissue window (HU): level 40, width 400.
WINDOW: Final = (-160.0, 240.0)
#: Labels drawn over the key slices, back to front (tumor last, on top).
OVERLAY_LABELS: Final = ("portal_vein", "smv", "sma", "celiac_trunk", "cha", "tumor")
_ALPHA: Final = 0.5
_RED: Final = "#b00020"
_GREY: Final = "#555555"
_CATEGORY_TEXT: Final = ("Resectable", "Borderline resectable", "Locally advanced")
#: What a no-tumor result (outcome no-tumor) shows instead of the category block.
NO_TUMOR_SENTENCE: Final = NO_TUMOR_NOTE[0].upper() + NO_TUMOR_NOTE[1:]
#: What an out-of-domain result (outcome out-of-domain) shows instead of the category block.
OUT_OF_DOMAIN_SENTENCE: Final = OUT_OF_DOMAIN_NOTE
#: The training-domain grades (result.domain, schema 1.3) as the report words them.
DOMAIN_TEXT: Final = {
    "in-domain": "In domain",
    "borderline": "Borderline",
    "out-of-domain": "OUT OF DOMAIN",
    "not-available": "not available",
}
#: Patient-direction letters on each panel (radiological view): x, y, letter, alignment.
_ORIENTATION_MARKS: Final = (
    (0.02, 0.5, "R", "left", "center"),
    (0.98, 0.5, "L", "right", "center"),
    (0.5, 0.97, "A", "center", "top"),
)
_SHORT: Final = ("resectable", "borderline", "loc. advanced")
_READING_NOTES: Final = (
    "How to read: the network category comes from the model's ensemble (mean class "
    "probabilities; the uncertainty is the spread between its fold models). The rule category "
    "applies the NCCN thresholds to the measured tumor-vessel contact angles (the arc of the "
    "vessel's circumference in contact with tumor). When the two differ, the report says so; "
    "neither replaces a radiologist's reading. Coloured overlays show the model's "
    "segmentation (also stored as DICOM SEG; measurements as DICOM SR in the same study)."
)


@dataclass(frozen=True)
class KeySlice:
    """One axial slice to show: the CT, its labels, and where it lies.

    ``ct`` and ``labels`` are display-ordered (row 0 anterior, column 0 the patient's right,
    i.e. radiological convention); ``aspect`` is row spacing over column spacing.
    """

    ct: npt.NDArray[np.float32]
    labels: npt.NDArray[np.integer]
    aspect: float
    z_mm: float
    reason: str
    index: int
    count: int


def _date(value: object) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _header_lines(header: Dataset | None, result: AnalysisResult) -> tuple[str, str, str]:
    uids = f"Study UID {result.study_uid}   Series UID {result.series_uid}"
    if header is None:
        return "Patient: (source header not given)", "", uids
    patient = (
        f"Patient: {header.get('PatientName', '') or '-'}    "
        f"ID {header.get('PatientID', '') or '-'}    "
        f"Sex {header.get('PatientSex', '') or '-'}    "
        f"Born {_date(header.get('PatientBirthDate', '')) or '-'}"
    )
    study = (
        f"Study {_date(header.get('StudyDate', '')) or '-'}    "
        f"Accession {header.get('AccessionNumber', '') or '-'}    "
        f"Series {header.get('SeriesNumber', '') or '-'}: "
        f"{header.get('SeriesDescription', '') or '-'}"
    )
    return patient, study, uids


def overlay(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    rgba = np.zeros((*labels.shape, 4), dtype=np.float32)
    for name in OVERLAY_LABELS:
        entry = label_by_name(name)
        mask = labels == entry.value
        rgba[mask, :3] = np.asarray(entry.rgb, dtype=np.float32) / 255.0
        rgba[mask, 3] = _ALPHA
    return rgba


def _draw_slice(ax: Axes, key: KeySlice) -> None:
    ax.imshow(key.ct, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=key.aspect)
    ax.imshow(overlay(key.labels), aspect=key.aspect, interpolation="nearest")
    pancreas = label_by_name("pancreas")
    tumor = label_by_name("tumor")
    for entry, width in ((pancreas, 0.6), (tumor, 1.0)):
        mask = (key.labels == entry.value).astype(np.float32)
        if mask.any() and not mask.all():
            colour = tuple(c / 255.0 for c in entry.rgb)
            ax.contour(mask, levels=[0.5], colors=[colour], linewidths=width)
    ax.set_xticks([])
    ax.set_yticks([])
    for x, y, mark, ha, va in _ORIENTATION_MARKS:
        ax.text(
            x,
            y,
            mark,
            transform=ax.transAxes,
            ha=ha,
            va=va,
            color="white",
            fontsize=7,
            fontweight="bold",
        )
    ax.set_title(
        f"{key.reason}\nz = {key.z_mm:.1f} mm  (slice {key.index + 1}/{key.count})",
        fontsize=7.5,
        pad=3,
    )


def legend(fig: Figure, y: float) -> None:
    names = ("tumor", "sma", "celiac_trunk", "cha", "smv", "portal_vein", "pancreas")
    for n, name in enumerate(names):
        entry = label_by_name(name)
        x = 0.06 + 0.22 * (n % 4)
        row_y = y - 0.016 * (n // 4)
        colour = tuple(c / 255.0 for c in entry.rgb)
        fig.patches.append(
            Rectangle((x, row_y - 0.004), 0.012, 0.009, transform=fig.transFigure, color=colour)
        )
        suffix = " (outline)" if name == "pancreas" else ""
        fig.text(x + 0.017, row_y, entry.display + suffix, fontsize=7.5, va="center")


def _rows(
    fig: Figure, x: float, y: float, rows: Sequence[tuple[str, str]], *, step: float = 0.0165
) -> float:
    for key, value in rows:
        fig.text(x, y, key, fontsize=8.5, color=_GREY, va="top")
        fig.text(x + 0.19, y, value, fontsize=8.5, va="top", fontweight="bold")
        y -= step
    return y


def section(fig: Figure, x: float, y: float, title: str, width: float = 0.42) -> float:
    fig.text(x, y, title, fontsize=10.5, fontweight="bold", va="top")
    fig.add_artist(
        mpl.lines.Line2D([x, x + width], [y - 0.018, y - 0.018], color="#999999", linewidth=0.6)
    )
    return y - 0.026


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "not measured" if value is None else f"{value:.{digits}f} {unit}"


def category_block(fig: Figure, result: AnalysisResult, x: float, y: float) -> float:
    y = section(fig, x, y, "Resectability (NCCN)")
    category = result.category
    if category is None:  # outcome no-tumor (nothing to stage) or out-of-domain (withheld)
        sentence = {
            "out-of-domain": OUT_OF_DOMAIN_SENTENCE,
            "no-pdac": NO_PDAC_NOTE,
        }.get(result.outcome, NO_TUMOR_SENTENCE)
        fig.text(x, y, sentence, fontsize=9, fontweight="bold", va="top")
        return _domain_rows(fig, result, y - 0.03, x)
    rule = result.rule_category
    rows = [
        ("Network category", _CATEGORY_TEXT[CATEGORY_LABELS.index(category.label)]),
        *(
            (f"  P({text.lower()})", f"{p:.2f}")
            for text, p in zip(_CATEGORY_TEXT, category.probabilities, strict=True)
        ),
        (
            "  Uncertainty",
            _uncertainty_text(category),
        ),
        (
            "Rule category",
            _CATEGORY_TEXT[CATEGORY_LABELS.index(rule)] if rule is not None else "not available",
        ),
    ]
    y = _domain_rows(fig, result, _rows(fig, x, y, rows), x)
    if result.disagreement:
        fig.text(
            x,
            y - 0.004,
            "WARNING: network and contact-angle rule disagree.\n"
            "Review the vessel contacts on the images.",
            fontsize=8.5,
            color="white",
            va="top",
            fontweight="bold",
            bbox={"facecolor": _RED, "edgecolor": _RED, "boxstyle": "round,pad=0.4"},
        )
        y -= 0.045
    return y


def _uncertainty_text(category: Category) -> str:
    if not category.has_spread:
        return "none (single model)"
    flips = "" if category.passes is None else f" ({category.passes} flip passes)"
    return f"{category.uncertainty:.3f}{flips}"


def _domain_rows(fig: Figure, result: AnalysisResult, y: float, x: float) -> float:
    """The training-domain grade and its reasons (results of schema 1.3)."""
    domain = result.domain
    if domain is None:
        return y
    y = _rows(fig, x, y, [("Training domain", DOMAIN_TEXT[domain.grade])])
    for reason in domain.reasons[:3]:  # the worst first; the SR and result.json hold all
        text = _wrap(reason, 62)
        fig.text(x + 0.01, y, text, fontsize=7, color=_GREY, va="top")
        y -= 0.012 * (text.count("\n") + 1) + 0.002
    return y


def vessel_block(fig: Figure, result: AnalysisResult, x: float, y: float) -> float:
    y = section(fig, x, y, "Tumor and vessel contact")
    values = result.measurements
    y = _rows(
        fig,
        x,
        y,
        [
            ("Tumor volume", _fmt(values.tumor_volume_ml, "mL")),
            ("Largest 3D diameter", _fmt(values.tumor_max_diameter_mm, "mm")),
        ],
    )
    y -= 0.004
    columns = (0.0, 0.07, 0.16, 0.3)
    heads = ("Vessel", "Contact", "Threshold", "Implies")
    for dx, head in zip(columns, heads, strict=True):
        fig.text(x + dx, y, head, fontsize=7.5, color=_GREY, va="top")
    y -= 0.016
    for vessel in KEY_VESSELS:
        angle = values.contact_deg.get(vessel)
        threshold = ">0 BR, \u2265180 LA" if vessel in ARTERIAL_VESSELS else "\u2265180 BR"
        implied = "-" if angle is None else _SHORT[nccn_rule_category({vessel: angle})]
        contact = "n/a" if angle is None else f"{angle:.0f}\u00b0"
        cells = (vessel, contact, threshold, implied)
        weights = ("normal", "bold", "normal", "normal")
        for dx, cell, weight in zip(columns, cells, weights, strict=True):
            fig.text(x + dx, y, cell, fontsize=8, va="top", fontweight=weight)
        y -= 0.0155
    fig.text(
        x,
        y - 0.002,
        "Arterial (SMA, CA celiac trunk, CHA): any contact borderline (BR),\n"
        "\u2265180\u00b0 locally advanced (LA); venous (SMV, PV): \u2265180\u00b0 borderline.",
        fontsize=6.5,
        color=_GREY,
        va="top",
    )
    return y - 0.03


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width)) or "-"


def _task_lines(section: TaskSection) -> list[str]:
    """A further task's section as report lines (``result.tasks``; schema 1.1)."""
    findings = ", ".join(
        f"{f.name.meaning} {_fmt(f.value, f.unit.value, 2)}" for f in section.findings
    )
    head = f"{section.title} ({section.model_version}): {section.outcome}"
    return [f"{head}. {findings}" if findings else head, *section.notes]


def _inputs_block(fig: Figure, result: AnalysisResult, y: float) -> float:
    y = section(fig, 0.06, y, "Clinical inputs and localisation", width=0.88)
    clinical = result.clinical
    local = result.localisation
    lines = [
        f"Used ({len(clinical.used)}): {', '.join(clinical.used) or 'none'}",
        f"Missing ({len(clinical.missing)}): {', '.join(clinical.missing) or 'none'}",
        f"Imputed ({len(clinical.imputed)}): {', '.join(clinical.imputed) or 'none'}",
        f"Knock-out path (imaging only): {'yes' if clinical.knocked_out else 'no'}   "
        f"Registry: {clinical.registry_status}",
        f"Pancreas localisation: {'found' if local.found else 'NOT found'}, "
        f"confidence {local.confidence:.2f}",
    ]
    if result.source is not None:
        lines.append(f"Analysed: {result.source.describe()}")
    if result.detection is not None:
        lines.append(_detection_line(result.detection))
    if result.lymph_nodes is not None:  # result 1.6: the table is on page 2
        lines.append(page_one_line(result.lymph_nodes))
    if result.prognosis is not None:  # result 1.7: the page after the lymph-node page, if any
        page = 3 if result.lymph_nodes is not None else 2
        lines.append(survival_page_one_line(result.prognosis, page))
    for line in lines:
        wrapped = _wrap(line)
        fig.text(0.06, y, wrapped, fontsize=8, va="top")
        y -= 0.0145 * (wrapped.count("\n") + 1)
    for task_section in result.tasks.values():
        for line in _task_lines(task_section):
            wrapped = _wrap(line)
            fig.text(0.06, y, wrapped, fontsize=8, va="top")
            y -= 0.0145 * (wrapped.count("\n") + 1)
    if result.warnings:
        y -= 0.004
        for warning in result.warnings:
            wrapped = _wrap(f"Warning: {warning}")
            fig.text(0.06, y, wrapped, fontsize=8, va="top", color=_RED)
            y -= 0.0145 * (wrapped.count("\n") + 1)
    return y


def _footer(fig: Figure, result: AnalysisResult, software: str, generated: str) -> None:
    bundle = result.bundle
    fig.text(
        0.06,
        0.085,
        f"Model bundle {bundle.name} {bundle.version}   sha256 {bundle.sha256}\n"
        f"{software}   job {result.job_id or '-'}   generated {generated}   "
        f"result schema {result.schema_version}",
        fontsize=6.5,
        color=_GREY,
        va="top",
        family="monospace",
    )
    fig.text(
        0.5,
        0.045,
        f"{result.notice} Produced by an AI model that is not validated for clinical decisions;\n"
        "every finding must be checked against the images by a qualified reader.",
        fontsize=8.5,
        color=_RED,
        ha="center",
        va="center",
        fontweight="bold",
    )


def _page_head(fig: Figure, result: AnalysisResult, header: Dataset | None) -> None:
    """Title, the investigational banner and the patient, study and UID lines."""
    fig.text(0.06, 0.965, "PancreasAI Node: CT pancreas analysis", fontsize=15, va="center")
    fig.text(
        0.94,
        0.965,
        "INVESTIGATIONAL - NOT FOR CLINICAL USE",
        fontsize=8.5,
        color="white",
        ha="right",
        va="center",
        fontweight="bold",
        bbox={"facecolor": _RED, "edgecolor": _RED, "boxstyle": "square,pad=0.4"},
    )
    patient, study, uids = _header_lines(header, result)
    fig.text(0.06, 0.943, patient, fontsize=8.5, va="top")
    fig.text(0.06, 0.928, study, fontsize=8.5, va="top")
    fig.text(0.06, 0.912, uids, fontsize=5.5, color=_GREY, va="top", family="monospace")


def pdf_style() -> AbstractContextManager[None]:
    """Matplotlib settings of every PDF the node draws (the report and the board packet).

    DejaVu Sans embedded as subset Type 3 fonts with a ToUnicode map: ``pdftotext`` extracts
    the text, "≥" and "°" included. Type 42 made matplotlib subset the TrueType files with
    fontTools on every report: 0.4-0.7 s of a report's 1 s.
    """
    return mpl.rc_context({"pdf.fonttype": 3, "font.family": "DejaVu Sans"})


def draw_report(
    result: AnalysisResult,
    slices: Sequence[KeySlice],
    header: Dataset | None,
    *,
    software: str,
    generated: str,
) -> bytes:
    """Draw the A4 page (one more per lymph-node or prognosis section); return the PDF bytes."""
    with pdf_style():
        fig = Figure(figsize=A4_INCHES, dpi=200)
        _page_head(fig, result, header)
        width = 0.88 / max(len(slices), 1)
        for n, key in enumerate(slices):
            ax = fig.add_axes((0.06 + n * width + 0.005, 0.64, width - 0.01, 0.25))
            _draw_slice(ax, key)
        if not slices:
            fig.text(0.5, 0.77, "No image available", ha="center", fontsize=10, color=_GREY)
        legend(fig, 0.62)
        y_left = category_block(fig, result, 0.06, 0.575)
        y_right = vessel_block(fig, result, 0.52, 0.575)
        y = _inputs_block(fig, result, min(y_left, y_right) - 0.012)
        fig.text(0.06, y - 0.01, _wrap(_READING_NOTES, 125), fontsize=7, color=_GREY, va="top")
        _footer(fig, result, software, generated)
        pages = [fig]
        if result.lymph_nodes is not None:  # result 1.6: the lymph-node page
            nodes = Figure(figsize=A4_INCHES, dpi=200)
            _page_head(nodes, result, header)
            lymph_node_block(nodes, result.lymph_nodes, 0.88)
            _footer(nodes, result, software, generated)
            pages.append(nodes)
        if result.prognosis is not None:  # result 1.7: the survival page
            survival = Figure(figsize=A4_INCHES, dpi=200)
            _page_head(survival, result, header)
            survival_block(survival, result.prognosis, 0.88)
            _footer(survival, result, software, generated)
            pages.append(survival)
        buffer = io.BytesIO()
        metadata = {
            "Title": "PancreasAI CT pancreas analysis (investigational)",
            "Author": "PancreasAI Node",
            "Subject": f"Study {result.study_uid}",
            "Creator": software,
        }
        with PdfPages(buffer, metadata=metadata) as pdf:
            for page in pages:
                pdf.savefig(page)
    return buffer.getvalue()


def _detection_line(detection: Detection) -> str:
    """The PDAC detector's answer (result 1.5), its lesions and how staging relates."""
    parts = [f"PDAC detection ({detection.model_version}): {detection.describe()}"]
    parts += [
        f"lesion {n}: {x.diameter_mm:.0f} mm, p {x.probability:.2f} at LPS "
        f"({x.centre_lps_mm[0]:.0f}, {x.centre_lps_mm[1]:.0f}, {x.centre_lps_mm[2]:.0f}) mm"
        for n, x in enumerate(detection.lesions[:3], start=1)
    ]
    if detection.agreement not in (None, "agree"):
        parts.append(f"DETECTION AND STAGING DISAGREE: {detection.agreement}")
    return "; ".join(parts)
