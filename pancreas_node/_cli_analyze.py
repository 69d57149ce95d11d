"""``pancreas-node analyze``: the analysis offline, without the node.

Reads a DICOM series folder or a NIfTI file (and optionally one clinical row), runs the model
bundle and writes ``seg.dcm``, ``sr.dcm``, ``report.dcm`` (+ ``report.pdf``) and
``result.json`` to ``--out``. torch is imported only when the command runs.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated

import typer

from pancreas_contracts import load_settings
from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables

__all__ = ["DEMO_BUNDLE", "analyze_command", "read_clinical_row", "spread_text"]

#: The demo bundle's place in a checkout (used when no bundle is configured).
DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "demo"


def spread_text(uncertainty: float, members: int, passes: int | None = None) -> str:
    """The category's uncertainty as printed: the ensemble spread, or why there is none.

    A one-model bundle has no spread between models: its uncertainty is 0 by construction,
    and "spread 0.000" would read as a confident ensemble.

    Parameters
    ----------
    uncertainty
        ``AnalysisResult.category.uncertainty``.
    members
        How many models the bundle's ensemble has.
    passes
        ``AnalysisResult.category.passes``: test-time flip passes per model, ``None`` without.
    """
    if passes is not None:
        return f"spread {uncertainty:.3f} over {members} model(s) x {passes} flip passes"
    if members <= 1:
        return "no ensemble spread (single model)"
    return f"ensemble spread {uncertainty:.3f} over {members} models"


def read_clinical_row(path: Path) -> tuple[ClinicalVariables, tuple[str, ...]]:
    """One patient's clinical variables from a CSV file (header + one row; empty = missing).

    Columns are the variable names of :data:`pancreas_contracts.clinical.CLINICAL_VARIABLES`
    (other columns, e.g. ``patient_id``, are ignored). Unparsable or implausible values are
    treated as missing, with a warning naming the variable.

    Raises
    ------
    ValueError
        If the file has no data row or more than one.
    OSError
        If it cannot be read.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != 1:
        raise ValueError(f"{path.name}: expected one data row, found {len(rows)}")
    row = rows[0]
    values: dict[str, float | None] = {}
    warnings: list[str] = []
    for variable in CLINICAL_VARIABLES:
        cell = (row.get(variable.name) or "").strip()
        if not cell:
            values[variable.name] = None
            continue
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if variable.is_valid(value):
            values[variable.name] = value
        else:
            values[variable.name] = None
            warnings.append(f"clinical {variable.name}: unusable value treated as missing")
    return ClinicalVariables(values), tuple(warnings)


def _bundle_path(bundle: Path | None, config: Path | None) -> Path:
    if bundle is not None:
        return bundle
    configured = load_settings(config).bundle_path
    if configured is not None:
        return configured
    if (DEMO_BUNDLE / "bundle.json").is_file():
        return DEMO_BUNDLE
    raise ValueError("no model bundle: pass --bundle DIR or set PANCREAS_AI_BUNDLE_PATH")


def analyze_command(
    series: Annotated[
        Path, typer.Argument(help="A DICOM series folder or a NIfTI file (.nii, .nii.gz).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    clinical: Annotated[
        Path | None,
        typer.Option("--clinical", help="CSV with a header and one row of clinical variables."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Model bundle directory (default: settings, bundles/demo)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    config: Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")] = None,
) -> None:
    """Analyse one CT and write DICOM-SEG, TID 1500 SR, PDF report and result.json."""
    if not series.exists():
        raise ValueError(f"{series} does not exist")
    variables, warnings = (None, ()) if clinical is None else read_clinical_row(clinical)
    from inference.analysis import (  # torch only here
        LN_FAILED,
        Analyzer,
        LymphNodeAssessor,
        PdacDetector,
        SurvivalAssessor,
        resolve_device,
    )

    settings = load_settings(config)  # PANCREAS_AI_* or the TOML file
    detector = None
    if settings.detection_bundle_path is not None:  # the PDAC detection gate (issue 23)
        detector = PdacDetector(
            settings.detection_bundle_path, resolve_device(device), settings.detection_threshold
        )
    lymph_nodes = None
    if settings.lymph_node_bundle_path is not None:  # the lymph-node model (issue 24)
        lymph_nodes = LymphNodeAssessor(settings.lymph_node_bundle_path, resolve_device(device))
    survival = None
    if settings.survival_bundle_path is not None:  # the survival model (issue 25)
        survival = SurvivalAssessor(settings.survival_bundle_path, resolve_device(device))
    analyzer = Analyzer(
        _bundle_path(bundle, config),
        device,
        tta_flips=settings.tta_flips,
        parallel_writing=settings.parallel_writing,
        detector=detector,
        lymph_nodes=lymph_nodes,
        survival=survival,
    )
    try:
        output = analyzer.analyze(
            series,
            variables,
            out_dir=out,
            registry_status="not_configured" if clinical is None else "file",
            warnings=warnings,
        )
    finally:
        analyzer.close()
    result = output.result
    if result.detection is not None:
        agreement = result.detection.agreement
        disagree = (
            "" if agreement in (None, "agree") else f" (staging segmentation disagree: {agreement})"
        )
        typer.echo(f"detection: {result.detection.describe()}{disagree}")
    if result.category is None:  # no tumor, no PDAC, or withheld out of the training domain
        typer.echo(f"category: none ({result.no_category_note()})")
    else:
        probs = ", ".join(f"{p:.2f}" for p in result.category.probabilities)
        members = len(analyzer.bundle.members)
        spread = spread_text(result.category.uncertainty, members, result.category.passes)
        typer.echo(f"category: {result.category.label} (p = {probs}; {spread})")
    typer.echo(
        f"rule category: {result.rule_category or 'none'}; disagreement: {result.disagreement}"
    )
    angles = ", ".join(
        f"{k} {'-' if v is None else f'{v:.0f}'}"
        for k, v in result.measurements.contact_deg.items()
    )
    typer.echo(f"contact (deg): {angles}")
    if result.lymph_nodes is not None:
        typer.echo(f"lymph nodes: {result.lymph_nodes.describe()}")
    elif lymph_nodes is not None:  # the model failed; its warning says why
        failed = [w for w in result.warnings if w.startswith(LN_FAILED)]
        typer.echo(f"lymph nodes: not assessed ({failed[0] if failed else 'no answer'})")
    if result.prognosis is not None:
        typer.echo(f"prognosis: {result.prognosis.describe()}")
    elif survival is not None:  # skipped or failed; the note says why
        why = [w for w in result.warnings if "survival" in w]
        typer.echo(f"prognosis: none ({why[0] if why else 'no answer'})")
    if result.domain is not None:
        typer.echo(f"domain: {'; '.join((result.domain.grade, *result.domain.reasons))}")
    typer.echo(
        "clinical: "
        + (
            "knocked out"
            if result.clinical.knocked_out
            else f"{len(result.clinical.used)} used, {len(result.clinical.imputed)} imputed"
        )
    )
    typer.echo("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items()))
    for path in (*output.files, output.result_json):
        typer.echo(f"wrote {path}")
    typer.echo(result.notice)
