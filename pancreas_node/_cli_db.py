"""``pancreas-node db upgrade|current`` and ``pancreas-node registry seed|lookup``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from db import NodeDatabase, RegistryBridge, load_registry_config, redact_url
from db.registry import DEMO_CT_DATE, seed_demo_registry
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from pancreas_contracts.settings import load_settings

__all__ = ["db_app", "registry_app"]

db_app = typer.Typer(
    help="The node database (migrations).", no_args_is_help=True, rich_markup_mode=None
)
registry_app = typer.Typer(
    help="The clinical registry bridge.", no_args_is_help=True, rich_markup_mode=None
)

_CONFIG = typer.Option(help="Settings TOML file (as for the other commands).")
_URL = typer.Option(help="Database URL (default: the settings' database_url or data dir).")


def _database(config: Path | None, url: str | None) -> NodeDatabase:
    settings = load_settings(config, database_url=url)
    return NodeDatabase(settings.resolved_database_url)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option} must be a date YYYY-MM-DD") from None


@db_app.command("upgrade")
def upgrade_command(
    config: Annotated[Path | None, _CONFIG] = None,
    url: Annotated[str | None, _URL] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply the node database migrations (creates the database if needed)."""
    database = _database(config, url)
    try:
        database.upgrade(revision)
        current = database.current_revision()
    except SQLAlchemyError as exc:
        raise ValueError(f"cannot migrate {database.url}: {type(exc).__name__}") from exc
    finally:
        database.dispose()
    head = NodeDatabase.head_revision()
    suffix = " (head)" if current == head else ""
    typer.echo(f"node database {database.url}: at revision {current}{suffix}")


@db_app.command("current")
def current_command(
    config: Annotated[Path | None, _CONFIG] = None,
    url: Annotated[str | None, _URL] = None,
) -> None:
    """Show the node database's migration revision and the newest one shipped."""
    database = _database(config, url)
    try:
        current = database.current_revision()
    except SQLAlchemyError as exc:
        raise ValueError(f"cannot read {database.url}: {type(exc).__name__}") from exc
    finally:
        database.dispose()
    head = NodeDatabase.head_revision()
    if current == head:
        typer.echo(f"{current} (head)")
    else:
        typer.echo(f"{current or 'none'} (head is {head}: run `pancreas-node db upgrade`)")


@registry_app.command("seed")
def seed_command(
    clinical: Annotated[
        Path, typer.Option(help="Phantom clinical.csv: patient_id + the 17 variables.")
    ],
    url: Annotated[str, typer.Option(help="SQLAlchemy URL of the demo registry to build.")],
    ct_date: Annotated[
        str | None,
        typer.Option(help="CT date YYYY-MM-DD for patients without a study_date column."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the formatting choices.")] = 0,
) -> None:
    """Build a demo clinical registry (its own schema) from a phantom clinical.csv."""
    summary = seed_demo_registry(
        clinical, url, ct_date=_parse_date(ct_date, "--ct-date") or DEMO_CT_DATE, seed=seed
    )
    typer.echo(
        f"demo registry {redact_url(url)}: {summary.patients} patients, "
        f"{summary.lab_rows} lab rows, {summary.history_rows} history rows"
    )


@registry_app.command("lookup")
def lookup_command(
    config: Annotated[Path, typer.Option(help="Registry mapping TOML.")],
    patient_id: Annotated[str, typer.Option(help="The patient key (as the join key says).")],
    ct_date: Annotated[
        str | None, typer.Option(help="CT date YYYY-MM-DD (default: today, UTC).")
    ] = None,
) -> None:
    """Look up one patient's clinical variables and print them (terminal only, never logged)."""
    day = _parse_date(ct_date, "--ct-date") or datetime.now(UTC).date()
    with RegistryBridge(load_registry_config(config)) as bridge:
        result = bridge.lookup(patient_id, day)
    # Values go to this terminal only: the console is not a logging handler.
    console = Console(highlight=False)
    console.print(f"status: {result.status.value} ({result.elapsed_s:.2f} s)")
    table = Table("variable", "value", "unit", "source date")
    for spec in CLINICAL_VARIABLES:
        value = result.variables.values[spec.name]
        taken = result.source_timestamps.get(spec.name)
        table.add_row(
            spec.name,
            "missing" if value is None else f"{value:.6g}",
            spec.unit,
            "" if taken is None else taken.isoformat(),
        )
    console.print(table)
    for warning in result.warnings:
        console.print(f"warning: {warning}")
