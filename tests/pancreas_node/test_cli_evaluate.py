"""``pancreas-node evaluate`` through the real CLI entry point (cube view only: fast).

Small phantoms and a tiny untrained bundle: exit status, files and errors, never accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pancreas_node.cli import main
from phantom import PhantomOptions, generate_cohort
from training.structure_bundle import build_test_bundle

torch.set_num_threads(1)

_OPTIONS = PhantomOptions(fov_mm=(160.0, 160.0, 100.0), pixel_spacing=2.5, slice_thickness=5.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, 3, 8, _OPTIONS)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "b", members=1)


def _evaluate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["evaluate", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_evaluate_writes_markdown_and_json(
    cohort: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    args = ("--bundle", str(bundle), "--data", str(cohort), "--out", str(out), "--no-pipeline")
    status, stdout, stderr = _evaluate(capsys, *args, "--device", "cpu")
    assert status == 0, stderr
    report = json.loads((out / "evaluation.json").read_text())
    assert report["cohort"]["patients"] == 3
    assert [r["kind"] for r in report["rows"]] == ["cube", "knockout"]
    assert all(r["n"] == 3 for r in report["rows"])
    assert "Investigational, not for clinical use" in (out / "evaluation.md").read_text()
    assert "evaluation.md" in stdout and "not for clinical use" in stdout
    assert not (out / "pipeline").exists()


def test_missing_truth_csv_is_a_one_line_error(
    cohort: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "unlabelled"
    data.mkdir()
    shutil.copy(cohort / "clinical.csv", data / "clinical.csv")
    out = tmp_path / "eval"
    status, stdout, stderr = _evaluate(
        capsys, "--bundle", str(bundle), "--data", str(data), "--out", str(out)
    )
    assert status == 1, stdout
    assert stderr.startswith("pancreas-node: error:") and stderr.count("\n") == 1, stderr
    assert "truth.csv" in stderr and "Traceback" not in stderr + stdout
    assert not out.exists()


def test_bad_bundle_is_a_one_line_error(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad-bundle"
    bad.mkdir()
    status, _, stderr = _evaluate(
        capsys, "--bundle", str(bad), "--data", str(cohort), "--out", str(tmp_path / "e")
    )
    assert status == 1
    assert stderr.startswith("pancreas-node: error:") and stderr.count("\n") == 1, stderr
    assert "bad-bundle" in stderr
