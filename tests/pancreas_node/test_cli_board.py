"""``pancreas-node board ...`` end to end on a SQLite node database (issue 26 item 4).

One phantom study is "received" (its files recorded as spooled instances) and "analysed" (a
job completed with a ``result.json`` and the AI SEG in ``<data>/results/<job id>/``), then put
on a board, decided, listed, packed, exported and removed through :func:`pancreas_node.cli.main`
(so the one-line errors and exit codes are the real ones).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

import db
from db import NewResult, NodeDatabase
from inference.board_packet import AI_RESULT_FILE, AI_SEG_FILE
from inference.seg_writer import write_seg
from pancreas_contracts.boards import (
    AutoRule,
    BoardCategory,
    NotificationEvent,
    ReviewInput,
    ReviewVerdict,
)
from pancreas_contracts.result import CATEGORY_LABELS
from pancreas_node._cli_board import cli_actor
from pancreas_node.cli import main
from tests.conftest import REPO_ROOT
from tests.inference import _writers_fixtures as fx


@dataclass(frozen=True)
class Node:
    """A node data directory with one analysed study."""

    config: Path
    data: Path
    url: str
    study_uid: str
    case: fx.WriterCase


def _record(database: NodeDatabase, case: fx.WriterCase) -> str:
    for path in case.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        db.record_instance(
            database,
            study_instance_uid=str(ds.StudyInstanceUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            spool_path=str(path),
            modality="CT",
            patient_id=str(ds.PatientID),
            study_date=pydicom.valuerep.DA(ds.StudyDate),
        )
    return case.series.series_instance_uid


def _analyse(database: NodeDatabase, data: Path, case: fx.WriterCase) -> None:
    series = _record(database, case)
    job = db.enqueue_job(database, series, 1, fx.BUNDLE.sha256).job
    claimed = db.claim_next_job(database, "worker", 60)
    assert claimed is not None and claimed.id == job.id
    out = data / "results" / job.id
    out.mkdir(parents=True)
    result = case.result.model_copy(update={"job_id": job.id})
    (out / AI_RESULT_FILE).write_text(result.model_dump_json(), encoding="utf-8")
    write_seg(case.label, list(case.files), result, out / AI_SEG_FILE)
    category = result.category
    assert category is not None
    db.complete_job(
        database,
        job.id,
        "worker",
        NewResult(
            result_json_path=str(out / AI_RESULT_FILE),
            bundle_name=fx.BUNDLE.name,
            bundle_version=fx.BUNDLE.version,
            bundle_sha256=fx.BUNDLE.sha256,
            category=CATEGORY_LABELS.index(category.label),
            category_label=category.label,
            probabilities=category.probabilities,
            outcome="done",
        ),
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    root = tmp_path_factory.mktemp("node")
    data = root / "data"
    config = root / "node.toml"
    config.write_text(f'data_dir = "{data}"\n', encoding="utf-8")
    url = f"sqlite:///{data / 'node.db'}"
    case = fx.make_case(root / "phantom", "HFS")
    database = NodeDatabase(url)
    try:
        database.upgrade()
        _analyse(database, data, case)
    finally:
        database.dispose()
    return Node(config, data, url, case.series.study_instance_uid, case)


def _run(node: Node, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["board", *args, "--config", str(node.config)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_board_commands_end_to_end(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    uid = node.study_uid
    code, out, err = _run(
        node, capsys, "create", "--date", "2026-12-10", "--title", "HPB board",
        "--member", "Dr A (surgery)", "--member", "Dr B (oncology)",
    )  # fmt: skip
    assert code == 0, err
    board_id = out.split()[1].rstrip(":")
    assert out.strip() == f"board {board_id}: 2026-12-10 HPB board"
    code, out, err = _run(node, capsys, "add", board_id, uid)
    assert code == 0, err
    assert f"study {uid} added, position 1" in out
    code, out, _ = _run(node, capsys, "add", board_id, uid)
    assert code == 0 and "already on the board, position 1" in out
    code, out, err = _run(
        node, capsys, "decide", board_id, uid, "--category", "borderline",
        "--treatment", "neoadjuvant-then-surgery", "--treatment", "biopsy",
        "--text", "Re-stage after four cycles",
    )  # fmt: skip
    assert code == 0, err
    assert "decided Borderline resectable" in out
    code, out, _ = _run(node, capsys, "list", "--from", "2026-12-01", "--to", "2026-12-31")
    assert code == 0
    assert "2026-12-10  HPB board  cases 1, decided 1" in out
    code, out, _ = _run(node, capsys, "list", "--from", "2027-01-01")
    assert out.strip() == "no boards"

    reviewing = NodeDatabase(node.url)
    try:
        db.record_review(
            reviewing,
            uid,
            ReviewInput(
                verdict=ReviewVerdict.OVERRIDE,
                category=BoardCategory.LOCALLY_ADVANCED,
                reason="SMA",
            ),
            actor="dr.rad",
        )
    finally:
        reviewing.dispose()
    copy = node.data.parent / "copies" / "board.pdf"
    code, out, err = _run(node, capsys, "packet", board_id, "--out", str(copy))
    assert code == 0, err
    packet = node.data / "boards" / board_id / "packet.pdf"
    assert f"packet with 1 case(s) at {packet}" in out
    assert packet.read_bytes().startswith(b"%PDF") and copy.read_bytes() == packet.read_bytes()
    assert not list(packet.parent.glob(".*partial"))
    database = NodeDatabase(node.url)
    try:
        notifications = db.list_notifications(database, event=NotificationEvent.PACKET_READY)
        (queued,) = [n for n in notifications if n.object_id == board_id]
        assert queued.object_type == "board"
        assert dict(queued.detail) == {"board_id": int(board_id), "case_count": 1}
        actions = {
            e.action: e.actor
            for e in db.list_audit_events(database)
            if e.action.startswith("board.") and e.object_id == board_id
        }
    finally:
        database.dispose()
    assert actions["board.create"] == actions["board.decision"] == cli_actor()
    assert cli_actor().startswith("cli:")
    _packet_text_names_the_decision(packet, uid)

    code, out, _ = _run(node, capsys, "csv", board_id)
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.startswith("position,study_instance_uid,ai_category")
    assert row.startswith(f"1,{uid},") and ",borderline,neoadjuvant-then-surgery;biopsy," in row
    exported = node.data.parent / "decisions.csv"
    code, out, _ = _run(node, capsys, "csv", board_id, "--out", str(exported))
    assert code == 0 and exported.read_text(encoding="utf-8").startswith("position,")

    code, out, _ = _run(node, capsys, "remove", board_id, uid)
    assert code == 0 and "removed" in out
    code, _, err = _run(node, capsys, "remove", board_id, uid)
    assert code == 1
    assert err.strip() == f"pancreas-node: error: the study is not on board {board_id}"


def _packet_text_names_the_decision(packet: Path, uid: str) -> None:
    tool = shutil.which("pdftotext")
    if tool is None:
        return  # the packet's text itself is checked in tests/inference/test_board_packet.py
    text = subprocess.run(
        [tool, "-layout", str(packet), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert f"...{uid[-12:]} (" in text and uid not in text
    assert "\u2612 Borderline resectable" in text
    assert "\u2612 Biopsy / tissue diagnosis" in text
    assert "Notes: Re-stage after four cycles" in text
    assert "Overrides the AI category: Locally advanced, by dr.rad" in text
    assert "Model pancreas-ai-phantom 0.3.1" in text  # the AI results, from result.json
    assert "Key images unavailable" not in text


def test_a_study_not_analysed_still_gets_its_page(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(node, capsys, "create", "--date", "2030-05-05", "--title", "Early")
    assert code == 0, err
    board_id = out.split()[1].rstrip(":")
    assert _run(node, capsys, "add", board_id, "1.2.826.0.1.3680043.8.498.77")[0] == 0
    code, out, err = _run(node, capsys, "packet", board_id)
    assert code == 0, err
    assert "packet with 1 case(s)" in out
    assert (node.data / "boards" / board_id / "packet.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "99", "1.2.3"), "no board 99"),
        (("packet", "99"), "no board 99"),
        (("decide", "99", "1.2.3", "--category", "borderline"), "no board 99"),
        (("csv", "99"), "no board 99"),
        (("remove", "99", "1.2.3"), "no board 99"),
        (
            ("decide", "1", "1.2.3", "--category", "maybe"),
            "--category 'maybe' is not one of: resectable, borderline, locally-advanced, "
            "metastatic",
        ),
        (
            ("decide", "1", "1.2.3", "--category", "borderline", "--treatment", "magic"),
            "--treatment 'magic' is not one of:",
        ),
        (("create", "--date", "10.12.2026", "--title", "X"), "--date must be a date YYYY-MM-DD"),
        (("create", "--date", "2026-12-10", "--title", " "), "title: Value error"),
        (
            ("create", "--date", "2026-12-10", "--title", "X", "--auto-outcome", "maybe"),
            "outcomes: Value error, unknown outcome(s) ['maybe']",
        ),
        (("add", "1", "not-a-uid"), "study_instance_uid: String should match pattern"),
    ],
)
def test_errors_are_one_line(
    node: Node, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(node, capsys, *args)
    assert code == 1, out
    assert err.startswith(f"pancreas-node: error: {message}"), err
    assert err.count("\n") == 1


def test_a_database_without_migrations_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "{tmp_path / "fresh"}"\n', encoding="utf-8")
    (tmp_path / "fresh").mkdir()
    code = main(["board", "list", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert "run `pancreas-node db upgrade`" in err


# The script on the running demo, end to end: tests/pancreas_node/test_demo.py.


def test_the_board_demo_script_needs_the_demo(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "board_demo.sh")],
        env={**os.environ, "DEMO_DIR": str(tmp_path / "nowhere")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "run `make demo KEEP=1` first" in run.stderr


def test_create_with_an_auto_rule(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        node, capsys, "create", "--date", "2031-01-07", "--title", "Rule board",
        "--auto-outcome", "done", "--auto-outcome", "no-pdac", "--min-pdac", "0.5",
        "--auto-category", "borderline", "--referring-service", "HPB surgery",
    )  # fmt: skip
    assert code == 0, err
    board_id = int(out.split()[1].rstrip(":"))
    code, out, _ = _run(node, capsys, "list", "--from", "2031-01-07", "--to", "2031-01-07")
    assert out.strip().endswith("Rule board  cases 0, decided 0  (auto rule)")
    database = NodeDatabase(node.url)
    try:
        board = db.get_board(database, board_id)
    finally:
        database.dispose()
    assert board is not None
    assert board.auto_rule == AutoRule(
        outcomes=("done", "no-pdac"),
        min_pdac_likelihood=0.5,
        categories=(BoardCategory.BORDERLINE,),
        referring_services=("HPB surgery",),
    )
