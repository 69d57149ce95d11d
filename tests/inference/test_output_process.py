"""The SEGs written in a spawned helper process (``parallel_writing``, issue 27).

The analysis with the helper writes what the analysis without it writes (the same SEG frames
and segments, the lesion and lymph-node SEGs too, an SR that cites the SEGs the helper wrote),
all dciodvfy clean; the lesion and label-map SEGs start while the task still runs, and an
analysis that fails after they started leaves no SEG; the helper sends back the SEG's header
without its frames; a refusal in the helper reaches the caller as the same ``ValueError``; a
helper killed before its job loses nothing (the job is written in the calling process, a
warning names the job, and a new helper takes the next job).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from inference._analysis_outputs import DetectionSegTarget, write_detection_seg
from inference._analysis_writing import SegWriting
from inference._output_process import SegJob, WriterProcess
from inference.analysis import AnalysisOutput, Analyzer, LymphNodeAssessor, PdacDetector
from inference.bundle import LoadedBundle
from inference.tasks import (
    TASKS,
    AnalysisError,
    AnalysisTask,
    TaskContext,
    TaskOutput,
    TaskRegistration,
)
from inference.volume import Volume, read_nifti
from inference.volume_io import read_dicom_series
from pancreas_contracts.result import AnalysisResult
from tests.dicom_node.test_scp import wait_for
from tests.inference._staging_fixtures import small_phantom_series, tumor_staging_bundle
from tests.inference._writers_fixtures import dciodvfy_errors
from tests.inference.test_analysis_detection import tiny_detection_bundle
from tests.inference.test_analysis_lymph_nodes import tiny_lymph_node_bundle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_phantom_series(tmp_path_factory.mktemp("phantom"))


@pytest.fixture(scope="module")
def staging_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tumor_staging_bundle(tmp_path_factory.mktemp("staging"))


@pytest.fixture(scope="module")
def serial(
    staging_bundle: Path, series: Path, tmp_path_factory: pytest.TempPathFactory
) -> AnalysisOutput:
    """One analysis written in this process, lesion and lymph-node SEGs included."""
    folder = tmp_path_factory.mktemp("ln")
    stage = LymphNodeAssessor(tiny_lymph_node_bundle(folder / "ln"), torch.device("cpu"))
    analyzer = Analyzer(staging_bundle, "cpu", lymph_nodes=stage, detector=_detector(folder))
    return analyzer.analyze(series, None, out_dir=folder / "serial", job_id="job-serial")


def _detector(folder: Path) -> PdacDetector:
    """The tiny untrained detector, reporting every candidate (a lesion SEG to write)."""
    return PdacDetector(tiny_detection_bundle(folder / "detection"), torch.device("cpu"), 0.5)


@pytest.fixture(scope="module")
def job(serial: AnalysisOutput, series: Path) -> SegJob:
    """The SEG part of ``serial`` as a helper gets it (no lymph nodes)."""
    dicom = read_dicom_series(series)
    label = read_nifti(serial.result_json.parent / "label.nii.gz")
    result = AnalysisResult.model_validate_json(serial.result_json.read_text())
    return SegJob(
        result.bundle,
        str(result.outputs.seg_sop_uid),
        dicom.to_native(label),
        dicom.headers,
        serial.result_json.parent,
    )


def _seg_content(path: Path) -> tuple[list[str], np.typing.NDArray[np.generic]]:
    seg = pydicom.dcmread(path)
    return [str(s.SegmentLabel) for s in seg.SegmentSequence], seg.pixel_array


def _sr_references(path: Path) -> set[str]:
    uids: set[str] = set()

    def walk(sequence: pydicom.Sequence) -> None:
        for item in sequence:
            if item.ValueType == "IMAGE":
                uids.add(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
            walk(item.get("ContentSequence", []))

    walk(pydicom.dcmread(path).ContentSequence)
    return uids


def test_the_helper_writes_what_the_analysing_process_writes(
    serial: AnalysisOutput, staging_bundle: Path, series: Path, tmp_path: Path
) -> None:
    stage = LymphNodeAssessor(tiny_lymph_node_bundle(tmp_path / "ln"), torch.device("cpu"))
    analyzer = Analyzer(
        staging_bundle,
        "cpu",
        lymph_nodes=stage,
        detector=_detector(tmp_path),
        parallel_writing=True,
    )
    try:
        output = analyzer.analyze(series, None, out_dir=tmp_path / "out", job_id="job-helper")
    finally:
        analyzer.close()
    names = [p.name for p in output.files]
    assert names == [p.name for p in serial.files]
    assert names == [
        "seg.dcm",
        "sr.dcm",
        "report.dcm",
        "seg-detection.dcm",
        "seg-lymph-nodes.dcm",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in serial.result_json.parent.iterdir()
    )
    for name in ("seg.dcm", "seg-detection.dcm", "seg-lymph-nodes.dcm"):
        labels, pixels = _seg_content(tmp_path / "out" / name)
        expected_labels, expected_pixels = _seg_content(serial.result_json.parent / name)
        assert labels == expected_labels and np.array_equal(pixels, expected_pixels), name
    result = output.result
    segs = {str(result.outputs.seg_sop_uid), str(result.outputs.lymph_node_seg_sop_uid)}
    lesion_seg = pydicom.dcmread(tmp_path / "out" / "seg-detection.dcm")
    assert lesion_seg.SOPInstanceUID == result.outputs.detection_seg_sop_uid
    assert segs <= _sr_references(tmp_path / "out" / "sr.dcm")
    assert {
        "write_seg",
        "write_sr",
        "write_lymph_node_seg",
        "write_detection_seg",
        "write_wait",
    } <= set(result.timings_s)
    assert "write_wait" not in serial.result.timings_s
    for path in output.files:
        assert dciodvfy_errors(path) == [], path.name


class _StopsOnceTheSegIsWritten:
    """The staging task, stopping with an AnalysisError once its SEG has appeared."""

    def __init__(self, inner: AnalysisTask, segs: tuple[Path, ...]) -> None:
        self._inner = inner
        self._segs = segs
        self.seen_while_running = False

    @property
    def name(self) -> str:
        return self._inner.name

    def run(self, context: TaskContext) -> TaskOutput:
        self._inner.run(context)  # its SEG starts in the helper before it measures
        deadline = time.monotonic() + 120
        while not all(p.is_file() for p in self._segs) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.seen_while_running = all(p.is_file() for p in self._segs)
        raise AnalysisError("pancreas-cut", "stopped by the test after the SEG was written")


def test_the_seg_starts_during_the_task_and_a_failed_analysis_leaves_none(
    staging_bundle: Path, series: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    tasks: list[_StopsOnceTheSegIsWritten] = []

    def build(bundle: LoadedBundle, device: torch.device) -> AnalysisTask:
        segs = (out / "seg.dcm",)
        tasks.append(_StopsOnceTheSegIsWritten(TASKS[0].build(bundle, device), segs))
        return tasks[0]

    registration = TaskRegistration(TASKS[0].name, build)
    analyzer = Analyzer(
        staging_bundle,
        "cpu",
        tasks=(registration,),
        detector=_detector(tmp_path),
        parallel_writing=True,
    )
    try:
        with pytest.raises(AnalysisError, match="stopped by the test"):
            analyzer.analyze(series, None, out_dir=out, job_id="job-stopped")
    finally:
        analyzer.close()
    assert tasks[0].seen_while_running  # written by the helper before the task returned
    assert not (out / "seg.dcm").exists() and not (out / "seg-detection.dcm").exists()
    assert not list(out.glob(".*.partial"))


def test_the_lesion_seg_can_start_before_the_staging(series: Path, tmp_path: Path) -> None:
    """On a GPU the lesion SEG goes to the helper once the detector answers (here on CPU)."""
    dicom = read_dicom_series(series)
    detected = _detector(tmp_path)(dicom.volume)
    assert detected.lesions is not None
    writer = WriterProcess()
    try:
        writing = SegWriting(writer, dicom, dicom.headers, detected.bundle, tmp_path / "early")
        writing.start_lesions(detected)
        early = tmp_path / "early" / "seg-detection.dcm"
        wait_for(early.is_file, timeout_s=120)
        here = write_detection_seg(
            dicom.to_native(detected.lesions),
            [x.probability for x in detected.detection.lesions],
            dicom.headers,
            detected.bundle,
            DetectionSegTarget(tmp_path / "here", writing.detection_seg_sop_uid),
            {},
        )
        labels, pixels = _seg_content(early)
        expected_labels, expected_pixels = _seg_content(here)
        assert labels == expected_labels and np.array_equal(pixels, expected_pixels)
        assert pydicom.dcmread(early).SOPInstanceUID == writing.detection_seg_sop_uid
        assert dciodvfy_errors(early) == []
        writing.abandon()  # the analysis failed: what the helper wrote goes
        assert not early.exists()
    finally:
        writer.close()


def test_a_refusal_in_the_helper_reaches_the_caller(job: SegJob, tmp_path: Path) -> None:
    empty = Volume(np.zeros_like(job.seg_label.array), job.seg_label.affine)
    writer = WriterProcess()
    try:
        pending = writer.submit(replace(job, seg_label=empty, out_dir=tmp_path))
        with pytest.raises(ValueError, match="no foreground"):
            pending.result({}, "job-empty")
    finally:
        writer.close()
    assert not (tmp_path / "seg.dcm").exists()


def test_the_helper_sends_back_the_seg_without_its_frames(job: SegJob, tmp_path: Path) -> None:
    writer = WriterProcess()
    try:
        written = writer.submit(replace(job, out_dir=tmp_path)).result({}, "job-header")
    finally:
        writer.close()
    seg = pydicom.dcmread(written.seg)
    header = written.header
    assert "PerFrameFunctionalGroupsSequence" not in header and "PixelData" not in header
    assert header.SOPInstanceUID == seg.SOPInstanceUID == job.seg_sop_uid
    assert header.SegmentSequence == seg.SegmentSequence
    assert header.ReferencedSeriesSequence == seg.ReferencedSeriesSequence
    assert header.file_meta.TransferSyntaxUID == seg.file_meta.TransferSyntaxUID


def test_settle_returns_once_the_helper_is_done(job: SegJob, tmp_path: Path) -> None:
    writer = WriterProcess()
    try:
        writer.submit(replace(job, out_dir=tmp_path)).settle()
        assert (tmp_path / "seg.dcm").is_file()
    finally:
        writer.close()


def test_a_killed_helper_loses_nothing(
    job: SegJob, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = WriterProcess()
    try:
        first = writer.pid()
        assert first != os.getpid()
        os.kill(first, signal.SIGKILL)
        timings: dict[str, float] = {}
        with caplog.at_level(logging.WARNING, logger="inference._output_process"):
            written = writer.submit(replace(job, out_dir=tmp_path / "a")).result(
                timings, "job-killed"
            )
        assert written.seg == tmp_path / "a" / "seg.dcm" and written.lymph_node_seg is None
        assert dciodvfy_errors(written.seg) == []
        assert "write_seg" in timings and "write_wait" in timings
        assert "SEG writer process" in caplog.text
        # A new helper takes the next job.
        second = writer.pid()
        assert second not in (first, os.getpid())
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="inference._output_process"):
            again = writer.submit(replace(job, out_dir=tmp_path / "b")).result({}, "job-next")
        assert again.seg.is_file() and caplog.text == ""
        assert writer.pid() == second
    finally:
        writer.close()
