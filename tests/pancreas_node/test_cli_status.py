"""``pancreas-node status`` and ``serve`` argument handling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from db import NodeDatabase, enqueue_job, fail_job
from pancreas_node.cli import main


@pytest.fixture
def fresh_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no ``PANCREAS_AI_*`` settings: a new user's first try."""
    for name in os.environ:
        if name.startswith("PANCREAS_AI_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


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


def test_status_without_a_database_says_what_to_do_and_creates_nothing(
    fresh_clone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    expected = f"sqlite:///{(fresh_clone / 'data' / 'node.db').resolve()}"
    assert f"no node database at {expected}:" in captured.err
    assert "pancreas-node serve" in captured.err and "pancreas-node db upgrade" in captured.err
    assert list(fresh_clone.iterdir()) == []


def test_status_with_a_data_dir_names_it_and_creates_nothing(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = fresh_clone / "elsewhere"
    monkeypatch.setenv("PANCREAS_AI_DATA_DIR", str(data))
    assert main(["status"]) == 1
    assert f"no node database at sqlite:///{data.resolve() / 'node.db'}:" in capsys.readouterr().err
    assert not data.exists()


def test_status_on_an_empty_database_file_says_to_upgrade(
    fresh_clone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh_clone / "data").mkdir()
    (fresh_clone / "data" / "node.db").touch()
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is empty" in err and "pancreas-node db upgrade" in err


def test_status_on_an_unreachable_server_hides_the_password(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    url = "postgresql+psycopg://node:s3cret-pw@127.0.0.1:1/pancreas?connect_timeout=5"
    monkeypatch.setenv("PANCREAS_AI_DATABASE_URL", url)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "s3cret-pw" not in err
    assert "node:***@127.0.0.1:1/pancreas" in err
