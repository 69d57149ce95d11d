"""``pancreas-node export-cases --reviewed``: reviewed cases as a training cohort (issue 26)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from db import NodeDatabase, RegistryBridge
from pancreas_contracts.settings import load_settings
from training.review_export import export_reviewed_cases

__all__ = ["export_cases_command"]


def export_cases_command(
    out: Annotated[Path, typer.Option("--out", help="Cohort folder to write.")],
    reviewed: Annotated[
        bool,
        typer.Option(
            "--reviewed",
            help="Export the cases radiologists reviewed (agreed, overrode or corrected), with "
            "the corrected segmentation and the board's decision as labels.",
        ),
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings TOML file (as for serve).")
    ] = None,
) -> None:
    """Write node cases in the training folder format, for ``pancreas-node train``."""
    if not reviewed:
        # Unreviewed AI output as training labels would teach the model its own mistakes.
        raise ValueError("export-cases needs --reviewed: only reviewed cases are exported")
    settings = load_settings(config)
    database = NodeDatabase(settings.resolved_database_url)
    registry = (
        RegistryBridge.from_toml(settings.registry_config)
        if settings.registry_config is not None
        else None
    )
    try:
        summary = export_reviewed_cases(
            database, data_dir=settings.data_dir, out=out, registry=registry
        )
    finally:
        database.dispose()
        if registry is not None:
            registry.close()
    sources = ", ".join(f"{k} {v}" for k, v in sorted(summary.label_sources.items()))
    segs = ", ".join(f"{k} {v}" for k, v in sorted(summary.segmentation_sources.items()))
    typer.echo(f"exported {summary.exported} reviewed case(s) to {out}")
    typer.echo(f"  labels: {sources}; segmentations: {segs}; registry: {summary.registry}")
    for pid, why in summary.left_out.items():
        typer.echo(f"  left out {pid}: {why}")
    typer.echo(f"  train on them: pancreas-node train --data {out} --out <bundle folder>")
