"""``pancreas-node phantom``: write a synthetic phantom cohort (no patient data involved).

Bad input raises ``ValueError`` or ``OSError`` before anything is written;
:func:`pancreas_node.cli.main` turns those into a one-line error with exit status 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from phantom import POSITIONS, TRANSFER_SYNTAXES, VARIATIONS, PhantomOptions, generate_cohort
from phantom.holdout import HoldoutOptions, generate_holdout_cohort

GENERATORS: tuple[str, ...] = ("standard", "holdout")

__all__ = ["parse_numbers", "phantom_command"]


def parse_numbers(text: str, count: int, option: str) -> tuple[float, ...]:
    """Parse ``count`` comma-separated finite numbers given to ``option``.

    Raises
    ------
    ValueError
        With a message naming ``option`` if ``text`` is not exactly that.
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"{option} must be {count} comma-separated numbers, got {text!r}"
        ) from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{option} must be {count} comma-separated numbers, got {text!r}")
    return values


def _options(
    classes: str,
    label_noise: float,
    biological_borderline: float,
    fov_mm: str,
    pixel_spacing: float | None,
    slice_thickness: float | None,
    position: str,
    shuffle: bool,
    transfer_syntax: str,
    variation: str = "standard",
    tumor_free_fraction: float | None = None,
    pdac_prevalence: float | None = None,
    lymph_nodes: bool | None = None,
    follow_up: bool | None = None,
) -> PhantomOptions:
    counts = parse_numbers(classes, 3, "--classes")
    fov = parse_numbers(fov_mm, 3, "--fov-mm")
    return PhantomOptions(
        class_counts=(counts[0], counts[1], counts[2]),
        label_noise=label_noise,
        biological_borderline=biological_borderline,
        fov_mm=(fov[0], fov[1], fov[2]),
        pixel_spacing=pixel_spacing,
        slice_thickness=slice_thickness,
        position="random" if position.lower() == "random" else position.upper(),
        shuffle=shuffle,
        transfer_syntax=transfer_syntax.lower(),
        variation=variation.lower(),
        tumor_free_fraction=tumor_free_fraction,
        pdac_prevalence=pdac_prevalence,
        lymph_nodes=lymph_nodes,
        follow_up=follow_up,
    )


