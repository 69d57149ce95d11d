"""``pancreas-node cohort``: work on training cohort folders (``docs/importing.md``).

``cohort merge`` joins imported and phantom cohorts into one folder for a mixed-cohort
training (:func:`training.cohort_merge.merge_cohorts`). Errors are left to
:func:`pancreas_node.cli.main`, which prints them as one line. Nothing printed here names a
patient beyond the cohort's own case ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.cohort_merge import merge_cohorts

__all__ = ["cohort_app"]

cohort_app = typer.Typer(
    help="Work on training cohort folders (truth.csv, clinical.csv, one folder per patient).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@cohort_app.command("merge")
def merge_command(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Cohort folders to merge (imported, phantom, an earlier merge); patient ids"
            " must not repeat across them.",
            metavar="SOURCE",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Merged cohort folder to write (new or empty).")
    ],
    link: Annotated[
        bool,
        typer.Option(
            "--link/--copy",
            help="Symlink each patient folder (absolute path; the sources must stay where"
            " they are) or copy it.",
        ),
    ] = True,
) -> None:
    """Merge cohorts into one (union of truth.csv / clinical.csv columns, merge.json)."""
    summary = merge_cohorts(sources, out, copy=not link)
    for source in summary.sources:
        kind = f"import {source.format}" if source.format else "no import.json"
        typer.echo(f"  {source.name}: {source.cases} cases ({kind})")
    how = "copied" if summary.copied else "linked"
    typer.echo(
        f"wrote {len(summary.cases)} cases from {len(summary.sources)} sources to {out} ({how})"
    )
