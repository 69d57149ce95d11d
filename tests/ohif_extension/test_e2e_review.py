"""The radiologist's review and the tumor board in a real browser (issue 26, item 3).

A real Orthanc with the PancreasAI Python plugin serves the viewer (``make viewer``) and holds
the processed phantom study (CT, SEG, lesion SEG, node SEG, SR); the node's database (the one
the plugin reads) holds that study's analysis, as the worker stores it, and a second study
whose analysis failed. ``ohif-extension/e2e/review.mjs`` drives chromium: Agree, Override with
category and reason, then "Correct segmentation" with OHIF's brush (a mouse drag on the CT)
and "Save correction"; in the worklist: a new board, the study added to it, the board's
decision, the board filter, the failed study's reason.

Once the browser has shown the correction as pending, the node's own correction writer
(:class:`pancreas_node.correction_runner.CorrectionRunner`, run here instead of by ``serve``)
writes the corrected SEG and the SR amendment and C-STOREs them to this Orthanc; the panel must
turn to "written" with that SEG's UID. The test then checks the stored correction
(``<data>/corrections/*.json``, what the plugin accepted with 202) and the corrected SEG the
node wrote against the AI SEG itself (read with pydicom): each differs exactly on the painted
slice, around the dragged stroke, with the brush's segment, and nowhere else. Artifacts go to
``test-artifacts/ohif-e2e-review/``.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest

from db import (
    NewResult,
    NodeDatabase,
    claim_next_job,
    complete_job,
    enqueue_job,
    fail_job,
    list_reviews,
    pending_corrections,
    record_instance,
)
from inference.sr_amendment import AI_SEG_NAME, AI_SR_NAME
from pancreas_contracts import Settings
from pancreas_contracts.result import CATEGORY_LABELS
from pancreas_node.correction_runner import CorrectionRunner
from pancreas_node.orthanc_server import (
    PYTHON_PLUGIN,
    OrthancConfig,
    OrthancServer,
    PythonPluginConfig,
)
from tests.conftest import REPO_ROOT, free_port, unavailable
from tests.dicom_node.conftest import node_settings
from tests.ohif_extension.browser import VIEWER, require_browser, run_script
from tests.ohif_extension.processed_study import ProcessedStudy, make_processed_study

ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e-review"
#: The study whose analysis failed (known to the node only): the worklist shows its reason.
FAILED_STUDY = "1.2.826.0.1.3680043.10.543.26.3"
FAILED_REASON = "segmentation stage: CUDA out of memory"
#: What the browser writes when it has seen the correction pending (the writer may then run).
PENDING_MARK = "correction-pending-seen"

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Labels = npt.NDArray[np.uint16]


def _record_analysis(db: NodeDatabase, study: ProcessedStudy, settings: Settings) -> str:
    """Play the node: the study's CT received, its job run and its result stored; the job id.

    The AI SEG and SR go where the worker leaves them (``<results>/<job id>/``): the correction
    writer reads them there.
    """
    result = study.result
    for path in study.ct_files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        record_instance(
            db,
            study_instance_uid=result.study_uid,
            series_instance_uid=result.series_uid,
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            spool_path=str(path),
            modality="CT",
        )
    job = enqueue_job(db, result.series_uid, 1, result.bundle.sha256).job
    claimed = claim_next_job(db, "e2e-worker", 600)
    assert claimed is not None and claimed.id == job.id
    category = result.category
    assert category is not None
    complete_job(
        db,
        job.id,
        "e2e-worker",
        NewResult(
            result_json_path=str(study.result_path),
            bundle_name=result.bundle.name,
            bundle_version=result.bundle.version,
            bundle_sha256=result.bundle.sha256,
            category=CATEGORY_LABELS.index(category.label),
            category_label=category.label,
            probabilities=category.probabilities,
            measurements=result.measurements.model_dump(),
            outcome="done",
        ),
    )
    results = settings.results_dir / job.id
    results.mkdir(parents=True)
    shutil.copyfile(study.seg_path, results / AI_SEG_NAME)
    shutil.copyfile(study.sr_path, results / AI_SR_NAME)
    return job.id


def _record_failure(db: NodeDatabase) -> None:
    """A second study whose analysis failed for good."""
    series = f"{FAILED_STUDY}.1"
    record_instance(
        db,
        study_instance_uid=FAILED_STUDY,
        series_instance_uid=series,
        sop_instance_uid=f"{series}.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        spool_path="/spool/failed.dcm",
        modality="CT",
    )
    job = enqueue_job(db, series, 1, "bundle").job
    claimed = claim_next_job(db, "e2e-worker", 600)
    assert claimed is not None and claimed.id == job.id
    fail_job(db, job.id, FAILED_REASON, worker_id="e2e-worker")


@contextmanager
def _correction_writer(runner: CorrectionRunner, db: NodeDatabase, mark: Path) -> Iterator[None]:
    """The node's correction writer, started once the browser has seen the correction pending.

    ``pancreas-node serve`` runs it on a loop; here it waits for the browser's mark so that the
    panel's "pending" state is seen before the node answers.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.2):
            if mark.exists() and pending_corrections(db):
                runner.run_once()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _seg_labels(seg_path: Path, sops: list[str], rows: int, columns: int) -> dict[str, Labels]:
    """The AI SEG's label map per CT image (segment number per pixel; 0 background)."""
    seg = pydicom.dcmread(seg_path)
    frames = np.asarray(seg.pixel_array).reshape(-1, rows, columns)
    labels = {sop: np.zeros((rows, columns), dtype=np.uint16) for sop in sops}
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        labels[str(source.ReferencedSOPInstanceUID)][frame > 0] = segment
    return labels


