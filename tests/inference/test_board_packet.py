"""The board packet (issue 26 item 4): pages, text, tick state, key images, no identifiers.

Two phantom studies with real SEGs (head first; and feet first with mirrored columns, written
shuffled) stand in for a board's analysed cases. The PDF's text is read with poppler's
``pdftotext`` and its images listed with ``pdfimages`` (skipped where poppler is absent, as in
``test_pdf_report.py``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest

from inference import to_canonical
from inference._dicom_read import ImageInstance, decode_frames
from inference._packet_images import load_key_planes
from inference._pdf_layout import OVERLAY_LABELS
from inference.board_packet import (
    BoardPacket,
    PacketCase,
    PacketDecision,
    PacketReview,
    write_board_packet,
)
from inference.seg_writer import write_seg
from pancreas_contracts.boards import BoardCategory, ReviewVerdict, Treatment
from pancreas_contracts.detection import Detection
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import LymphNodeAssessment
from pancreas_contracts.result import AnalysisResult
from tests.inference import _writers_fixtures as fx
from tests.inference._survival_fixtures import make_prognosis

MODEL = f"{fx.BUNDLE.name} {fx.BUNDLE.version}"
REASON = "SMA encasement over 180 degrees on the arterial phase"


@dataclass(frozen=True)
class Board:
    """The packet written from two phantom cases, and what it was made of."""

    packet: BoardPacket
    path: Path
    cases: tuple[fx.WriterCase, ...]


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"poppler-utils ({tool}) not installed")
    return found


def _pages(path: Path) -> list[str]:
    """The PDF's text, page by page."""
    run = subprocess.run(
        [_poppler("pdftotext"), "-layout", str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    return run.stdout.split("\f")[:-1]  # pdftotext ends every page with a form feed


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Board:
    root = tmp_path_factory.mktemp("board")
    made = tuple(fx.make_case(root / name, name) for name in fx.CASES)
    when = dt.datetime(2026, 12, 9, 16, 30, tzinfo=dt.UTC)
    cases = []
    for position, case in enumerate(made, start=1):
        seg = root / f"{case.name}-seg.dcm"
        write_seg(case.label, list(case.files), case.result, seg)
        first = position == 1
        review = PacketReview(
            verdict=ReviewVerdict.OVERRIDE if first else ReviewVerdict.AGREE,
            category=BoardCategory.LOCALLY_ADVANCED if first else None,
            reason=REASON if first else None,
            reviewer="dr.radiologist",
            reviewed_at=when,
        )
        decision = PacketDecision(
            category=BoardCategory.BORDERLINE,
            treatments=(Treatment.NEOADJUVANT_THEN_SURGERY, Treatment.BIOPSY),
            text="Re-stage after four cycles",
            decided_by="cli:board",
            decided_at=when,
        )
        cases.append(
            PacketCase(
                position=position,
                study_instance_uid=case.result.study_uid,
                study_date=dt.date(2026, 11, 20 + position),
                ct_files=case.files,
                seg_file=seg,
                result=case.result,
                review=review,
                decision=decision if first else None,
            )
        )
    packet = BoardPacket(
        board_id=4,
        title="HPB tumor board",
        board_date=dt.date(2026, 12, 10),
        members=("Dr A (surgery)", "Dr B (oncology)"),
        cases=tuple(cases),
        generated_at=when,
    )
    path = root / "out" / "packet.pdf"
    write_board_packet(packet, path)
    return Board(packet, path, made)


def test_cover_lists_the_cases_in_order(board: Board) -> None:
    pages = _pages(board.path)
    cover = pages[0]
    first, second = (case.label for case in board.packet.cases)
    assert first.startswith("...") and first.endswith("(2026-11-21)")
    assert cover.index(first) < cover.index(second)
    assert "HPB tumor board" in cover and "Dr A (surgery)" in cover
    assert "Overrides the AI category:" in cover and "Agrees with the AI category" in cover
    # The AI categories of the two phantoms as the report words them.
    for case in board.cases:
        category = case.result.category
        assert category is not None
        word = {"resectable": "Resectable", "borderline": "Borderline resectable"}.get(
            category.label, "Locally advanced"
        )
        assert word in cover


def test_every_case_gets_its_pages_in_order(board: Board) -> None:
    pages = _pages(board.path)
    heads = [next(line for line in p.splitlines() if line.strip()) for p in pages]
    assert "tumor board packet" in heads[0]
    order = []
    for page in pages[1:]:
        title = next(line for line in page.splitlines() if line.strip().startswith("Case "))
        order.append(int(title.split()[1].rstrip(":")))
    assert order == sorted(order) and set(order) == {1, 2}
    assert all(order.count(n) in (1, 2) for n in (1, 2))  # a page, or two
    for position, case in enumerate(board.packet.cases, start=1):
        own = "\n".join(p for p, n in zip(pages[1:], order, strict=True) if n == position)
        assert case.label in own
        assert own.count("Board decision") == 1
        assert "Network category" in own and "Tumor volume" in own
        assert "Clinical inputs used (3): age, sex, ca19_9" in own


def test_every_page_has_the_notice_model_and_page_number(board: Board) -> None:
    pages = _pages(board.path)
    info = subprocess.run(
        [_poppler("pdfinfo"), str(board.path)], check=True, capture_output=True, text=True
    ).stdout
    assert f"Pages:           {len(pages)}" in info
    for number, page in enumerate(pages, start=1):
        assert "Investigational, not for clinical use." in page
        assert "INVESTIGATIONAL - NOT FOR CLINICAL USE" in page
        assert f"Model: {MODEL}" in page
        assert f"page {number} of {len(pages)}" in page


def test_review_and_decision_ticks(board: Board) -> None:
    pages = _pages(board.path)
    text = "\n".join(pages)
    first = text[text.index("Case 1: ") : text.index("Case 2: ")]
    second = text[text.index("Case 2: ") :]
    assert "Overrides the AI category: Locally advanced, by dr.radiologist" in first
    assert REASON in first
    assert "\u2612 Borderline resectable" in first
    assert "\u2610 Resectable" in first and "\u2610 Locally advanced" in first
    assert "\u2612 Neoadjuvant therapy, then re-staging for surgery" in first
    assert "\u2612 Biopsy / tissue diagnosis" in first
    assert "\u2610 Upfront surgical resection" in first
    assert "Notes: Re-stage after four cycles" in first
    assert "recorded by cli:board" in first
    # Undecided: every box empty, room to write.
    assert "Agrees with the AI category, by dr.radiologist" in second
    assert "\u2612" not in second
    assert second.count("\u2610") == len(BoardCategory) + len(Treatment)
    assert "not recorded yet" in second and "Signature" in second


def test_no_patient_identifiers_in_the_packet(board: Board) -> None:
    text = "\n".join(_pages(board.path))
    for case in board.cases:
        header = pydicom.dcmread(case.files[0], stop_before_pixels=True)
        for value in (str(header.PatientName), str(header.PatientID)):
            assert value and value not in text
        assert case.result.study_uid not in text  # only its last 12 characters
        assert case.result.study_uid[-12:] in text


def test_key_images_are_in_the_pdf(board: Board) -> None:
    listing = subprocess.run(
        [_poppler("pdfimages"), "-list", str(board.path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pages = [int(line.split()[0]) for line in listing.splitlines()[2:]]
    # Per case the axial and the coronal plane (matplotlib composites the CT and its overlay
    # into one image per panel); the cover has none.
    assert 1 not in pages
    assert len(pages) == 2 * len(board.packet.cases)
    assert len(set(pages)) == len(board.packet.cases)


def _window(big: npt.NDArray[np.generic], small: npt.NDArray[np.generic]) -> tuple[int, int]:
    """Where ``small`` lies in ``big`` (exactly); fails if nowhere."""
    rows, columns = small.shape
    for r in range(big.shape[0] - rows + 1):
        for c in range(big.shape[1] - columns + 1):
            if np.array_equal(big[r : r + rows, c : c + columns], small):
                return r, c
    raise AssertionError("the plane is not a window of the volume's slice")


@pytest.mark.parametrize("name", fx.CASES)
def test_key_planes_match_the_full_volume(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Axial through the largest tumor section, coronal likewise; CT and labels as read whole.

    Only the planes' CT slices are decoded: one for the axial plane, each slice once for the
    coronal one.
    """
    case = fx.make_case(tmp_path / "phantom", name)
    seg = tmp_path / "seg.dcm"
    write_seg(case.label, list(case.files), case.result, seg)
    decoded: list[Path] = []

    def counting(instance: ImageInstance) -> npt.NDArray[np.generic]:
        decoded.append(instance.path)
        return decode_frames(instance)

    monkeypatch.setattr("inference._packet_images.decode_frames", counting)
    axial, coronal = load_key_planes(case.files, seg)
    assert len(decoded) == 1 + case.series.num_slices
    ct = case.series.volume.array
    # The planes carry the structures drawn: pancreas, tumor and the overlay's vessels.
    everything = to_canonical(case.label).array
    shown = [label_by_name(n).value for n in ("pancreas", "tumor", *OVERLAY_LABELS)]
    labels = np.where(np.isin(everything, shown), everything, 0)
    tumor = labels == label_by_name("tumor").value
    k = int(np.argmax(tumor.sum(axis=(0, 1))))
    j = int(np.argmax(tumor.sum(axis=(0, 2))))
    for plane, ct_slice, label_slice in (
        (axial, ct[:, :, k], labels[:, :, k]),
        (coronal, ct[:, j, :], labels[:, j, :]),
    ):
        display = np.ascontiguousarray(label_slice[::-1, ::-1].T)
        r, c = _window(display, plane.labels)
        whole = np.ascontiguousarray(ct_slice[::-1, ::-1].T)
        window = whole[r : r + plane.ct.shape[0], c : c + plane.ct.shape[1]]
        np.testing.assert_allclose(plane.ct, window, atol=1e-3)
        assert (plane.labels == label_by_name("tumor").value).any()
    assert axial.view == "axial" and "largest pancreatic neoplasm section" in axial.title
    assert coronal.aspect == pytest.approx(3.0 / 0.9, rel=1e-3)  # 3 mm slices, 0.9 mm pixels


def test_cases_without_images_still_get_their_pages(board: Board, tmp_path: Path) -> None:
    broken_seg = tmp_path / "not-a-seg.dcm"
    broken_seg.write_bytes(b"not DICOM at all")
    analysed = board.packet.cases[0]
    packet = replace(
        board.packet,
        cases=(
            replace(analysed, seg_file=broken_seg),
            PacketCase(position=2, study_instance_uid="1.2.826.0.1.3680043.8.498.1"),
        ),
    )
    path = tmp_path / "packet.pdf"
    path.write_bytes(b"an older packet")
    write_board_packet(packet, path)
    assert path.read_bytes().startswith(b"%PDF")
    assert {p.name for p in tmp_path.iterdir()} == {"not-a-seg.dcm", "packet.pdf"}  # no partial
    text = "\n".join(_pages(path))
    assert "Key images unavailable (PacketImageError)." in text
    assert "No AI result: the study has not been analysed." in text
    assert "...0043.8.498.1 (date unknown)" in text
    assert "not analysed" in text and "not reviewed" in text


def test_further_ai_results_are_shown_where_present(board: Board, tmp_path: Path) -> None:
    """PDAC likelihood, N estimate and survival risk group, each with its model version."""
    analysed = board.packet.cases[1]
    assert analysed.result is not None
    detection = Detection(
        model_version="pdac-det 0.4", pdac_likelihood=0.91, classification=0.9,
        detection_max=0.93, threshold=0.5, detected=True,
    )  # fmt: skip
    nodes = LymphNodeAssessment(
        model_version="ln 1.2", n_positive_probability=0.72, threshold=0.5, n_estimate="N+"
    )
    result = AnalysisResult.model_validate(
        {
            **analysed.result.model_dump(),
            "detection": detection.model_dump(),
            "lymph_nodes": nodes.model_dump(),
            "prognosis": make_prognosis().model_dump(),
        }
    )
    packet = replace(board.packet, cases=(replace(analysed, position=1, result=result),))
    path = tmp_path / "packet.pdf"
    write_board_packet(packet, path)
    pages = _pages(path)
    text = " ".join(" ".join(pages).split())  # wrapped lines joined
    assert "PDAC detection (pdac-det 0.4): PDAC likelihood 0.91 (threshold 0.50): detected" in text
    assert "Lymph nodes (ln 1.2):" in text and "N+" in text
    assert "Survival prognosis (survival-fusion 0.2.0):" in text and "high" in text
    assert len(pages) in (2, 3)  # the cover, the case's page or two
    assert " ".join(pages[1:]).count("Board decision") == 1
