"""The node database handle: one engine and one session factory, built once at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from pancreas_contracts.settings import Settings

__all__ = ["MIGRATIONS_DIR", "NodeDatabase", "redact_url"]

_log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def redact_url(url: str | URL) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


class NodeDatabase:
    """The node's own database: engine, session factory and migrations.

    Build one per process from a URL (or :meth:`from_settings`) and pass it down; every
    repository function takes it as its first argument.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:////var/lib/pancreas/node.db`` or
        ``postgresql+psycopg://node@db/pancreas``.
    busy_timeout_s
        SQLite only: how long a writer waits for another writer's lock.
    echo
        Log every SQL statement (debugging only: statements carry bound values).

    Raises
    ------
    ValueError
        If ``url`` is not a valid SQLAlchemy URL or names an unsupported driver.
    """

    def __init__(self, url: str | URL, *, busy_timeout_s: float = 30.0, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ValueError(f"invalid database URL: {redact_url(url)}") from exc
        self._url = parsed
        self._busy_timeout_s = busy_timeout_s
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            _prepare_sqlite_file(parsed)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_s}
        else:
            kwargs["pool_pre_ping"] = True
            if self.is_postgresql and "connect_timeout" not in parsed.query:
                # libpq waits forever for a silent server; start-up must fail instead.
                kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self._engine = create_engine(parsed, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise ValueError(f"cannot use database URL {redact_url(parsed)}: {exc}") from exc
        if self.is_sqlite:
            _configure_sqlite(self._engine, busy_timeout_s)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeDatabase:
        """The database named by ``settings`` (SQLite under the data directory by default)."""
        return cls(settings.resolved_database_url)

    @property
    def engine(self) -> Engine:
        """The one engine of this process."""
        return self._engine

    @property
    def url(self) -> str:
        """The URL without password (safe to print)."""
        return redact_url(self._url)

    @property
    def is_sqlite(self) -> bool:
        """Whether the backend is SQLite."""
        return self._url.get_backend_name() == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        """Whether the backend is PostgreSQL."""
        return self._url.get_backend_name() == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to ``revision``."""
        with self._engine.begin() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        _log.info("node database upgraded to %s", revision)

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` when never migrated)."""
        with self._engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str:
        """The newest revision shipped with this package."""
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - the package always ships revisions
            raise RuntimeError("no migrations shipped")
        return head

    def is_up_to_date(self) -> bool:
        """Whether the database is at :meth:`head_revision`."""
        return self.current_revision() == self.head_revision()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> NodeDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"NodeDatabase({self.url!r})"


def _alembic_config() -> Config:
    config = Config()
    # ConfigParser interpolation: a literal % in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _prepare_sqlite_file(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    """WAL, foreign keys, busy timeout and ``BEGIN IMMEDIATE`` on every connection.

    pysqlite opens transactions lazily, so a transaction that reads and then writes upgrades
    its lock late and, in WAL mode, fails with SQLITE_BUSY at once (the busy handler is not
    consulted for a stale snapshot). Taking the write lock at ``BEGIN`` makes every
    transaction serialisable and lets the busy timeout do the waiting; the node writes little,
    so serialised writers cost nothing measurable.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
