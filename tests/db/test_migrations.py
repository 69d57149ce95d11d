"""Alembic migrations on both backends: up from empty, up from the previous revision."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from db import NodeDatabase, get_job, list_audit_events
from db._models import Base


def test_up_from_empty_creates_the_whole_schema(empty_url: str) -> None:
    with NodeDatabase(empty_url) as database:
        assert database.current_revision() is None
        database.upgrade()
        assert database.current_revision() == NodeDatabase.head_revision() == "r0011"
        tables = set(inspect(database.engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        # The migrations and the models describe the same schema.
        with database.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []


def test_up_from_the_previous_revision_keeps_data(empty_url: str) -> None:
    with NodeDatabase(empty_url) as database:
        database.upgrade("r0001")
        assert database.current_revision() == "r0001"
        assert "audit_events" not in inspect(database.engine).get_table_names()
        now = datetime.now(UTC)
        with database.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, series_instance_uid, series_version, bundle_sha256,"
                    " state, attempts, created_at, updated_at)"
                    " VALUES ('job-1', '1.2.3', 1, :sha, 'queued', 0, :now, :now)"
                ),
                {"sha": "a" * 64, "now": now},
            )
        database.upgrade()
        assert database.is_up_to_date()
        job = get_job(database, "job-1")
        assert job is not None
        assert job.state == "queued"
        assert job.created_at == now
        assert list_audit_events(database) == []
        # Upgrading again is a no-op.
        database.upgrade()


def test_downgrade_and_upgrade_again(empty_url: str) -> None:
    with NodeDatabase(empty_url) as database:
        database.upgrade()
        from alembic import command

        from db._database import _alembic_config

        with database.engine.begin() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "r0001")
        assert database.current_revision() == "r0001"
        database.upgrade()
        assert database.is_up_to_date()


def test_r0008_adds_the_n_estimate_and_downgrades(empty_url: str) -> None:
    from alembic import command

    from db._database import _alembic_config

    with NodeDatabase(empty_url) as database:
        database.upgrade("r0007")
        columns = {c["name"] for c in inspect(database.engine).get_columns("results")}
        assert "pdac_likelihood" in columns and "n_estimate" not in columns
        database.upgrade()
        columns = {c["name"] for c in inspect(database.engine).get_columns("results")}
        assert {"n_estimate", "n_positive_probability"} <= columns
        with database.engine.begin() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "r0007")
        assert database.current_revision() == "r0007"
        columns = {c["name"] for c in inspect(database.engine).get_columns("results")}
        assert "n_estimate" not in columns and "n_positive_probability" not in columns
        assert "pdac_likelihood" in columns


def test_r0009_adds_the_prognosis_and_downgrades(empty_url: str) -> None:
    from alembic import command

    from db._database import _alembic_config

    added = {"risk_group", "death_probability_1y", "death_probability_3y"}
    with NodeDatabase(empty_url) as database:
        database.upgrade("r0008")
        columns = {c["name"] for c in inspect(database.engine).get_columns("results")}
        assert "n_estimate" in columns and not added & columns
        database.upgrade()
        columns = {c["name"] for c in inspect(database.engine).get_columns("results")}
        assert added <= columns
        with database.engine.begin() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "r0008")
        assert database.current_revision() == "r0008"
        columns = {c["name"] for c in inspect(database.engine).get_columns("results")}
        assert not added & columns and "n_positive_probability" in columns
