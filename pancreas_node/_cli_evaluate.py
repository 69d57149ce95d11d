"""``pancreas-node evaluate``: model bundles on a labelled cohort (cube and end to end).

With ``--real-ct`` (the default with ``--pipeline`` when the case folder exists) the first
bundle is also run on the real NIH Pancreas-CT case 0001 of the shared public CT examples
(read-only; never trained on): ``$PANCREAS_AI_SHARED_DATA/pancreas-ct-0001``, or
``../shared/data`` beside the checkout (as the tests find it). torch is imported only when the
command runs (:mod:`training.evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["evaluate_command"]

_NIH_CASE = "pancreas-ct-0001"
_SHARED_DATA_VARIABLE = "PANCREAS_AI_SHARED_DATA"


def _default_shared_data() -> Path:
    """``../shared/data`` beside the checkout (the default of the tests' ``conftest.py``)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _real_ct_case(real_ct: bool | None, shared_data: Path | None, pipeline: bool) -> Path | None:
    """The NIH case folder to evaluate, ``None`` when not asked for or (by default) absent.

    By default it runs with the end-to-end pipeline (it is the pipeline on a real CT) when
    the folder exists; ``--real-ct`` runs it even with ``--no-pipeline``.
    """
    if real_ct is False or (real_ct is None and not pipeline):
        return None
    case = (shared_data or _default_shared_data()).expanduser() / _NIH_CASE
    if case.is_dir():
        return case
    if real_ct:
        raise ValueError(
            f"--real-ct: {case} not found (set {_SHARED_DATA_VARIABLE} or --shared-data to the "
            f"folder holding {_NIH_CASE}/)"
        )
    return None


def _check_cohort(data: Path) -> None:
    if not data.is_dir():
        raise ValueError(f"--data {data} is not a folder")
    for table in ("clinical.csv", "truth.csv"):
        if not (data / table).is_file():
            raise ValueError(
                f"--data {data} has no {table} (a labelled cohort: clinical.csv, truth.csv, "
                "<patient>/image.nii.gz or dicom/, <patient>/label.nii.gz)"
            )


def _evaluate_survival(bundle: Path, data: Path, out: Path, device: str, workers: int) -> None:
    """``--task survival``: the survival bundle's tables on this cohort."""
    from training.survival import evaluate_survival  # torch only here

    metrics = evaluate_survival(bundle, data, out, title=f"Cohort {data.name}", workers=workers,
                                device=device)  # fmt: skip
    for key, m in metrics.items():
        td = " / ".join(f"{h['td_auc']:.3f}" for h in m["horizons"])
        typer.echo(f"{key}: time-dependent AUC 1/2/3 y {td}, C-index {m['c_index']:.3f}")
    risk = metrics["fusion"]["risk"]
    typer.echo(f"risk groups: {risk['n_high']} high, {risk['n_low']} low, log-rank p "
               f"{risk['logrank_p']:.4g}; wrote {out / f'eval-{data.name}.md'}")  # fmt: skip
    typer.echo("investigational, not for clinical use")


def _evaluate_lymph_nodes(bundle: Path, data: Path, out: Path) -> None:
    """``--task lymph-nodes``: node detection, classification and N status on this cohort."""
    from training.lymph_nodes import evaluate_lymph_nodes  # torch only here

    out.mkdir(parents=True, exist_ok=True)
    report = out / f"eval-{data.name}.md"
    summary = evaluate_lymph_nodes(bundle, data, report, f"cohort {data.name}")
    detection = summary["attention"]["detection"]
    typer.echo(
        f"nodes: recall {detection['recall']:.3f}, {detection['fp_per_patient']:.1f} false "
        f"positives per patient; patient N+ AUC {summary['patient']['auc']:.3f} "
        f"({summary['patients']} patients, {summary['n_positive']} N+); wrote {report}"
    )
    typer.echo("investigational, not for clinical use")


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
    real_ct: Annotated[
        bool | None,
        typer.Option(
            "--real-ct/--no-real-ct",
            help="Also evaluate the real NIH Pancreas-CT 0001 case (localiser distance, pancreas "
            "Dice); default: with --pipeline, when its folder exists.",
            show_default=False,
        ),
    ] = None,
    shared_data: Annotated[
        Path | None,
        typer.Option(
            "--shared-data",
            envvar=_SHARED_DATA_VARIABLE,
            help="Folder holding pancreas-ct-0001/ (default: ../shared/data beside the checkout).",
        ),
    ] = None,
    task_name: Annotated[
        str,
        typer.Option(
            "--task",
            help="resectability (default), survival (the first --bundle on a cohort with "
            "follow-up: eval-<cohort>.md with the paper's table, risk groups and figures) or "
            "lymph-nodes (the first --bundle on a cohort with node truth: eval-<cohort>.md).",
        ),
    ] = "resectability",
) -> None:
    """Evaluate bundles on a labelled cohort; write evaluation.md and evaluation.json."""
    _check_cohort(data)
    for path in bundle:
        if not path.exists():
            raise ValueError(f"--bundle {path} does not exist")
    if task_name == "survival":
        _evaluate_survival(bundle[0], data, out, device, workers)
        return
    if task_name == "lymph-nodes":
        _evaluate_lymph_nodes(bundle[0], data, out)
        return
    if task_name != "resectability":
        raise ValueError(
            f"--task must be resectability, survival or lymph-nodes, got {task_name!r}"
        )
    case = _real_ct_case(real_ct, shared_data, pipeline)
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
            data, bundle, out, pipeline=pipeline, device=device, status=status,
            workers=workers, real_ct=case,
        )  # fmt: skip
    finally:
        if started:
            progress.stop()
    for row in evaluation.report["rows"]:
        auc = row["auc"]
        shown = "n/a" if auc is None else f"{auc:.3f}"
        typer.echo(f"{row['label']}: n {row['n']}, macro AUC {shown}")
    real = evaluation.report.get("real_ct")
    if real is not None:
        seg = real.get("segmentation") or {}
        learned = real.get("learned_localiser") or {}
        typer.echo(
            f"real CT {real['case']}: learned localiser {_mm(learned.get('distance_mm'))} from "
            f"the mask centroid, pancreas Dice {_mm(seg.get('pancreas_dice'), '')}"
            + (" (forced past the localiser refusal)" if real.get("forced") else "")
        )
    typer.echo(f"wrote {evaluation.markdown} and {evaluation.json}")
    typer.echo("investigational, not for clinical use")


def _mm(value: float | None, unit: str = " mm") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"
