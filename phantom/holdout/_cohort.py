"""Write a held-out cohort in the layout of ``pancreas-node phantom``.

``<out>/clinical.csv`` and ``<out>/truth.csv`` (the training generator's columns, then
``has_tumor``, ``tumor_attenuation`` (tumor minus pancreas HU), ``tumor_shape`` (``round`` or
``lobulated``), ``contrast_phase``, ``variant`` (empty, or ``long-celiac``) and ``generator``
= ``holdout``, the conventions of the wide-variation generator, then ``n_status``, with lymph
nodes on ``node_count`` and ``positive_nodes``, and the follow-up columns
:data:`phantom.FOLLOW_UP_TRUTH_COLUMNS`), and per patient ``<out>/<patient_id>/dicom/*.dcm``,
``image.nii.gz`` and ``label.nii.gz`` (the NIfTI files hold the DICOM voxels, canonical RAS+
by flips only), with lymph nodes on also ``organs.nii.gz``, ``nodes.nii.gz`` and
``lymph_nodes.json`` (the training generator's files, same meaning; ``docs/lymph_nodes.md``).
For a tumor-free patient ``nccn_label``, ``rule_category`` and the contact angles are empty,
``tumor_location`` is ``none``, ``tumor_volume_ml`` is 0 and the tumor's own cells are empty.

With lymph nodes on (the default), ``n_status`` is 1 exactly when a positive node was placed.
With them off, a tumor patient gets a hidden registry N status instead, N+ with probability
``0.25 + 0.2 * rule_category`` (its own ``registry`` stream; the CT does not show it). Either
way every tumor patient's overall survival follows the training generator's
:class:`phantom.HazardModel` on this generator's own truth (tumor volume, rule category,
N status, the true CA 19-9 and age drawn for ``clinical.csv`` before cells are blanked), from
its own ``follow_up`` stream. Tumor-free patients are N0 with empty follow-up.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.parallel import ordered_map
from inference.volume import LPS_TO_RAS, Volume, to_canonical, write_nifti
from pancreas_contracts.clinical import CLINICAL_VARIABLES, VariableKind
from pancreas_contracts.lymph_nodes import LYMPH_NODES_FILE, NODES_FILE, ORGANS_FILE
from pancreas_contracts.result import KEY_VESSELS
from phantom import CLINICAL_COLUMNS, FOLLOW_UP_TRUTH_COLUMNS, TRUTH_COLUMNS, follow_up_cells
from phantom.holdout._dicom import SeriesIdentity, holdout_uid, write_ct_series
from phantom.holdout._patient import (
    HoldoutOptions,
    HoldoutPatient,
    make_patient,
    stream,
    tumor_targets,
)
from phantom.holdout._raster import RenderedScan

__all__ = [
    "HOLDOUT_TRUTH_COLUMNS",
    "HoldoutCohort",
    "HoldoutRecord",
    "generate_holdout_cohort",
    "holdout_truth_columns",
    "scan_volumes",
]

#: ``truth.csv``'s node columns with lymph nodes on (the training generator's names).
NODE_COUNT_COLUMNS: tuple[str, ...] = ("node_count", "positive_nodes")
_BASE_COLUMNS: tuple[str, ...] = (
    *TRUTH_COLUMNS,
    "has_tumor",
    "tumor_attenuation",
    "tumor_shape",
    "contrast_phase",
    "variant",
    "generator",
    "n_status",
)
#: ``truth.csv``'s columns with the default options (lymph nodes on).
HOLDOUT_TRUTH_COLUMNS: tuple[str, ...] = (
    *_BASE_COLUMNS,
    *NODE_COUNT_COLUMNS,
    *FOLLOW_UP_TRUTH_COLUMNS,
)
_NODE_FILES = (ORGANS_FILE, NODES_FILE, LYMPH_NODES_FILE)
#: P(registry N+) of a tumor patient: intercept and per NCCN rule category.
REGISTRY_N_MODEL = (0.25, 0.2)
Progress = Callable[[int, int], None]


def holdout_truth_columns(options: HoldoutOptions) -> tuple[str, ...]:
    """``truth.csv``'s columns: without the node counts when lymph nodes are off."""
    if options.lymph_nodes:
        return HOLDOUT_TRUTH_COLUMNS
    return (*_BASE_COLUMNS, *FOLLOW_UP_TRUTH_COLUMNS)