def _decode(runs: list[list[int]], rows: int, columns: int) -> Labels:
    values = np.concatenate([np.full(length, segment, dtype=np.uint16) for segment, length in runs])
    assert values.size == rows * columns
    return values.reshape(rows, columns)


def _stroke_pixels(ct: pydicom.Dataset, points_lps: list[list[float]]) -> npt.NDArray[np.float64]:
    """(row, column) of LPS points on the CT image ``ct`` (its position, orientation, spacing)."""
    origin = np.asarray(ct.ImagePositionPatient, dtype=float)
    orientation = np.asarray(ct.ImageOrientationPatient, dtype=float)
    along_row, along_column = orientation[:3], orientation[3:]
    row_spacing, column_spacing = (float(v) for v in ct.PixelSpacing)
    offsets = np.asarray(points_lps, dtype=float) - origin
    return np.stack([offsets @ along_column / row_spacing, offsets @ along_row / column_spacing], 1)


def _check_painted(
    name: str,
    corrected: Mapping[str, Labels],
    ai: Mapping[str, Labels],
    headers: Mapping[str, pydicom.Dataset],
    painted: dict[str, Any],
) -> None:
    """``corrected`` equals ``ai`` except on the painted slice, around the stroke, as painted."""
    changed = {sop: np.argwhere(corrected[sop] != ai[sop]) for sop in headers}
    assert [sop for sop, where in changed.items() if where.size] == [painted["sop_instance_uid"]], (
        f"{name}: only the painted slice changed"
    )
    sop = painted["sop_instance_uid"]
    where = changed[sop]
    assert len(where) >= 20, f"{name}: only {len(where)} pixels changed"
    labels = corrected[sop]
    assert set(labels[where[:, 0], where[:, 1]].tolist()) == {painted["segment"]}, name
    stroke = _stroke_pixels(headers[sop], painted["points_lps"])
    # Every changed pixel lies within the brush's reach of the dragged stroke...
    distance = np.min(np.linalg.norm(where[:, None, :] - stroke[None, :, :], axis=2), axis=1)
    reach = painted["radius_px"] + 2.0
    assert float(distance.max()) <= reach, f"{name}: a change {distance.max():.1f} px away"
    # ...and the stroke itself now carries the painted segment.
    for r, c in np.rint(stroke).astype(int):
        assert labels[r, c] == painted["segment"], (name, r, c)


