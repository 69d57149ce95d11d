"""``pancreas-node cohort merge``: a phantom-like and an imported cohort through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pancreas_node.cli import app, main
from tests.training._mixed_cohort import imported_cohort, phantom_cohort
from tests.training.importers._cohort import read_csv

RUNNER = CliRunner()


def test_merge_links_by_default(tmp_path: Path) -> None:
    phantoms = phantom_cohort(tmp_path / "phantoms")
    imported = imported_cohort(tmp_path / "msd07")
    out = tmp_path / "merged"
    result = RUNNER.invoke(
        app, ["cohort", "merge", str(phantoms), str(imported), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "phantoms: 2 cases (no import.json)" in result.output
    assert "msd07: 2 cases (import msd)" in result.output
    assert f"wrote 4 cases from 2 sources to {out} (linked)" in result.output
    assert (out / "pancreas_001").is_symlink()
    assert read_csv(out / "truth.csv")["PHANTOM-0001"]["labelled"] == ""
    assert json.loads((out / "merge.json").read_text(encoding="utf-8"))["mode"] == "link"


def test_merge_copy(tmp_path: Path) -> None:
    out = tmp_path / "merged"
    result = RUNNER.invoke(
        app,
        ["cohort", "merge", str(phantom_cohort(tmp_path / "p")), "--out", str(out), "--copy"],
    )
    assert result.exit_code == 0, result.output
    assert "(copied)" in result.output
    assert (out / "PHANTOM-0002").is_dir() and not (out / "PHANTOM-0002").is_symlink()


def test_the_cohort_group_lists_merge(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cohort"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Usage: pancreas-node cohort")
    assert any(line.split()[:1] == ["merge"] for line in lines)


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("pancreas-node: error:") and captured.err.count("\n") == 1
    return captured.err


def test_duplicate_ids_are_one_line_naming_the_id_and_both_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = phantom_cohort(tmp_path / "site-a")
    second = phantom_cohort(tmp_path / "site-b", ("PHANTOM-0001",))
    out = tmp_path / "merged"
    err = _one_line_error(capsys, ["cohort", "merge", str(first), str(second), "--out", str(out)])
    assert "PHANTOM-0001" in err and "site-a" in err and "site-b" in err
    assert not out.exists()


def test_a_non_empty_out_and_a_non_cohort_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = phantom_cohort(tmp_path / "p")
    out = tmp_path / "merged"
    out.mkdir()
    (out / "x").write_text("x", encoding="utf-8")
    err = _one_line_error(capsys, ["cohort", "merge", str(source), "--out", str(out)])
    assert "not an empty folder" in err
    plain = tmp_path / "plain"
    plain.mkdir()
    err = _one_line_error(capsys, ["cohort", "merge", str(plain), "--out", str(tmp_path / "other")])
    assert "source plain is not a cohort: no truth.csv or clinical.csv" in err


def test_merge_needs_a_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cohort", "merge", "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.startswith("pancreas-node: error:")
