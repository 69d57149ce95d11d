"""``pancreas-node`` itself: no arguments, ``--version``, usage errors."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from pancreas_node.cli import main

#: The console script installed beside this interpreter (``pip install -e .``).
CONSOLE_SCRIPT = Path(sys.executable).parent / "pancreas-node"


def test_no_arguments_prints_the_readable_help(capsys: pytest.CaptureFixture[str]) -> None:
    status = main([])
    captured = capsys.readouterr()
    # Click's convention for a missing command: exit 2, the help on its own lines.
    assert status == 2
    assert "error:" not in captured.out + captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("Usage: pancreas-node [OPTIONS] COMMAND")
    assert "Commands:" in lines
    assert any(line.split()[:1] == ["serve"] for line in lines)
    assert any(line.split()[:1] == ["--version"] for line in lines)


def test_a_group_without_a_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Usage: pancreas-node db")
    assert any(line.split()[:1] == ["upgrade"] for line in lines)


def test_version_option_prints_the_installed_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"pancreas-node {version('pancreas-ai-node')}\n"


def test_the_console_script_answers_version_and_help() -> None:
    if not CONSOLE_SCRIPT.is_file():
        pytest.skip(f"{CONSOLE_SCRIPT} is not installed (run `make install`)")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pancreas-node {version('pancreas-ai-node')}"
    bare = subprocess.run([str(CONSOLE_SCRIPT)], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert bare.stdout.count("\n") > 10 and "error:" not in bare.stderr


def test_an_unknown_option_stays_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pancreas-node: error:") and err.count("\n") == 1
