"""NodeDatabase: engine set-up per backend, timestamps, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from db import NodeDatabase, add_audit_event, list_audit_events, redact_url
from pancreas_contracts.settings import load_settings


def test_sqlite_is_wal_with_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    database = NodeDatabase(f"sqlite:///{tmp_path / 'deep' / 'node.db'}", busy_timeout_s=7)
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
    assert (tmp_path / "deep").is_dir()
    database.dispose()


def test_default_url_is_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    with NodeDatabase.from_settings(settings) as database:
        assert database.is_sqlite
        database.upgrade()
        assert (tmp_path / "data" / "node.db").is_file()
        assert database.is_up_to_date()


def test_timestamps_come_back_aware_utc(node_db: NodeDatabase) -> None:
    add_audit_event(node_db, actor="a", action="x.y", object_type="job", object_id="1")
    (event,) = list_audit_events(node_db)
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - event.occurred_at) < timedelta(minutes=1)


def test_non_utc_input_is_stored_as_the_same_instant(node_db: NodeDatabase) -> None:
    from db._models import AuditEvent

    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2025, 1, 1, 12, 0, tzinfo=plus_two)
    with node_db.session() as session:
        session.add(
            AuditEvent(occurred_at=moment, actor="a", action="b", object_type="c", object_id="d")
        )
    (event,) = list_audit_events(node_db)
    assert event.occurred_at == moment
    assert event.occurred_at.hour == 10


def test_naive_datetimes_are_refused(node_db: NodeDatabase) -> None:
    from db._models import AuditEvent

    with pytest.raises(Exception, match="naive"), node_db.session() as session:
        session.add(
            AuditEvent(
                occurred_at=datetime(2025, 1, 1),
                actor="a",
                action="b",
                object_type="c",
                object_id="d",
            )
        )
        session.flush()


def test_bad_urls_are_value_errors() -> None:
    with pytest.raises(ValueError, match="invalid database URL"):
        NodeDatabase("not a url")
    with pytest.raises(ValueError, match="cannot use database URL"):
        NodeDatabase("nosuchdialect://x/y")


def test_redact_url_hides_the_password() -> None:
    assert "secret" not in redact_url("postgresql+psycopg://node:secret@db/pancreas")
    assert redact_url("::") == "<invalid database URL>"


def test_session_rolls_back_on_error(node_db: NodeDatabase) -> None:
    with pytest.raises(RuntimeError), node_db.session() as session:
        session.execute(
            text(
                "INSERT INTO audit_events (occurred_at, actor, action, object_type, object_id)"
                " VALUES (:t, 'a', 'b', 'c', 'd')"
            ),
            {"t": datetime.now(UTC)},
        )
        raise RuntimeError("boom")
    assert list_audit_events(node_db) == []
