"""``pancreas-node worker``: one distributed analysis worker process (issue 27)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from db import NodeDatabase
from dicom_node import NodeMetrics
from pancreas_contracts import Settings, load_settings
from pancreas_node._cli_errors import CliError
from pancreas_node.analysis_runner import build_runner
from pancreas_node.celery_worker import run_worker

__all__ = ["worker_command"]


def _configure_logging(settings: Settings) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(settings.logs_dir / "worker.log")],
    )
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def worker_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Settings TOML file (PANCREAS_AI_* variables also apply)."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="torch threads for the analysis (one worker per GPU or per CPU slot)."
        ),
    ] = 1,
    name: Annotated[
        str | None, typer.Option(help="Celery node name (default pancreas@<host>-<pid>).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics on this port (overrides PANCREAS_AI_METRICS_PORT; 0: off). "
            "Each worker process on a host needs its own.",
        ),
    ] = None,
) -> None:
    """Run one analysis worker: take jobs from the broker one at a time, until SIGTERM.

    Needs the node's settings (database, data folder, bundle, destinations) and
    PANCREAS_AI_BROKER_URL; see docs/scale-out.md.
    """
    settings = load_settings(config, metrics_port=metrics_port)
    if settings.broker_url is None:
        raise CliError("a worker needs the broker: set PANCREAS_AI_BROKER_URL or broker_url")
    if settings.bundle_path is None:
        raise CliError("a worker needs the model bundle: set PANCREAS_AI_BUNDLE_PATH")
    _configure_logging(settings)
    import torch  # the analysis' threads, before the model loads

    torch.set_num_threads(threads)
    database = NodeDatabase(settings.resolved_database_url)
    metrics = NodeMetrics()  # this process' own (issue 27); the queue gauge is the node's
    runner = build_runner(settings, database, metrics)
    if runner is None:  # pragma: no cover - excluded by the bundle check above
        raise CliError("no model bundle configured")
    try:
        run_worker(settings, runner, database, name=name, metrics=metrics)
    finally:
        runner.close()
        database.dispose()
