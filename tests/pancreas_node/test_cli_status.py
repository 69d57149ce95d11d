"""``pancreas-node status`` and ``serve`` argument handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import NodeDatabase, enqueue_job, fail_job
from pancreas_node.cli import main


def test_status_lists_queue_and_recent_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal, so rich does not wrap the cells
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    database = NodeDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    database.upgrade()
    enqueue_job(database, "1.2.3.4", 1, "bundle-a")
    failed = enqueue_job(database, "1.2.3.5", 1, "bundle-a").job
    fail_job(database, failed.id, "registry unreachable")
    database.dispose()
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Job queue" in out and "Recent jobs" in out
    assert "1.2.3.4" in out and "registry unreachable" in out


def test_serve_with_bad_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("port = 70000\n")
    assert main(["serve", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pancreas-node: error:") and err.count("\n") == 1
