"""``pancreas-node train-localiser``: train the learned coarse localiser into an existing bundle.

torch and MONAI are imported only when the command runs, so the rest of the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["train_localiser_command"]


def train_localiser_command(
    data: Annotated[
        Path, typer.Option("--data", help="Cohort folder: clinical.csv, truth.csv, <patient>/.")
    ],
    bundle: Annotated[
        Path, typer.Option("--bundle", help="Bundle folder to add the localiser to.")
    ],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 30,
    spacing: Annotated[
        float, typer.Option("--spacing", help="Isotropic grid of the localiser, mm.")
    ] = 5.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the fit.")] = 0,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="CPU threads for torch (0: its default).")
    ] = 0,
) -> None:
    """Train the coarse pancreas localiser on the bundle's training rows and add it.

    The rows come from the bundle's recorded outer-fold split (fold 0's training and
    validation rows; its test rows are held out for the reported metrics), else a stratified
    80 % of the cohort. Writes localiser.safetensors and rewrites bundle.json atomically.
    """
    import torch

    from training.localiser import train_bundle_localiser

    if not data.is_dir():
        raise ValueError(f"--data {data} is not a folder")
    if not (bundle / "bundle.json").is_file():
        raise ValueError(f"--bundle {bundle} holds no bundle.json")
    if threads > 0:
        torch.set_num_threads(threads)

    def status(task: str, done: int, total: int) -> None:
        if done == total or done % 20 == 0:
            typer.echo(f"{task}: {done}/{total}", err=True)

    def progress(epoch: int, total: int, loss: float, wall: float, cpu: float) -> None:
        typer.echo(
            f"localiser epoch {epoch}/{total}: loss {loss:.4f} ({wall:.1f} s, CPU {cpu:.1f} s)",
            err=True,
        )

    fit = train_bundle_localiser(
        data, bundle, epochs=epochs, spacing_mm=spacing, seed=seed, status=status,
        progress=progress,
    )  # fmt: skip
    metrics = fit.metrics
    if metrics.get("patients"):
        dist, inbox = metrics["centre_distance_mm"], metrics["mask_fraction_in_box"]
        typer.echo(
            f"held out {metrics['patients']} patients: centre {dist['median']:.1f} mm from the "
            f"pancreas centroid (median; max {dist['max']:.1f}), {inbox['median']:.0%} of the "
            f"mask in the box (median; min {inbox['min']:.0%}), found "
            f"{metrics['found_fraction']:.0%}"
        )
    typer.echo(f"localiser {fit.localiser.method} added to {bundle / 'bundle.json'}")
