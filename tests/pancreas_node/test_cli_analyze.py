"""``pancreas-node analyze``: the offline analysis through the real CLI entry point.

A small phantom series and a tiny untrained bundle (training.structure_bundle): these
tests check the command's structure (exit status, files, result.json, errors), never accuracy.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
import torch

from pancreas_contracts.clinical import CLINICAL_VARIABLES
from pancreas_contracts.result import AnalysisResult
from pancreas_node._cli_analyze import spread_text
from pancreas_node.cli import main
from tests.dicom_node.conftest import PhantomSeries, make_series
from training.structure_bundle import build_test_bundle

torch.set_num_threads(1)

# The test bundle labels its whole 160 mm cube (tumor here): the scan must hold the whole cube.
_OPTIONS = {"fov_mm": (320.0, 320.0, 240.0), "pixel_spacing": 2.0, "slice_thickness": 4.0}
_FILES = ("seg.dcm", "sr.dcm", "report.dcm", "report.pdf", "result.json")


@dataclass(frozen=True)
class Run:
    """One ``analyze`` run: its exit status, output folder and captured streams."""

    status: int
    out: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> PhantomSeries:
    return make_series(tmp_path_factory.mktemp("phantom"), seed=3, **_OPTIONS)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Segments the cube as tumor: a result with a category (a pancreas-only bundle would give
    # outcome no-tumor, whose print has no category and no spread).
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "b", fill_label="tumor", members=1)


@pytest.fixture(scope="module")
def clinical_row(phantom: PhantomSeries, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom's clinical row with ``bmi`` left empty (so one variable is imputed)."""
    source = phantom.folder.parents[1] / "clinical.csv"
    with source.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    row = dict(rows[0])
    row["bmi"] = ""
    path = tmp_path_factory.mktemp("clinical") / "row.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    return path


