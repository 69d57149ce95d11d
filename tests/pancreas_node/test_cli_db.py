"""``pancreas-node db ...`` and ``pancreas-node registry ...``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import NodeDatabase
from pancreas_node._cli_db import db_app, registry_app
from tests.db.registry_helpers import write_clinical_csv

RUNNER = CliRunner()


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'node.db'}"
    before = RUNNER.invoke(db_app, ["current", "--url", url])
    assert before.exit_code == 0, before.output
    head = NodeDatabase.head_revision()
    # Which revision is newest is pinned in tests/db/test_migrations.py; here
    # only that the CLI reports whatever the head is.
    assert re.fullmatch(r"r\d{4}", head), head
    assert f"none (head is {head}" in before.output
    upgraded = RUNNER.invoke(db_app, ["upgrade", "--url", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"at revision {head} (head)" in upgraded.output
    after = RUNNER.invoke(db_app, ["current", "--url", url])
    assert after.output.strip() == f"{head} (head)"


def test_db_upgrade_uses_the_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "node.toml"
    settings.write_text(f'data_dir = "{tmp_path / "node-data"}"\n', encoding="utf-8")
    result = RUNNER.invoke(db_app, ["upgrade", "--config", str(settings)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "node-data" / "node.db").is_file()


def test_db_errors_are_one_line_value_errors(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:pw@127.0.0.1:1/none?connect_timeout=1"
    result = RUNNER.invoke(db_app, ["upgrade", "--url", url])
    assert isinstance(result.exception, ValueError)
    assert "cannot migrate" in str(result.exception)
    assert "pw" not in str(result.exception)


def test_registry_seed_and_lookup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    clinical = write_clinical_csv(tmp_path / "clinical.csv")
    seeded = RUNNER.invoke(
        registry_app, ["seed", "--clinical", str(clinical), "--url", url, "--ct-date", "2025-03-14"]
    )
    assert seeded.exit_code == 0, seeded.output
    assert "6 patients" in seeded.output
    config = tmp_path / "registry.toml"
    example = Path(__file__).resolve().parents[2] / "deploy" / "registry" / "example-registry.toml"
    config.write_text(
        example.read_text(encoding="utf-8")
        .replace('url = "sqlite:///data/registry.db"', f'url = "{url}"')
        .replace('url_env = "PANCREAS_REGISTRY_URL"\n', ""),
        encoding="utf-8",
    )
    looked_up = RUNNER.invoke(
        registry_app,
        [
            "lookup",
            "--config",
            str(config),
            "--patient-id",
            "PHANTOM-0001",
            "--ct-date",
            "2025-03-14",
        ],
    )
    assert looked_up.exit_code == 0, looked_up.output
    assert "status: ok" in looked_up.output
    assert "1234.5" in looked_up.output  # CA 19-9, printed to the terminal
    # ... and never to the logs.
    assert "PHANTOM-0001" not in caplog.text
    assert "1234.5" not in caplog.text
    bad_date = RUNNER.invoke(
        registry_app, ["lookup", "--config", str(config), "--patient-id", "X", "--ct-date", "14.3."]
    )
    assert isinstance(bad_date.exception, ValueError)
