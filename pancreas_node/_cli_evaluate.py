"""``pancreas-node evaluate``: model bundles on a labelled cohort (cube and end to end).

torch is imported only when the command runs (:mod:`training.evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["evaluate_command"]


def _check_cohort(data: Path) -> None:
    if not data.is_dir():
        raise ValueError(f"--data {data} is not a folder")
    for table in ("clinical.csv", "truth.csv"):
        if not (data / table).is_file():
            raise ValueError(
                f"--data {data} has no {table} (a labelled cohort: clinical.csv, truth.csv, "
                "<patient>/image.nii.gz or dicom/, <patient>/label.nii.gz)"
            )


def evaluate_command(
    bundle: Annotated[
        list[Path],
        typer.Option(
            "--bundle",
            help="Model bundle directory (repeatable; the first also runs end to end).",
        ),
    ],
    data: Annotated[
        Path,
        typer.Option("--data", help="Labelled cohort: clinical.csv, truth.csv, <patient>/."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for evaluation.md and .json.")],
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline/--no-pipeline",
            help="Also run the analysis pipeline end to end on each full CT (first bundle).",
        ),
    ] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[
        int, typer.Option("--workers", help="Processes preprocessing the cubes first.")
    ] = 1,
) -> None:
    """Evaluate bundles on a labelled cohort; write evaluation.md and evaluation.json."""
    _check_cohort(data)
    for path in bundle:
        if not path.exists():
            raise ValueError(f"--bundle {path} does not exist")
    from training.evaluation import evaluate_cohort  # torch only here

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    progress = Progress(*columns, console=console, transient=False)
    task = progress.add_task("evaluating", total=None)
    started: list[bool] = []

    def status(name: str, done: int, total: int) -> None:
        # Started at the first finished case, so that early errors stay one line.
        if not started:
            progress.start()
            started.append(True)
        progress.update(task, description=name, completed=done, total=total)

    try:
        evaluation = evaluate_cohort(
            data, bundle, out, pipeline=pipeline, device=device, status=status, workers=workers
        )
    finally:
        if started:
            progress.stop()
    for row in evaluation.report["rows"]:
        auc = row["auc"]
        shown = "n/a" if auc is None else f"{auc:.3f}"
        typer.echo(f"{row['label']}: n {row['n']}, macro AUC {shown}")
    typer.echo(f"wrote {evaluation.markdown} and {evaluation.json}")
    typer.echo("investigational, not for clinical use")
