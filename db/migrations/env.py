"""Alembic environment of the node database.

Run programmatically by :meth:`db.NodeDatabase.upgrade` (which passes its connection in
``config.attributes["connection"]``) or with ``alembic -x url=<URL>`` for development. It
never configures logging: the node owns its log handlers.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from db._models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database URL: alembic -x url=<URL> ...")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run against a database")
_main()