@dataclass(frozen=True)
class HoldoutRecord:
    """One written patient: where its files are and its ``truth.csv`` row.

    ``node_files`` are ``organs.nii.gz``, ``nodes.nii.gz`` and ``lymph_nodes.json`` (empty
    with lymph nodes off).
    """

    patient_id: str
    dicom: tuple[Path, ...]
    image: Path
    label: Path
    truth: Mapping[str, str]
    node_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class HoldoutCohort:
    """A written held-out cohort."""

    out: Path
    records: tuple[HoldoutRecord, ...]

    def __len__(self) -> int:
        return len(self.records)


def _grid_volume(scan: RenderedScan, array: np.ndarray) -> Volume:
    """A ``[k, r, c]`` array on the scan's grid as written to NIfTI, canonical RAS+."""
    (x0, y0, z0), (dx, dy, dz) = scan.grid.origin, scan.grid.spacing
    lps = np.array([[dx, 0, 0, x0], [0, dy, 0, y0], [0, 0, dz, z0], [0, 0, 0, 1]], dtype=float)
    return to_canonical(Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), LPS_TO_RAS @ lps))


def scan_volumes(scan: RenderedScan) -> tuple[Volume, Volume]:
    """Image (int16 HU) and labels (uint8) as written to NIfTI, canonical RAS+."""
    return _grid_volume(scan, scan.hu), _grid_volume(scan, scan.labels)


def write_node_files(patient: HoldoutPatient, root: Path) -> tuple[Path, ...]:
    """Write the patient's lymph-node files into ``root``, or remove stale ones (nodes off).

    Returns
    -------
    tuple of Path
        ``organs.nii.gz``, ``nodes.nii.gz`` and ``lymph_nodes.json``; empty with nodes off.
    """
    scan = patient.scan
    if patient.nodes is None or scan.organs is None or scan.nodes is None:
        for name in _NODE_FILES:
            (root / name).unlink(missing_ok=True)
        return ()
    paths = tuple(root / name for name in _NODE_FILES)
    write_nifti(_grid_volume(scan, scan.organs), paths[0])
    write_nifti(_grid_volume(scan, scan.nodes), paths[1])
    document = [node.model_dump(mode="json") for node in patient.nodes]
    paths[2].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return paths


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * math.exp(rng.normal(0.0, sigma)))


def _clinical_values(rng: np.random.Generator, patient: HoldoutPatient) -> dict[str, float]:
    """The 17 variables from this generator's own, simple distributions."""
    category = -1 if patient.rule_category is None else patient.rule_category
    jaundice = patient.location in ("head", "uncinate")
    diabetes = float(rng.random() < 0.3)
    baseline = _lognormal(rng, (15.0, 90.0, 260.0, 650.0)[category + 1], 1.1)
    neo_p = ((1.0, 0, 0), (0.8, 0.15, 0.05), (0.2, 0.6, 0.2), (0.1, 0.55, 0.35))[category + 1]
    neoadjuvant = float(rng.choice(3, p=neo_p))
    values = {
        "age": float(np.clip(round(rng.normal(67.0, 10.0)), 30, 92)),
        "sex": float(rng.random() < 0.5),
        "bmi": round(float(np.clip(rng.normal(26.0, 4.0), 15.0, 48.0)), 1),
        "cci": float(min(14, 2 + rng.poisson(2.0))),
        "asa": float(1 + rng.choice(4, p=[0.05, 0.45, 0.42, 0.08])),
        "diabetes": diabetes,
        "nicotine": float(rng.random() < 0.25),
        "alcohol": float(rng.random() < 0.2),
        "ca19_9_baseline": round(min(baseline, 150000.0), 1),
        "cea": round(_lognormal(rng, 3.0 + 2.0 * max(category, 0), 0.7), 2),
        "glucose": round(float(np.clip(rng.normal(6.0 + 2.5 * diabetes, 1.2), 2.5, 30)), 1),
        "hba1c": round(float(np.clip(rng.normal(37.0 + 16.0 * diabetes, 6.0), 20, 150)), 0),
        "bilirubin": round(_lognormal(rng, 70.0 if jaundice else 11.0, 0.6), 1),
        "grade": float(1 + rng.choice(3, p=[0.15, 0.55, 0.3])),
        "neoadjuvant": neoadjuvant,
    }
    post = values["ca19_9_baseline"] * math.exp(rng.normal(-0.8, 0.7))
    values["ca19_9_post"] = round(post, 1)
    values["ca19_9_delta"] = round(values["ca19_9_post"] - values["ca19_9_baseline"], 1)
    return values


