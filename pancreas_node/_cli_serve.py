"""``pancreas-node serve``, ``status`` and ``rules test``."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from db import NodeDatabase, list_recent_jobs, queue_counts, redact_url
from dicom_node import NodeMetrics
from dicom_node.routing import load_rules
from dicom_node.series_assembly import gather_facts
from inference import estimate_series_phase
from pancreas_contracts import JobState, Settings, load_settings
from pancreas_node._cli_errors import CliError
from pancreas_node._ports import started_node
from pancreas_node.analysis_runner import build_runner
from pancreas_node.correction_runner import correction_loop

__all__ = ["rules_app", "serve_command", "status_command"]

rules_app = typer.Typer(help="Routing rules.", no_args_is_help=True)

_ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings TOML file (PANCREAS_AI_* variables also apply)."),
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    return load_settings(config, **overrides)


def _configure_logging(settings: Settings) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(settings.logs_dir / "node.log")],
    )
    # pynetdicom's own INFO/DEBUG lines can carry identifiers from the data sets.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


_PORT_CHANGE = (
    "choose another with --port, PANCREAS_AI_PORT or `port` in the --config file "
    "(and the address with PANCREAS_AI_BIND_ADDRESS)"
)


def serve_command(
    config: _ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="DICOM port (overrides the settings).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (overrides the settings).")
    ] = None,
) -> None:
    """Run the node: SCP, series assembly and worker, until SIGTERM or Ctrl-C."""
    settings = _settings(config, port=port, data_dir=data_dir)
    _configure_logging(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner_db = NodeDatabase(settings.resolved_database_url)
    # None without a bundle (jobs wait queued), and in the distributed mode: the node only
    # publishes its jobs, `pancreas-node worker` processes analyse them (issue 27).
    distributed = settings.worker_mode == "celery"
    metrics = NodeMetrics()  # one for the node and its runner (registry lookups), issue 27
    runner = None if distributed else build_runner(settings, runner_db, metrics)
    try:
        # After the node (it migrates the database); own thread (issue 26 reviewer corrections).
        with (
            started_node(settings, runner, _PORT_CHANGE, metrics),
            correction_loop(settings, runner_db),
        ):
            typer.echo(
                f"{settings.ae_title} listening on {settings.bind_address}:{settings.port}",
                err=True,
            )
            # Bounded waits: a signal that arrives just as the main thread blocks in an unbounded
            # wait is handled only when something else wakes that thread, so SIGTERM or Ctrl-C
            # could go unanswered. Each timeout returns to Python, which runs the handler.
            while not stop.wait(timeout=0.5):
                pass
    finally:
        if runner is not None:
            runner.close()
        runner_db.dispose()


def status_command(
    config: _ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many recent jobs to list.")] = 20,
) -> None:
    """Show the job queue and the most recent jobs (creates nothing)."""
    settings = _settings(config)
    url = settings.resolved_database_url
    _require_sqlite_file(url)
    database = NodeDatabase(url)
    try:
        revision = database.current_revision()
        if revision is None:
            raise CliError(f"the node database at {database.url} is empty: {_START_HINT}")
        counts = queue_counts(database)
        jobs = list_recent_jobs(database, limit=limit)
    except SQLAlchemyError as exc:
        # Unreachable server, or tables older than this version (`serve` upgrades on start).
        raise CliError(
            f"cannot read the node database at {database.url} ({type(exc).__name__}): "
            "is it reachable, and at the current revision (`pancreas-node db current`)?"
        ) from exc
    finally:
        database.dispose()
    console = Console()
    summary = Table(title="Job queue")
    for state in JobState:
        summary.add_column(state.value, justify="right")
    summary.add_row(*(str(counts.get(state, 0)) for state in JobState))
    console.print(summary)
    recent = Table(title="Recent jobs")
    columns = ("job", "series", "version", "instances", "state", "attempts", "updated", "reason")
    for column in columns:
        recent.add_column(column)
    for job in jobs:
        reason = job.failure_reason or ""
        if job.superseded_by and job.state is JobState.DELIVERED:
            reason = f"superseded by job {job.superseded_by[:8]}"
        recent.add_row(
            job.id[:8],
            job.series_instance_uid,
            str(job.series_version),
            "" if job.instance_count is None else str(job.instance_count),
            job.state.value,
            str(job.attempts),
            job.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            reason,
        )
    console.print(recent)


_START_HINT = (
    "start the node with `pancreas-node serve` or run `pancreas-node db upgrade` (or point "
    "--config / PANCREAS_AI_DATA_DIR / PANCREAS_AI_DATABASE_URL at an existing node)"
)


def _require_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist, before anything creates it.

    Opening the database would create the file (and :class:`db.NodeDatabase` its folder), so a
    read-only command in a fresh clone would leave an empty ``data/node.db`` behind and then
    fail on the missing tables.

    Raises
    ------
    CliError
        If ``url`` names a SQLite file that does not exist.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # NodeDatabase gives the one-line message for an invalid URL
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return  # a SQLite URI: its options (mode=ro, ...) decide what opening does
    if not Path(database).expanduser().is_file():
        raise CliError(f"no node database at {redact_url(url)}: {_START_HINT}")


@rules_app.command("test")
def rules_test_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="A DICOM file; the other files of its series in the same folder are used too."
        ),
    ],
    rules: Annotated[
        Path | None, typer.Option(help="Rules TOML (default: the packaged rules).")
    ] = None,
    calling_ae: Annotated[str, typer.Option(help="Calling AE title to test with.")] = "",
) -> None:
    """Show what the routing rules decide for the series of FILE, and why."""
    if not file.is_file():
        raise ValueError(f"{file} is not a file")
    rule_set = load_rules(rules)
    paths = _series_files(file)
    decision = rule_set.evaluate(gather_facts(paths, calling_ae, estimate_series_phase))
    typer.echo(f"decision: {decision.action.value}")
    typer.echo(f"rule: {decision.rule or '(none matched)'}")
    for reason in decision.reasons:
        typer.echo(f"  - {reason}")


def _series_files(file: Path) -> list[Path]:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        series_uid = dcmread(file, stop_before_pixels=True, force=True).SeriesInstanceUID
    except (InvalidDicomError, AttributeError, EOFError) as exc:
        raise ValueError(f"{file} is not a readable DICOM instance") from exc
    paths = []
    for path in sorted(file.parent.iterdir()):
        if not path.is_file():
            continue
        try:
            uid = dcmread(
                path, stop_before_pixels=True, force=True, specific_tags=["SeriesInstanceUID"]
            ).get("SeriesInstanceUID")
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
        if uid == series_uid:
            paths.append(path)
    return paths
