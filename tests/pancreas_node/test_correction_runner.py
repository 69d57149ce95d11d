"""Pending corrections become a corrected SEG and an SR amendment at a real DCMTK storescp.

The node database is a real migrated SQLite file; the CT series is a feet-first phantom whose
files stand in the spool; the job's AI SEG and SR come from the real writers; the correction
is stored and reviewed as the Orthanc plugin does (a JSON file and :func:`db.record_review`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from db import (
    NewResult,
    NodeDatabase,
    claim_next_job,
    complete_job,
    enqueue_job,
    get_review,
    list_audit_events,
    record_instance,
    record_review,
)
from inference.seg_writer import write_seg
from inference.sr_writer import write_sr
from pancreas_contracts import Settings
from pancreas_contracts.boards import BoardCategory, ReviewInput, ReviewVerdict
from pancreas_node.correction_runner import CorrectionRunner, CorrectionState, correction_loop
from tests.conftest import free_port
from tests.dicom_node._dispatch_helpers import received_sops, settings_for, storescp, wait_for
from tests.inference import _correction_fixtures as cx
from tests.inference import _writers_fixtures as fx

REVIEWER = "dr.house"


@dataclass(frozen=True)
class Node:
    """A node database with one analysed feet-first study and its AI SEG and SR on disk."""

    settings: Settings
    db: NodeDatabase
    case: fx.WriterCase
    job_id: str
    ai_seg: pydicom.Dataset
    port: int


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    port = free_port()
    settings = settings_for(
        tmp_path, destinations=[{"ae_title": "STORESCP", "host": "127.0.0.1", "port": port}]
    )
    db = NodeDatabase(settings.resolved_database_url)
    db.upgrade()
    case = fx.make_case(tmp_path / "phantom", "FFS")
    series = case.series
    for path in case.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        record_instance(
            db,
            study_instance_uid=series.study_instance_uid,
            series_instance_uid=series.series_instance_uid,
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            spool_path=str(path),
            modality="CT",
        )
    job_id = enqueue_job(db, series.series_instance_uid, 1, "ab" * 32).job.id
    claimed = claim_next_job(db, "worker", 60)
    assert claimed is not None and claimed.id == job_id
    results = settings.results_dir / job_id
    write_seg(case.label, list(case.files), case.result, results / "seg.dcm")
    write_sr(case.result, results / "seg.dcm", list(case.files), results / "sr.dcm")
    complete_job(
        db,
        job_id,
        "worker",
        NewResult(
            result_json_path=str(results / "result.json"),
            bundle_name="pancreas-ai-phantom",
            bundle_version="0.3.1",
            bundle_sha256="ab" * 32,
            category=1,
            probabilities=(0.1, 0.8, 0.1),
            outcome="done",
        ),
    )
    try:
        yield Node(settings, db, case, job_id, pydicom.dcmread(results / "seg.dcm"), port)
    finally:
        db.dispose()


def _correct(node: Node, body: dict[str, object], name: str) -> int:
    """Store a correction and record its review, as the Orthanc plugin does."""
    folder = node.settings.data_dir / "corrections"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(body))
    review = record_review(
        node.db,
        node.case.series.study_instance_uid,
        ReviewInput(
            verdict=ReviewVerdict.CORRECT,
            category=BoardCategory.LOCALLY_ADVANCED,
            reason="tumor extends into the uncinate process",
        ),
        actor=f"orthanc:{REVIEWER}",  # how the plugin names its users
        correction_path=str(path),
    )
    return review.id


def _edited_body(node: Node) -> dict[str, object]:
    edited = cx.edit(node.ai_seg, sorted(node.case.series.sop_instance_uids))
    return cx.payload(node.ai_seg, node.case.series.series_instance_uid, edited)


def test_pending_correction_is_written_and_sent_and_a_broken_one_fails(
    node: Node, tmp_path: Path
) -> None:
    good = _correct(node, _edited_body(node), "good")
    broken_body = _edited_body(node)
    frames = broken_body["frames"]
    assert isinstance(frames, list)
    frames[0]["sop_instance_uid"] = "1.2.3.4.5"
    broken = _correct(node, broken_body, "broken")
    with storescp(node.port, tmp_path / "received") as received:
        outcomes = CorrectionRunner(node.settings, node.db).run_once()
        assert {o.review_id: o.state for o in outcomes} == {
            good: CorrectionState.WRITTEN,
            broken: CorrectionState.FAILED,
        }
        written = get_review(node.db, good)
        assert written is not None and written.correction_state == "written"
        assert written.corrected_seg_sop_uid and written.amendment_sr_sop_uid
        wait_for(
            lambda: (
                {written.corrected_seg_sop_uid, written.amendment_sr_sop_uid}
                <= set(received_sops(received))
            ),
            "the corrected SEG and the SR amendment at storescp",
        )
    folder = node.settings.results_dir / node.job_id / "corrections" / str(good)
    seg = pydicom.dcmread(folder / "seg.dcm", stop_before_pixels=True)
    sr = pydicom.dcmread(folder / "sr.dcm", stop_before_pixels=True)
    assert seg.SOPInstanceUID == written.corrected_seg_sop_uid
    assert str(seg.ContentCreatorName) == f"{REVIEWER}^"
    assert sr.SOPInstanceUID == written.amendment_sr_sop_uid
    predecessor = sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    ai_sr = pydicom.dcmread(node.settings.results_dir / node.job_id / "sr.dcm")
    assert predecessor.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ai_sr.SOPInstanceUID

    failed = get_review(node.db, broken)
    assert failed is not None and failed.correction_state == "failed"
    assert failed.correction_error is not None
    assert "not in the series" in failed.correction_error
    for uid in (node.case.series.study_instance_uid, node.case.series.series_instance_uid):
        assert uid not in failed.correction_error  # a reason in words, no identifiers
    actions = {e.action for e in list_audit_events(node.db, object_id=written.study_instance_uid)}
    assert {"review.correction.written", "review.correction.failed"} <= actions


def test_unreachable_destination_retries_until_the_loop_delivers(
    node: Node, tmp_path: Path
) -> None:
    review = _correct(node, _edited_body(node), "retry")
    runner = CorrectionRunner(node.settings, node.db)
    (first,) = runner.run_once()  # nothing listens on the port yet
    assert first.state is CorrectionState.RETRY and "STORESCP" in first.detail
    pending = get_review(node.db, review)
    assert pending is not None and pending.correction_state == "pending"
    with (
        storescp(node.port, tmp_path / "received") as received,
        correction_loop(node.settings, node.db, interval_s=0.2, runner=runner),
    ):

        def written() -> bool:
            info = get_review(node.db, review)
            return info is not None and info.correction_state == "written"

        wait_for(written, "the loop to write the correction", timeout_s=30.0)
    info = get_review(node.db, review)
    assert info is not None
    # The retry sent the objects built at the first pass, not new ones.
    assert {info.corrected_seg_sop_uid, info.amendment_sr_sop_uid} == set(received_sops(received))


def test_missing_ai_seg_and_missing_file_fail_with_reasons(node: Node) -> None:
    (node.settings.results_dir / node.job_id / "seg.dcm").unlink()
    no_seg = _correct(node, _edited_body(node), "no-seg")
    no_file = _correct(node, _edited_body(node), "no-file")
    (node.settings.data_dir / "corrections" / "no-file.json").unlink()
    outcomes = {o.review_id: o for o in CorrectionRunner(node.settings, node.db).run_once()}
    assert outcomes[no_seg].state is CorrectionState.FAILED
    assert "AI SEG is missing" in outcomes[no_seg].detail
    assert outcomes[no_file].state is CorrectionState.FAILED
    assert "cannot be read" in outcomes[no_file].detail


def test_serve_runs_the_correction_loop(node: Node, tmp_path: Path) -> None:
    review = _correct(node, _edited_body(node), "serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env["PANCREAS_AI_DATA_DIR"] = str(node.settings.data_dir)
    env["PANCREAS_AI_LOG_LEVEL"] = "WARNING"
    env["PANCREAS_AI_DESTINATIONS"] = json.dumps(
        [{"ae_title": "STORESCP", "host": "127.0.0.1", "port": node.port}]
    )
    # An empty working folder: tmp_path's "phantom" folder would shadow the phantom package.
    cwd = tmp_path / "serve"
    cwd.mkdir()
    with storescp(node.port, tmp_path / "received") as received:
        serve = subprocess.Popen(
            [sys.executable, "-m", "pancreas_node", "serve", "--port", str(free_port())],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def written() -> bool:
                info = get_review(node.db, review)
                return info is not None and info.correction_state == "written"

            deadline = time.monotonic() + 60.0
            while not written() and time.monotonic() < deadline and serve.poll() is None:
                time.sleep(0.1)
        finally:
            serve.send_signal(signal.SIGTERM)
            _, stderr = serve.communicate(timeout=30)
        assert written(), stderr[-3000:]
        assert serve.returncode == 0, stderr[-2000:]
        info = get_review(node.db, review)
        assert info is not None
        wanted = {info.corrected_seg_sop_uid, info.amendment_sr_sop_uid}
        wait_for(lambda: wanted <= set(received_sops(received)), "the corrected objects")