def _node_cells(patient: HoldoutPatient) -> dict[str, str]:
    """``node_count`` and ``positive_nodes`` (nothing with lymph nodes off)."""
    if patient.nodes is None:
        return {}
    positive = sum(node.metastatic for node in patient.nodes)
    return {"node_count": str(len(patient.nodes)), "positive_nodes": str(positive)}


def follow_up_row(seed: int, patient: HoldoutPatient) -> dict[str, str]:
    """``n_status``, the node counts and the follow-up cells of one patient.

    With lymph nodes on, the N status is the scan's (1 exactly when a positive node was
    placed); off, a registry N status from the patient's own ``registry`` stream. The
    follow-up draw comes from its own ``follow_up`` stream, so neither changes another draw;
    CA 19-9 and age are the true values of ``clinical.csv`` (redrawn from the ``clinical``
    stream, which draws them first).
    """
    category = patient.rule_category
    nodes = _node_cells(patient)
    if patient.tumor is None or category is None:
        cells = follow_up_cells(None, stream(seed, patient.index, "follow_up"))
        return {"n_status": "0", **nodes, **cells}
    if patient.nodes is not None:
        n_status = int(any(node.metastatic for node in patient.nodes))
    else:
        intercept, per_category = REGISTRY_N_MODEL
        p_positive = intercept + per_category * category
        n_status = int(stream(seed, patient.index, "registry").random() < p_positive)
    truth = _clinical_values(stream(seed, patient.index, "clinical"), patient)
    covariates = (
        round(patient.scan.tumor_volume_ml, 4), category, n_status,
        truth["ca19_9_baseline"], truth["age"],
    )  # fmt: skip
    cells = follow_up_cells(covariates, stream(seed, patient.index, "follow_up"))
    return {"n_status": str(n_status), **nodes, **cells}


def clinical_row(seed: int, patient: HoldoutPatient) -> dict[str, str]:
    """One ``clinical.csv`` row (about 10 % of the cells missing at random)."""
    rng = stream(seed, patient.index, "clinical")
    values = _clinical_values(rng, patient)
    row = {"patient_id": patient.patient_id}
    for variable in CLINICAL_VARIABLES:
        value = values[variable.name]
        missing = rng.random() < (0.03 if variable.name in ("age", "sex") else 0.1)
        no_therapy = values["neoadjuvant"] == 0 and variable.name.startswith("ca19_9_")
        if missing or (no_therapy and variable.name != "ca19_9_baseline"):
            row[variable.name] = ""
        elif variable.kind is VariableKind.CATEGORICAL:
            row[variable.name] = str(int(value))
        else:
            row[variable.name] = format(value, ".10g")
    if patient.tumor is None:
        row["grade"] = ""
    return row


def _identity(seed: int, patient: HoldoutPatient, sex: str) -> SeriesIdentity:
    text = f"{seed}:{patient.index}"
    rng = stream(seed, patient.index, "files")
    acquired = dt.datetime(2025, 1, 1, 8) + dt.timedelta(minutes=int(rng.integers(0, 500000)))
    born = acquired.date() - dt.timedelta(days=int(rng.integers(40 * 365, 85 * 365)))
    return SeriesIdentity(
        patient_id=patient.patient_id,
        patient_name=f"Holdout^{patient.index + 1:04d}",
        birth_date=born.strftime("%Y%m%d"),
        sex=sex,
        study_uid=holdout_uid(text, "study"),
        series_uid=holdout_uid(text, "series"),
        frame_uid=holdout_uid(text, "frame"),
        acquired=acquired,
        position=patient.position,
        seed_text=text,
    )


def _file_names(count: int, shuffle: bool, rng: np.random.Generator) -> list[str]:
    """Instance file names; shuffled names are random hexadecimal, in no slice order."""
    if not shuffle:
        return [f"CT{i + 1:04d}.dcm" for i in range(count)]
    numbers = rng.choice(16**8, size=count, replace=False)
    return [f"{int(n):08x}.dcm" for n in numbers]


def _number(value: float) -> str:
    return format(value, ".10g")


