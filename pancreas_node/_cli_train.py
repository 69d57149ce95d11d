"""``pancreas-node train``: nested cross-validated training of the resectability model.

``--task detection`` trains the PDAC detector instead (:mod:`training.detection`); it reads
its own config (:mod:`training.detection_config`) and honours ``--folds-to-run``,
``--workers`` and ``--device``. ``--task lymph-nodes`` trains the lymph-node metastasis model
(:mod:`training.lymph_nodes`, config :mod:`training.lymph_node_config`) with the same three
options. ``--task survival`` trains the survival models (:mod:`training.survival`, config
:mod:`training.survival_config`) with ``--workers`` and ``--device``.

torch and MONAI are imported only when the command runs, so the rest of the CLI starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["train_command"]


def train_command(
    data: Annotated[
        Path, typer.Option("--data", help="Cohort folder: clinical.csv, truth.csv, <patient>/.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Bundle and report folder (rerun to resume).")],
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML or JSON file of training settings.")
    ] = None,
    ablation: Annotated[
        list[str] | None,
        typer.Option(
            "--ablation",
            help="Add an ablation: ct_only, tabular_only, knockout, fixed_weights, geometry "
            "(repeatable; overrides the config's list).",
        ),
    ] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Epoch limit.")] = None,
    folds_to_run: Annotated[
        int | None, typer.Option("--folds-to-run", help="Outer folds to run (all: 5).")
    ] = None,
    target_size: Annotated[
        int | None, typer.Option("--target-size", help="Input cube voxels per side (x32).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Processes for preprocessing and independent fits."),
    ] = None,
    time_budget_min: Annotated[
        float | None,
        typer.Option("--time-budget-min", help="Wall-clock minutes per fit (0: no budget)."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    task: Annotated[
        str,
        typer.Option("--task", help="resectability (default), detection, lymph-nodes or survival."),
    ] = "resectability",
) -> None:
    """Train (nested 5-fold CV), write report.md, figures and a model bundle to --out."""
    if task in _OTHER_TASKS:
        if ablation or max_epochs is not None or target_size is not None or time_budget_min:
            raise ValueError("--ablation, --max-epochs, --target-size and --time-budget-min "
                             "apply to --task resectability only")  # fmt: skip
        _OTHER_TASKS[task](data, out, config, folds_to_run, workers, device)
        return
    if task != "resectability":
        raise ValueError(
            f"--task must be resectability, detection, lymph-nodes or survival, got {task!r}"
        )
    from training.cohort import train_cohort
    from training.config import load_config

    settings = load_config(
        config,
        ablations=tuple(ablation) if ablation else None,
        max_epochs=max_epochs,
        folds_to_run=folds_to_run,
        target_size=target_size,
        workers=workers,
        time_budget_min=time_budget_min,
        device=device,
    )
    if not data.is_dir():
        raise ValueError(f"--data {data} is not a folder")
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def status(name: str, done: int, total: int) -> None:
            key = name.split(" loss ")[0]
            if key not in tasks:
                tasks[key] = progress.add_task(name, total=total)
            progress.update(tasks[key], description=name, completed=done, total=total)

        run = train_cohort(data, out, settings, status=status)
    mm = run.summary.get("multimodal", {})
    auc = mm.get("auc", {}).get("mean", float("nan"))
    typer.echo(f"macro AUC (multimodal, outer folds) {auc:.3f}; report {out / 'report.md'}")
    typer.echo(f"bundle {run.bundle_json} (investigational, not for clinical use)")


def _line_status(data: Path) -> Callable[[str, int, int], None]:
    """Check ``data`` is a folder; a status callback printing one line per step to stderr."""
    if not data.is_dir():
        raise ValueError(f"--data {data} is not a folder")
    console = Console(stderr=True)

    def status(name: str, done: int, total: int) -> None:
        console.print(f"{name} ({done}/{total})", highlight=False)

    return status


def _train_detection(
    data: Path,
    out: Path,
    config: Path | None,
    folds_to_run: int | None,
    workers: int | None,
    device: str | None,
) -> None:
    """``--task detection``: the PDAC detector's training, report and bundle."""
    from training.detection import train_detection
    from training.detection_config import load_detection_config

    settings = load_detection_config(
        config, folds_to_run=folds_to_run, workers=workers, device=device
    )
    status = _line_status(data)
    run = train_detection(data, out, settings, status=status)
    test = run.summary["folds"][0]["test"]
    typer.echo(f"detection AUROC (combined, fold 0 test) {test['auroc']:.3f}; report {run.report}")
    typer.echo(f"bundle {run.bundle_json} (investigational, not for clinical use)")


def _train_lymph_nodes(
    data: Path,
    out: Path,
    config: Path | None,
    folds_to_run: int | None,
    workers: int | None,
    device: str | None,
) -> None:
    """``--task lymph-nodes``: the lymph-node model's training, ablation, report and bundle."""
    from training.lymph_node_config import load_lymph_node_config
    from training.lymph_nodes import train_lymph_nodes

    settings = load_lymph_node_config(
        config, folds_to_run=folds_to_run, workers=workers, device=device
    )
    status = _line_status(data)
    run = train_lymph_nodes(data, out, settings, status=status)
    patient = run.summary["folds"][0]["test"]["patient"]
    typer.echo(
        f"lymph nodes: patient N+ AUC {patient['auc']:.3f}, balanced accuracy "
        f"{patient['balanced_accuracy']:.3f} (fold 0 test); report {run.report}"
    )
    typer.echo(f"bundle {run.bundle_json} (investigational, not for clinical use)")


def _train_survival(
    data: Path,
    out: Path,
    config: Path | None,
    folds_to_run: int | None,
    workers: int | None,
    device: str | None,
) -> None:
    """``--task survival``: the survival models' training, report and bundle."""
    from training.survival import train_survival
    from training.survival_config import load_survival_config

    if folds_to_run is not None:
        raise ValueError("--folds-to-run does not apply to --task survival (a 7:3 split)")
    settings = load_survival_config(config, workers=workers, device=device)
    status = _line_status(data)
    run = train_survival([data], out, settings, status=status)
    fusion = run.summary["test"]["fusion"]
    td = " / ".join(f"{h['td_auc']:.3f}" for h in fusion["horizons"])
    typer.echo(
        f"survival fusion (test split): time-dependent AUC 1/2/3 y {td}, C-index "
        f"{fusion['c_index']:.3f}; report {run.report}"
    )
    typer.echo(f"bundle {run.bundle_json} (investigational, not for clinical use)")


_OTHER_TASKS = {
    "detection": _train_detection,
    "lymph-nodes": _train_lymph_nodes,
    "survival": _train_survival,
}