def phantom_command(
    out: Annotated[
        Path, typer.Option("--out", help="Output folder (created; empty or an earlier cohort).")
    ],
    patients: Annotated[
        int, typer.Option("--patients", help="Number of patients (at least 1).")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Cohort seed; same seed, same files.")] = 0,
    classes: Annotated[
        str,
        typer.Option(
            "--classes", help="Reference counts of NCCN classes 0,1,2 (drawn stratified)."
        ),
    ] = "85,47,27",
    label_noise: Annotated[
        float, typer.Option("--label-noise", help="Probability of flipping a patient's NCCN label.")
    ] = 0.05,
    biological_borderline: Annotated[
        float,
        typer.Option(
            "--biological-borderline",
            help="Fraction of borderline patients who are borderline on CA 19-9 > 500 U/mL alone"
            " (IAP 2017 BR-B; 0: anatomical labels only, as before 2026-11-26).",
        ),
    ] = 0.25,
    pixel_spacing: Annotated[
        float | None,
        typer.Option("--pixel-spacing", help="In-plane spacing in mm [random 0.6-0.9]."),
    ] = None,
    slice_thickness: Annotated[
        float | None,
        typer.Option("--slice-thickness", help="Slice thickness = spacing in mm [random 1-3]."),
    ] = None,
    position: Annotated[
        str, typer.Option("--position", help=f"Patient position: {' | '.join(POSITIONS)}.")
    ] = "HFS",
    shuffle: Annotated[
        bool, typer.Option("--shuffle/--no-shuffle", help="Shuffle the DICOM file-name order.")
    ] = False,
    transfer_syntax: Annotated[
        str, typer.Option("--transfer-syntax", help=f"One of: {', '.join(TRANSFER_SYNTAXES)}.")
    ] = "explicit",
    fov_mm: Annotated[
        str, typer.Option("--fov-mm", help="Field of view x,y,z in mm.")
    ] = "300,300,200",
    workers: Annotated[
        int, typer.Option("--workers", help="Processes rendering patients in parallel.")
    ] = 1,
    variation: Annotated[
        str,
        typer.Option(
            "--variation",
            help=f"One of: {', '.join(VARIATIONS)}. wide: scanner, contrast phase, body, vessel"
            " variant and tumor look drawn per patient, tumor-free patients added (FOV and"
            " position left at their defaults are drawn too); synth: wide with label-wise"
            " random HU.",
        ),
    ] = "standard",
    tumor_free_fraction: Annotated[
        float | None,
        typer.Option(
            "--tumor-free-fraction",
            help="Fraction of tumor-free patients (wide and synth only) [0.2].",
        ),
    ] = None,
    pdac_prevalence: Annotated[
        float | None,
        typer.Option(
            "--pdac-prevalence",
            help="Fraction of PDAC patients, 1 - --tumor-free-fraction (wide and synth only)"
            " [0.8]; 0.3 is PANORAMA's (676 of 2238), for a detection cohort.",
        ),
    ] = None,
    lymph_nodes: Annotated[
        bool | None,
        typer.Option(
            "--lymph-nodes/--no-lymph-nodes",
            help="Lymph nodes at the JPS stations with N-status truth, the ten attention"
            " structures (organs.nii.gz, nodes.nii.gz, lymph_nodes.json) [on for wide,"
            " synth and --generator holdout, off for standard].",
            show_default=False,
        ),
    ] = None,
    follow_up: Annotated[
        bool | None,
        typer.Option(
            "--follow-up/--no-follow-up",
            help="Overall survival follow-up of every PDAC patient from a stated Weibull hazard"
            " model with censoring (truth.csv: os_months, os_event, hazard_lp; needs lymph"
            " nodes; docs/survival.md) [on for wide and synth, off for standard].",
            show_default=False,
        ),
    ] = None,
    generator: Annotated[
        str,
        typer.Option(
            "--generator",
            help="standard: the training generator; holdout: the separately written held-out"
            " generator, for evaluation only (only --patients, --seed, --out, --workers and"
            " --lymph-nodes/--no-lymph-nodes apply).",
        ),
    ] = "standard",
) -> None:
    """Write a synthetic phantom cohort: DICOM CT, NIfTI image/labels, clinical.csv, truth.csv."""
    if patients < 1:
        raise ValueError(f"--patients must be at least 1, got {patients}")
    if generator not in GENERATORS:
        raise ValueError(f"--generator must be one of {', '.join(GENERATORS)}, got {generator!r}")
    options = _options(
        classes,
        label_noise,
        biological_borderline,
        fov_mm,
        pixel_spacing,
        slice_thickness,
        position,
        shuffle,
        transfer_syntax,
        variation,
        tumor_free_fraction,
        pdac_prevalence,
        lymph_nodes,
        follow_up,
    )
    # The bar starts at the first callback, i.e. only after the input was checked, so bad
    # input leaves stderr with nothing but the one-line error.
    progress = Progress(
        TextColumn("phantom"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task("patients", total=patients)

    def advance(done: int, total: int) -> None:
        if done == 0:
            progress.start()
        progress.update(task, completed=done, total=total)

    try:
        if generator == "holdout":
            held_out = HoldoutOptions(lymph_nodes=lymph_nodes is not False)
            written = len(
                generate_holdout_cohort(out, patients, seed, held_out, advance, workers=workers)
            )
        else:
            written = len(generate_cohort(out, patients, seed, options, advance, workers=workers))
    finally:
        if progress.live.is_started:
            progress.stop()
    kind = "held-out " if generator == "holdout" else ""
    typer.echo(f"wrote {written} {kind}phantom patients to {out} (seed {seed})")