def truth_row(patient: HoldoutPatient, series_uid: str, study_uid: str) -> dict[str, str]:
    """One ``truth.csv`` row (the node and follow-up cells: :func:`follow_up_row`)."""
    grid, tumor = patient.scan.grid, patient.tumor
    row = dict.fromkeys(_BASE_COLUMNS, "")
    row.update(
        patient_id=patient.patient_id,
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=series_uid,
        label_noise_flipped="0",
        biological_borderline="0",
        tumor_location=patient.location,
        tumor_volume_ml=_number(round(patient.scan.tumor_volume_ml, 4)),
        pixel_spacing=_number(grid.spacing[0]),
        slice_thickness=_number(grid.spacing[2]),
        patient_position=patient.position,
        has_tumor=str(int(tumor is not None)),
        tumor_attenuation=(
            ""
            if patient.tumor_contrast_hu is None
            else _number(round(patient.tumor_contrast_hu, 1))
        ),
        tumor_shape="" if tumor is None else tumor.shape,
        contrast_phase="portal-venous",
        variant="" if patient.anatomy.variant == "standard" else patient.anatomy.variant,
        generator="holdout",
    )
    if patient.angles is not None and patient.rule_category is not None:
        row.update({f"contact_{v}": _number(patient.angles[v]) for v in KEY_VESSELS})
        row["rule_category"] = row["nccn_label"] = str(patient.rule_category)
    return row


def _write_one(
    job: tuple[int, int, int | None], out: Path, options: HoldoutOptions
) -> tuple[HoldoutRecord, dict[str, str]]:
    """Render and write one patient (a worker process redraws it from the seed)."""
    seed, index, target = job
    patient = make_patient(seed, index, target, options)
    clinical = clinical_row(seed, patient)
    ident = _identity(seed, patient, "M" if clinical["sex"] == "1" else "F")
    root = out / patient.patient_id
    dicom_dir = root / "dicom"
    if dicom_dir.is_dir():
        for stale in dicom_dir.glob("*.dcm"):
            stale.unlink()
    names = _file_names(patient.scan.grid.shape[0], options.shuffle, stream(seed, index, "files"))
    paths = write_ct_series(
        patient.scan.hu, patient.scan.grid, ident, dicom_dir, patient.transfer_syntax, names
    )
    image, label = scan_volumes(patient.scan)
    write_nifti(image, root / "image.nii.gz")
    write_nifti(label, root / "label.nii.gz")
    node_files = write_node_files(patient, root)
    truth = {
        **truth_row(patient, ident.series_uid, ident.study_uid),
        **follow_up_row(seed, patient),
    }
    record = HoldoutRecord(
        patient.patient_id,
        tuple(paths),
        root / "image.nii.gz",
        root / "label.nii.gz",
        truth,
        node_files,
    )
    return record, clinical


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def _prepare(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    earlier = (out / "truth.csv").exists() or (out / "clinical.csv").exists()
    if any(out.iterdir()) and not earlier:
        raise ValueError(f"output directory {out} is not empty and holds no phantom cohort")


def generate_holdout_cohort(
    out: Path,
    n: int,
    seed: int,
    options: HoldoutOptions | None = None,
    progress: Progress | None = None,
    *,
    workers: int = 1,
) -> HoldoutCohort:
    """Generate and write ``n`` patients of the held-out generator into ``out``.

    For evaluation only: never train on these (they measure generalisation to a generator
    the model has not seen).

    Parameters
    ----------
    out
        Output directory (created; empty or holding an earlier cohort).
    n
        Number of patients, at least 1.
    seed
        Cohort seed: the same seed and options give identical files.
    options
        Scan geometry and mix (defaults: :class:`HoldoutOptions`).
    progress
        Called with ``(0, n)`` once the arguments are checked, then after each patient.
    workers
        Patients rendered in this many processes (same files).

    Returns
    -------
    HoldoutCohort
        The written patients in patient-ID order.

    Raises
    ------
    ValueError
        On a bad argument or a non-empty foreign ``out``.
    """
    if n < 1 or workers < 1:
        raise ValueError(f"need at least 1 patient and 1 worker, got {n} and {workers}")
    opts = options or HoldoutOptions()
    _prepare(out)
    if progress is not None:
        progress(0, n)
    jobs = [(seed, i, t) for i, t in enumerate(tumor_targets(seed, n, opts))]
    records: list[HoldoutRecord] = []
    clinical: list[dict[str, str]] = []
    for done, (record, row) in enumerate(
        ordered_map(_write_one, jobs, out, opts, workers=workers), start=1
    ):
        records.append(record)
        clinical.append(row)
        if progress is not None:
            progress(done, n)
    _write_csv(out / "clinical.csv", CLINICAL_COLUMNS, clinical)
    _write_csv(out / "truth.csv", holdout_truth_columns(opts), [r.truth for r in records])
    return HoldoutCohort(out, tuple(records))
