"""The tumor board packet: one PDF per board, the cases in order of discussion (issue 26).

A cover page lists the cases with the node's category and the radiologist's review verdict;
then each case gets a page (two when its AI results leave too little room for the decision
area): an axial key image through the tumor's largest cross-section and a coronal one, with
the AI segmentation overlaid (pancreas, tumor, key vessels; colours of
:data:`pancreas_contracts.labels.LABELS`), the AI results, the radiologist's review and a boxed
"Board decision" area with tick boxes for the :class:`~pancreas_contracts.boards.BoardCategory`
values and the :class:`~pancreas_contracts.boards.Treatment` choices, ticked when the board's
decision is recorded. Every page carries the investigational notice and the model version.

The packet is drawn with the PDF report's technology and helpers (matplotlib's PDF backend,
:mod:`inference._pdf_layout`). Cases are named by a label made of the StudyInstanceUID's last
12 characters and the study date: the packet never prints a patient's name or ID, and the value
objects here carry neither. Only the two key planes of each CT are decoded
(:mod:`inference._packet_images`), so a board of real-size studies builds in seconds.

This module opens no database: the caller (``pancreas-node board packet``) gathers each case's
``result.json``, CT files, SEG, review and decision into a :class:`BoardPacket`.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from inference._analysis_outputs import RESULT_NAME, SEG_NAME
from inference._packet_images import KeyPlane, PacketImageError, load_key_planes
from inference._packet_layout import draw_case_pages, draw_cover, finish_pages
from inference._pdf_layout import pdf_style
from inference._volume_errors import VolumeError
from pancreas_contracts.boards import BoardCategory, ReviewVerdict, Treatment
from pancreas_contracts.result import AnalysisResult

__all__ = [
    "AI_RESULT_FILE",
    "AI_SEG_FILE",
    "BoardPacket",
    "PacketCase",
    "PacketDecision",
    "PacketReview",
    "render_board_packet",
    "write_board_packet",
]

#: The file names of an analysis' ``result.json`` and AI SEG in ``<data>/results/<job id>/``.
AI_RESULT_FILE: Final = RESULT_NAME
AI_SEG_FILE: Final = SEG_NAME
#: Characters of the StudyInstanceUID kept in a case label.
LABEL_UID_CHARS: Final = 12


@dataclass(frozen=True)
class PacketReview:
    """The radiologist's newest review of a case.

    Parameters
    ----------
    verdict
        Agree, override or correct.
    category
        The radiologist's category (override; a correction that changes it), else ``None``.
    reason
        The reviewer's reason (free text, printed in the packet only).
    reviewer
        Who reviewed (the node's user name).
    reviewed_at
        When (timezone-aware).
    """

    verdict: ReviewVerdict
    category: BoardCategory | None
    reason: str | None
    reviewer: str
    reviewed_at: dt.datetime


@dataclass(frozen=True)
class PacketDecision:
    """The board's recorded decision on a case (ticks the packet's decision boxes)."""

    category: BoardCategory
    treatments: tuple[Treatment, ...]
    text: str | None
    decided_by: str
    decided_at: dt.datetime


@dataclass(frozen=True)
class PacketCase:
    """One case of the packet: what its pages show, and nothing that names the patient.

    Parameters
    ----------
    position
        Place in the order of discussion (1 first).
    study_instance_uid
        The study (only its last characters are printed, in :attr:`label`).
    study_date
        The study date (``None``: unknown).
    ct_files
        The analysed CT series' files (empty: no key images).
    seg_file
        The AI SEG of the analysis (``None``: no key images).
    result
        The analysis result (``result.json``; ``None``: not analysed yet).
    review, decision
        The newest review and the board's decision (``None``: none yet).
    """

    position: int
    study_instance_uid: str
    study_date: dt.date | None = None
    ct_files: tuple[Path, ...] = ()
    seg_file: Path | None = None
    result: AnalysisResult | None = None
    review: PacketReview | None = None
    decision: PacketDecision | None = None

    @property
    def label(self) -> str:
        """The case's printed name: ``...<last 12 UID characters> (<study date>)``."""
        when = "date unknown" if self.study_date is None else self.study_date.isoformat()
        return f"...{self.study_instance_uid[-LABEL_UID_CHARS:]} ({when})"


@dataclass(frozen=True)
class BoardPacket:
    """A board and its cases in order of discussion.

    Parameters
    ----------
    board_id
        The board's id in the node database (printed on every page).
    title, board_date, members
        The board as scheduled.
    cases
        Its cases, in order of discussion (:attr:`PacketCase.position`).
    generated_at
        Printed on every page (default: when the packet is drawn).
    """

    board_id: int
    title: str
    board_date: dt.date
    members: tuple[str, ...]
    cases: tuple[PacketCase, ...]
    generated_at: dt.datetime | None = None


def _key_planes(case: PacketCase) -> tuple[Sequence[KeyPlane], str | None]:
    """The case's key planes, or none and why (a broken case must not sink the packet)."""
    if case.result is None:
        return (), "No AI result: the study has not been analysed."
    if not case.ct_files or case.seg_file is None or not case.seg_file.is_file():
        return (), "Key images unavailable: the CT or the AI segmentation is not on the node."
    try:
        return load_key_planes(case.ct_files, case.seg_file), None
    except (VolumeError, PacketImageError, OSError) as exc:
        # The class name only: messages may name files, and files are named by UIDs.
        return (), f"Key images unavailable ({type(exc).__name__})."


def render_board_packet(packet: BoardPacket) -> bytes:
    """Draw the packet (see the module notes) and return the PDF file's bytes.

    A case whose key images cannot be read (files gone, SEG not on the CT's grid) still gets
    its pages, with the reason in place of the images.

    Parameters
    ----------
    packet
        The board and its cases.

    Returns
    -------
    bytes
        The PDF document.
    """
    generated = packet.generated_at or dt.datetime.now().astimezone()
    stamp = generated.strftime("%Y-%m-%d %H:%M %Z").strip()
    with pdf_style():
        pages: list[tuple[Figure, str]] = [(draw_cover(packet), _versions(packet.cases))]
        for case in packet.cases:
            planes, missing = _key_planes(case)
            version = _versions((case,))
            pages += [(p, version) for p in draw_case_pages(packet, case, planes, missing)]
        finish_pages(packet, pages, stamp)
        buffer = io.BytesIO()
        metadata = {
            "Title": f"Tumor board packet: board {packet.board_id} (investigational)",
            "Author": "PancreasAI Node",
            "Subject": f"Board {packet.board_id}, {packet.board_date.isoformat()}",
        }
        with PdfPages(buffer, metadata=metadata) as pdf:
            for page, _ in pages:
                pdf.savefig(page)
    return buffer.getvalue()


def _versions(cases: Sequence[PacketCase]) -> str:
    """The model bundles of ``cases``' results, as printed in the footer."""
    bundles = sorted(
        {f"{c.result.bundle.name} {c.result.bundle.version}" for c in cases if c.result}
    )
    return ", ".join(bundles) or "none (no AI result)"


def write_board_packet(packet: BoardPacket, path: Path | str) -> None:
    """Draw the packet and write it to ``path`` all or nothing (temporary file, then rename).

    Parameters
    ----------
    packet
        The board and its cases.
    path
        The PDF to write; its folder is created if needed.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pdf = render_board_packet(packet)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(pdf)
        # A reader (the Orthanc plugin serving the packet) sees the old file or the new one.
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
