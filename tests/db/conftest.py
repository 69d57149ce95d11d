"""Database fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL: one uniquely named database per test session (dropped at the end), one schema per
test inside it. Unreachable PostgreSQL fails in CI and skips elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from db import NodeDatabase
from tests.conftest import unavailable

# The server under test; CI and developers may point it elsewhere.
PG_SERVER = os.environ.get("PANCREAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = ("sqlite", "postgresql")


def pg_admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the maintenance database."""
    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)


def create_pg_database(prefix: str) -> str:
    """Create a fresh database and return its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with pg_admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_pg_database(name: str) -> None:
    """Drop a database, disconnecting whoever is still in it."""
    with pg_admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def pg_url(database: str, schema: str | None = None) -> str:
    """SQLAlchemy URL of ``database``, optionally confined to ``schema``."""
    url = make_url(f"{PG_SERVER}/{database}").set(drivername="postgresql+psycopg")
    if schema is not None:
        url = url.set(query={"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The session's own PostgreSQL database."""
    try:
        name = create_pg_database("pancreas_test")
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {PG_SERVER} is not usable: {type(exc).__name__}")
        raise AssertionError("unreachable") from exc
    yield name
    drop_pg_database(name)


def new_pg_schema(database: str) -> str:
    """A fresh schema in ``database``."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/{database}", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """URL of an empty database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'node.db'}"
    database = request.getfixturevalue("pg_database")
    return pg_url(database, new_pg_schema(database))


@pytest.fixture
def node_db(empty_url: str) -> Iterator[NodeDatabase]:
    """A migrated node database on ``backend``."""
    database = NodeDatabase(empty_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def registry_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """URL of an empty database on ``backend`` to seed a demo registry into."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'registry' / 'registry.db'}"
    database = request.getfixturevalue("pg_database")
    return pg_url(database, new_pg_schema(database))
