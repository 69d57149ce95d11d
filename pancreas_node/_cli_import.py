"""``pancreas-node import``: convert an MSD / nnU-Net, DICOM SEG, RTSTRUCT or NIfTI-pairs
dataset into a training cohort (``docs/importing.md``).

Nothing printed here names a patient: lines carry case ids, counts and file names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from db import RegistryBridge, load_registry_config
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from training.importers import (
    DEFAULT_IMAGE_GLOB,
    DEFAULT_LABEL_GLOB,
    FORMATS,
    ImportedCase,
    LabelMapping,
    example_mappings,
    load_mapping,
    read_clinical_csv,
    read_dicom_seg,
    read_msd,
    read_nifti_pairs,
    read_rtstruct,
    write_cohort,
)

__all__ = ["import_command"]


def _cases(
    kind: str,
    source: Path,
    mapping: LabelMapping,
    case_id: str | None,
    image_glob: str,
    label_glob: str,
) -> Iterator[ImportedCase]:
    if case_id is not None and kind in ("msd", "nifti"):
        raise ValueError("--case-id applies to DICOM sources; MSD and NIfTI cases keep their names")
    if kind == "msd":
        return read_msd(source, mapping)
    if kind == "nifti":
        return read_nifti_pairs(source, mapping, image_glob, label_glob)
    if kind == "dicom-seg":
        return read_dicom_seg(source, mapping, case_id)
    return read_rtstruct(source, mapping, case_id)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format(value, ".10g")


def _study_date(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


class _Clinical:
    """A clinical CSV's rows, then a registry's values for the cells the CSV leaves empty."""

    def __init__(self, csv_rows: Mapping[str, Mapping[str, str]], bridge: RegistryBridge | None):
        self.csv_rows = csv_rows
        self.bridge = bridge
        self.statuses: dict[str, int] = {}

    def __call__(self, case: ImportedCase) -> Mapping[str, str]:
        values = {k: v for k, v in self.csv_rows.get(case.case_id, {}).items() if v}
        if self.bridge is not None:
            result = self.bridge.lookup_study(
                patient_id=case.registry_key or case.case_id,
                accession_number=None,
                study_date=_study_date(case.study_date),
            )
            status = result.status.value
            self.statuses[status] = self.statuses.get(status, 0) + 1
            for spec in CLINICAL_VARIABLES:
                found = result.variables.values[spec.name]
                if spec.name not in values and found is not None:
                    values[spec.name] = _number(found)
        return values


def import_command(
    kind: Annotated[str, typer.Option("--format", help=f"Source format: {', '.join(FORMATS)}.")],
    source: Annotated[
        Path,
        typer.Option(
            "--source",
            help="The dataset folder (msd: holds dataset.json; dicom-seg / rtstruct: one case"
            " folder or a folder of case folders; nifti: images and labels).",
        ),
    ],
    mapping: Annotated[
        str,
        typer.Option(
            "--mapping",
            help="Label mapping TOML, or a shipped example's name:"
            f" {', '.join(sorted(example_mappings()))}.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Cohort folder to write (new or empty).")],
    case_id: Annotated[
        str | None,
        typer.Option(
            "--case-id",
            help="Case id of a one-case DICOM source [case-0001, case-0002, ... in folder order].",
        ),
    ] = None,
    image_glob: Annotated[
        str, typer.Option("--image-glob", help="nifti: images, one '*' = the case id.")
    ] = DEFAULT_IMAGE_GLOB,
    label_glob: Annotated[
        str, typer.Option("--label-glob", help="nifti: label maps, one '*' = the case id.")
    ] = DEFAULT_LABEL_GLOB,
    clinical: Annotated[
        Path | None,
        typer.Option(
            "--clinical",
            help="CSV with patient_id (the case ids) and any of the 17 clinical variables"
            " (and nccn_label); other cells stay empty.",
        ),
    ] = None,
    registry_config: Annotated[
        Path | None,
        typer.Option(
            "--registry-config",
            help="Registry mapping TOML (as for `registry lookup`): fills the clinical cells"
            " the --clinical CSV leaves empty, looked up by the DICOM PatientID (DICOM"
            " sources) or the case id, never written.",
        ),
    ] = None,
) -> None:
    """Import a labelled dataset as a training cohort (CT, 16-label map, truth.csv labelled)."""
    if kind not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {kind!r}")
    if not source.is_dir():
        raise ValueError(f"--source {source} is not a folder")
    label_mapping = load_mapping(mapping)
    rows = read_clinical_csv(clinical) if clinical is not None else {}
    bridge = RegistryBridge(load_registry_config(registry_config)) if registry_config else None
    lookup = _Clinical(rows, bridge)
    err = Console(stderr=True, highlight=False)

    def progress(case: ImportedCase) -> None:
        err.print(f"imported {case.case_id}: {';'.join(case.labelled) or '(nothing labelled)'}")

    try:
        summary = write_cohort(
            out,
            _cases(kind, source, label_mapping, case_id, image_glob, label_glob),
            import_source=kind,
            source_name=source.resolve().name,
            mapping=label_mapping,
            clinical=lookup if (rows or bridge is not None) else None,
            on_case=progress,
        )
    finally:
        if bridge is not None:
            bridge.close()
    _report(summary.cases, summary.labelled_counts, summary.tumor_cases, lookup, rows)
    if summary.skipped:
        err.print(
            f"skipped {len(summary.skipped)} cases the mapping maps nothing of:"
            f" {', '.join(summary.skipped)}"
        )
    typer.echo(f"wrote {len(summary.cases)} cases to {out} (format {kind})")


def _report(
    cases: tuple[str, ...],
    counts: Mapping[str, int],
    tumor_cases: int,
    lookup: _Clinical,
    rows: Mapping[str, Mapping[str, str]],
) -> None:
    console = Console(highlight=False)
    table = Table("structure", "cases labelled")
    for name, count in counts.items():
        table.add_row(name, f"{count} / {len(cases)}")
    console.print(table)
    console.print(f"cases with tumor voxels: {tumor_cases}")
    if rows:
        matched = sum(case in rows for case in cases)
        console.print(f"clinical CSV rows matched: {matched} / {len(cases)}")
    for status, count in sorted(lookup.statuses.items()):
        console.print(f"registry {status}: {count}")
