"""``pancreas-node volume``: inspect and convert CT volumes (DICOM series or NIfTI).

Errors are left to :func:`pancreas_node.cli.main`, which prints them as one line (every
``inference.volume_io`` error is a ``ValueError``; missing paths are ``OSError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import nibabel as nib
import numpy as np
import numpy.typing as npt
import typer
from pydicom.uid import UID

from inference import (
    DicomVolume,
    Volume,
    list_dicom_series,
    read_dicom_series,
    read_nifti,
    resample_to_spacing,
    write_nifti,
)

__all__ = ["volume_app"]

volume_app = typer.Typer(
    help="Inspect and convert CT volumes (DICOM series directory, single file, or NIfTI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_NIFTI_SUFFIXES = (".nii", ".nii.gz")

SeriesOption = Annotated[
    str | None,
    typer.Option("--series-uid", help="SeriesInstanceUID to read when SRC holds several series."),
]


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES) and path.is_file()


def _fmt3(values: tuple[float, float, float], digits: int = 4) -> str:
    return " x ".join(f"{v:.{digits}g}" for v in values)


def _axcodes(affine: npt.NDArray[np.float64]) -> str:
    return "".join(str(c) for c in nib.aff2axcodes(affine))


def _value_range(volume: Volume) -> str:
    array = volume.array
    if array.size == 0:
        return "empty"
    return f"{float(np.min(array)):g} .. {float(np.max(array)):g}"


def _print_volume(volume: Volume, *, label: str) -> None:
    typer.echo(f"shape: {' x '.join(str(n) for n in volume.shape)}")
    typer.echo(f"spacing_mm: {_fmt3(volume.spacing)}")
    typer.echo(f"orientation: {_axcodes(volume.affine)}{label}")
    typer.echo(f"dtype: {volume.array.dtype}")


@volume_app.command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="Series directory, DICOM file, or NIfTI file.")],
    series_uid: SeriesOption = None,
) -> None:
    """Print shape, spacing, orientation, value range, transfer syntaxes and series count."""
    if _is_nifti(path):
        volume = read_nifti(path)
        typer.echo(f"format: NIfTI ({path.name})")
        _print_volume(volume, label=" (as stored)")
        typer.echo(f"value range: {_value_range(volume)}")
        return
    series = list_dicom_series(path)
    typer.echo("format: DICOM")
    typer.echo(f"series: {len(series)}")
    if len(series) > 1 and series_uid is None:
        for s in series:
            typer.echo(
                f"  {s.series_instance_uid or '<empty>'}: {s.modality or '?'}, "
                f"{s.num_instances} instance(s), {s.num_frames} frame(s)"
            )
        typer.echo("choose one with --series-uid for geometry and HU range")
        return
    dicom = read_dicom_series(path, series_uid=series_uid)
    _print_dicom(dicom)


def _print_dicom(dicom: DicomVolume) -> None:
    volume = dicom.volume
    typer.echo(f"series_instance_uid: {dicom.series_instance_uid or '<empty>'}")
    typer.echo(f"modality: {dicom.modality or '?'}")
    typer.echo(f"slices: {dicom.num_slices} (step {dicom.slice_step_mm:.4g} mm)")
    _print_volume(volume, label=f" (canonical; stored as {_axcodes(dicom.native_affine)})")
    iop = "\\".join(f"{v:.4g}" for v in dicom.image_orientation)
    typer.echo(f"image_orientation_patient: {iop}")
    unit = "HU" if dicom.modality == "CT" else "value"
    typer.echo(f"{unit} range: {_value_range(volume)}")
    names = ", ".join(f"{UID(ts).name} ({ts})" for ts in dicom.transfer_syntaxes)
    typer.echo(f"transfer syntaxes: {names}")
    for warning in dicom.warnings:
        typer.echo(f"warning: {warning}")


@volume_app.command("convert")
def convert_command(
    src: Annotated[Path, typer.Argument(help="Series directory, DICOM file, or NIfTI file.")],
    out: Annotated[Path, typer.Option("--out", help="Output NIfTI file (.nii or .nii.gz).")],
    isotropic: Annotated[
        float | None,
        typer.Option("--isotropic", help="Resample to this isotropic voxel size in mm (linear)."),
    ] = None,
    series_uid: SeriesOption = None,
) -> None:
    """Convert SRC to a canonical (RAS+) NIfTI volume, optionally resampled isotropically."""
    if not out.name.lower().endswith(_NIFTI_SUFFIXES):
        raise typer.BadParameter("must end in .nii or .nii.gz", param_hint="--out")
    if isotropic is not None and not isotropic > 0:
        raise typer.BadParameter("must be a positive number of mm", param_hint="--isotropic")
    if _is_nifti(src):
        volume = read_nifti(src)
    else:
        volume = read_dicom_series(src, series_uid=series_uid).volume
    if isotropic is not None:
        volume = resample_to_spacing(volume, isotropic, order=1)
    write_nifti(volume, out)
    typer.echo(
        f"wrote {out} ({' x '.join(str(n) for n in volume.shape)}, "
        f"spacing {_fmt3(volume.spacing)} mm)"
    )