def _check_correction(
    study: ProcessedStudy, settings: Settings, job_id: str, review_id: int, painted: dict[str, Any]
) -> None:
    """The stored correction and the node's corrected SEG differ from the AI SEG as painted."""
    stored = list((settings.data_dir / "corrections").glob("*.json"))
    assert len(stored) == 1, stored
    correction = json.loads(stored[0].read_text())
    headers = {
        str(ds.SOPInstanceUID): ds
        for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in study.ct_files)
    }
    rows, columns = correction["rows"], correction["columns"]
    first = next(iter(headers.values()))
    assert (rows, columns) == (first.Rows, first.Columns)
    assert correction["based_on_seg_sop_instance_uid"] == study.result.outputs.seg_sop_uid
    assert correction["referenced_series_instance_uid"] == study.result.series_uid
    frames = {f["sop_instance_uid"]: f["rle"] for f in correction["frames"]}
    assert set(frames) == set(headers), "one frame per CT image"
    ai = _seg_labels(study.seg_path, list(headers), rows, columns)
    posted = {sop: _decode(runs, rows, columns) for sop, runs in frames.items()}
    _check_painted("posted label map", posted, ai, headers, painted)
    seg = settings.results_dir / job_id / "corrections" / str(review_id) / AI_SEG_NAME
    _check_painted(
        "corrected SEG", _seg_labels(seg, list(headers), rows, columns), ai, headers, painted
    )


def test_review_correction_and_board_in_the_browser(tmp_path: Path) -> None:
    node = require_browser()
    if not PYTHON_PLUGIN.exists():
        unavailable(f"{PYTHON_PLUGIN} is absent (install the Debian package orthanc-python)")
    study = make_processed_study(tmp_path / "study")
    dicom_port = free_port()
    # The node sends its corrected SEG and SR amendment to this Orthanc (C-STORE).
    destination = {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": dicom_port}
    settings = node_settings(tmp_path / "node", destinations=[destination])
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    job_id = _record_analysis(database, study, settings)
    _record_failure(database)
    node_toml = tmp_path / "node.toml"
    node_toml.write_text(f'data_dir = "{settings.data_dir}"\nport = {settings.port}\n')
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=dicom_port,
        node_port=settings.port,
        serve_folders={"/ohif": VIEWER},
        python_plugin=PythonPluginConfig(node_config=node_toml, submit=False, sync_interval_s=0.5),
    )
    runner = CorrectionRunner(settings, database)
    try:
        with OrthancServer(config) as server:
            status, _ = server.request("/pancreas-ai/vocabulary")
            assert status == 200, server.log_path.read_text(errors="replace")[-3000:]
            for path in study.files():
                status, _ = server.request(
                    "/instances", method="POST", data=path.read_bytes(),
                    content_type="application/dicom",
                )  # fmt: skip
                assert status == 200, path.name
            description = study.description() | {
                "base_url": server.url,
                "username": "admin",
                "password": config.admin_password,
                "viewer_username": "viewer",
                "viewer_password": config.viewer_password,
                "failed_study_uid": FAILED_STUDY,
                "failed_reason": FAILED_REASON,
                "pending_mark": PENDING_MARK,
            }
            with _correction_writer(runner, database, ARTIFACTS / PENDING_MARK):
                checks = run_script(node, "review.mjs", description, ARTIFACTS, timeout_s=300)
            reviews = list_reviews(database, study.result.study_uid)
            corrected_seg = reviews[-1].corrected_seg_sop_uid
            amendment = reviews[-1].amendment_sr_sop_uid
            for uid in (corrected_seg, amendment):
                status, found = server.request(
                    "/tools/lookup",
                    method="POST",
                    data=str(uid).encode(),
                    content_type="text/plain",
                )
                assert status == 200 and b"Instance" in found, f"{uid} not in Orthanc"
        names = {c["name"] for c in checks}
        assert all(c["ok"] for c in checks) and len(checks) >= 20
        assert {
            "agree: the API has the review",
            "override: the API has a disagreeing review",
            "correction: the plugin answered 202",
            "correction: the panel turns to written with the new SEG",
            "worklist: the decision is shown on the board",
            "worklist: the failed study shows its reason",
            "a user without write rights is told why (403)",
            # The viewer opened again after the node stored its SR amendment: the panel still
            # reads the AI's result (the amendment is not the result).
            "the panel tells a user without write rights why (403)",
        } <= names
        assert [r.verdict.value for r in reviews] == ["agree", "override", "correct"]
        assert reviews[1].disagrees and reviews[1].reviewer.endswith("admin")
        assert reviews[2].correction_state == "written" and corrected_seg is not None
        painted = json.loads((ARTIFACTS / "painted.json").read_text())
        _check_correction(study, settings, job_id, reviews[2].id, painted)
        for shot in ("viewer-review.png", "worklist-board.png"):
            assert (ARTIFACTS / shot).stat().st_size > 10_000
    finally:
        database.dispose()