def _analyze(
    capsys: pytest.CaptureFixture[str], series: Path, bundle: Path, out: Path, *extra: str
) -> Run:
    capsys.readouterr()  # drop anything captured before this run
    status = main(["analyze", str(series), "--bundle", str(bundle), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return Run(status, out, captured.out, captured.err)


def _result(run: Run) -> AnalysisResult:
    return AnalysisResult.model_validate_json((run.out / "result.json").read_text())


def _assert_one_line_error(run: Run) -> None:
    assert run.status == 1, run.stdout
    assert run.stderr.startswith("pancreas-node: error:"), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_analyze_writes_seg_sr_pdf_and_result(
    phantom: PhantomSeries, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _analyze(capsys, phantom.folder, bundle, tmp_path / "out")
    assert run.status == 0, run.stderr
    for name in _FILES:
        assert (run.out / name).is_file(), name
    result = _result(run)
    assert result.study_uid == phantom.StudyInstanceUID
    assert result.series_uid == phantom.SeriesInstanceUID
    assert result.clinical.knocked_out and result.clinical.used == ()
    assert result.clinical.registry_status == "not_configured"
    assert {"read", "localise", "inference", "write_seg", "total"} <= set(result.timings_s)
    seg = hd.seg.segread(run.out / "seg.dcm")
    assert seg.SOPInstanceUID == result.outputs.seg_sop_uid
    sr = pydicom.dcmread(run.out / "sr.dcm", stop_before_pixels=True)
    assert sr.SOPInstanceUID == result.outputs.sr_sop_uid
    pdf = pydicom.dcmread(run.out / "report.dcm")
    assert pdf.SOPInstanceUID == result.outputs.pdf_sop_uid
    assert bytes(pdf.EncapsulatedDocument).startswith(b"%PDF")
    assert (run.out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert "category:" in run.stdout and "clinical: knocked out" in run.stdout
    # The test bundle holds no training-domain statistics: said, never silently in domain.
    assert "domain: not-available; the bundle holds no training-domain" in run.stdout
    # A one-model bundle: no spread between models, not "spread 0.000".
    assert "no ensemble spread (single model)" in run.stdout and "spread 0.000" not in run.stdout
    assert result.notice in run.stdout


def test_analyze_with_a_clinical_row_lists_the_variables_used(
    phantom: PhantomSeries,
    bundle: Path,
    clinical_row: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = _analyze(
        capsys, phantom.folder, bundle, tmp_path / "out", "--clinical", str(clinical_row)
    )
    assert run.status == 0, run.stderr
    clinical = _result(run).clinical
    names = {v.name for v in CLINICAL_VARIABLES}
    assert not clinical.knocked_out and clinical.registry_status == "file"
    assert clinical.used and set(clinical.used) <= names
    assert "bmi" not in clinical.used and "bmi" in clinical.missing and "bmi" in clinical.imputed
    assert f"{len(clinical.used)} used" in run.stdout


def test_missing_series_is_a_one_line_error(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _analyze(capsys, tmp_path / "no-such-series", bundle, tmp_path / "out")
    _assert_one_line_error(run)
    assert "does not exist" in run.stderr
    assert not run.out.exists()


def test_corrupt_file_is_a_one_line_error(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = tmp_path / "series"
    series.mkdir()
    (series / "broken.dcm").write_bytes(b"DICM but not really a DICOM file")
    run = _analyze(capsys, series, bundle, tmp_path / "out")
    _assert_one_line_error(run)
    assert "unreadable-series" in run.stderr
    assert not run.out.exists()


def test_bad_bundle_path_is_a_one_line_error(
    phantom: PhantomSeries, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _analyze(capsys, phantom.folder, tmp_path / "no-bundle", tmp_path / "out")
    _assert_one_line_error(run)
    assert "no-bundle" in run.stderr
    assert not run.out.exists()


def test_spread_text_names_the_models() -> None:
    assert spread_text(0.0, 1) == "no ensemble spread (single model)"
    assert spread_text(0.0421, 5) == "ensemble spread 0.042 over 5 models"
    assert spread_text(0.0421, 1, 4) == "spread 0.042 over 1 model(s) x 4 flip passes"


def test_the_detection_gate_is_configured_by_the_settings(
    phantom: PhantomSeries,
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.inference.test_analysis_detection import tiny_detection_bundle

    detection = tiny_detection_bundle(tmp_path / "detection")
    # The staging bundle finds a tumor; a threshold of 1.0 makes the detector find no PDAC.
    monkeypatch.setenv("PANCREAS_AI_DETECTION_BUNDLE_PATH", str(detection))
    monkeypatch.setenv("PANCREAS_AI_DETECTION_THRESHOLD", "1.0")
    run = _analyze(capsys, phantom.folder, bundle, tmp_path / "out")
    assert run.status == 0, run.stderr
    result = _result(run)
    assert result.outcome == "no-pdac" and result.category is None
    assert result.detection is not None and result.detection.agreement == "staging-only"
    assert "detection: PDAC likelihood" in run.stdout
    assert "category: none (PDAC detection found no PDAC: NCCN staging not given)" in run.stdout
    assert "(staging segmentation disagree: staging-only)" in run.stdout


def test_the_lymph_node_model_is_configured_by_the_settings(
    phantom: PhantomSeries,
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.inference.test_analysis_lymph_nodes import tiny_lymph_node_bundle

    nodes = tiny_lymph_node_bundle(tmp_path / "lymph-nodes").parent
    monkeypatch.setenv("PANCREAS_AI_LYMPH_NODE_BUNDLE_PATH", str(nodes))
    run = _analyze(capsys, phantom.folder, bundle, tmp_path / "out")
    assert run.status == 0, run.stderr
    result = _result(run)
    assert result.lymph_nodes is not None and result.category is not None
    assert f"lymph nodes: {result.lymph_nodes.describe()}" in run.stdout
    assert result.lymph_nodes.n_estimate in run.stdout
    assert (run.out / "seg-lymph-nodes.dcm").is_file()


def test_the_lymph_node_bundle_path_round_trips_through_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pancreas_contracts import load_settings

    monkeypatch.delenv("PANCREAS_AI_LYMPH_NODE_BUNDLE_PATH", raising=False)
    assert load_settings().lymph_node_bundle_path is None  # default: no lymph-node model
    monkeypatch.setenv("PANCREAS_AI_LYMPH_NODE_BUNDLE_PATH", str(tmp_path / "env"))
    assert load_settings().lymph_node_bundle_path == tmp_path / "env"
    config = tmp_path / "node.toml"
    config.write_text(f'lymph_node_bundle_path = "{tmp_path / "toml"}"\n', encoding="utf-8")
    settings = load_settings(config)
    assert settings.lymph_node_bundle_path == tmp_path / "toml"  # the file wins over the env
    assert type(settings).model_validate(settings.model_dump()) == settings


def test_serve_loads_the_lymph_node_bundle_at_start_up(bundle: Path, tmp_path: Path) -> None:
    from inference.bundle import BundleError
    from pancreas_contracts import load_settings
    from pancreas_node.analysis_runner import build_runner

    settings = load_settings(
        bundle_path=bundle, lymph_node_bundle_path=tmp_path / "no-ln-bundle", device="cpu"
    )
    with pytest.raises(BundleError, match="no-ln-bundle"):  # refused at start-up, not per study
        build_runner(settings, None)  # type: ignore[arg-type]


def test_parallel_writing_from_the_command_line(
    phantom: PhantomSeries, bundle: Path, tmp_path: Path
) -> None:
    """The setting spawns the SEG writer from the real entry point (a process of its own)."""
    out = tmp_path / "out"
    env = {**os.environ, "PANCREAS_AI_PARALLEL_WRITING": "true"}
    argv = [sys.executable, "-m", "pancreas_node", "analyze", str(phantom.folder),
            "--bundle", str(bundle), "--out", str(out)]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    for name in _FILES:
        assert (out / name).is_file(), name
    result = AnalysisResult.model_validate_json((out / "result.json").read_text())
    assert {"write_seg", "write_wait", "write_sr"} <= set(result.timings_s)
    seg = hd.seg.segread(out / "seg.dcm")
    assert seg.SOPInstanceUID == result.outputs.seg_sop_uid
