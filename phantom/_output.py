"""Write a phantom cohort: DICOM series, NIfTI image and labels, clinical.csv and truth.csv.

The NIfTI files hold the same voxels as the DICOM series (HU as int16, labels as uint8) in the
same world coordinates, reoriented to canonical RAS+ by flips only. The wide modes also write
each patient's lesions: ``lesions.nii.gz`` (instance mask, uint8, 0 background, one id 1..K
per lesion, on the label map's grid) and ``lesions.json`` (:data:`LESIONS_JSON_VERSION`; every
lesion's id, kind, location, drawn and equivalent diameter, centre and box in patient LPS mm,
voxels, volume and contrast), and ``truth.csv`` gains the patient's main lesion (the PDAC, else
the largest other lesion).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import numpy.typing as npt
from pydicom.pixels.encoders.base import get_encoder

from inference.parallel import ordered_map
from inference.volume import LPS_TO_RAS, Volume, to_canonical, write_nifti
from pancreas_contracts.clinical import CLINICAL_VARIABLES, VariableKind
from phantom._cohort import (
    PatientPlan,
    cohort_targets,
    files_stream,
    follow_up_stream,
    header_stream,
    plan_cohort,
    plan_patient,
    render_patient,
)
from phantom._dicom_writer import (
    TRANSFER_SYNTAXES,
    SeriesHeader,
    file_names,
    write_series,
)
from phantom._follow_up import FOLLOW_UP_TRUTH_COLUMNS, follow_up_cells
from phantom._lesions import Lesion
from phantom._node_output import NODE_COLUMNS, node_cells, write_node_files
from phantom._options import PhantomOptions
from phantom._render import PhantomScan
from phantom._tumor import KEY_VESSELS

#: The wide modes' lesion columns of ``truth.csv`` (the patient's main lesion; LPS mm).
LESION_COLUMNS: tuple[str, ...] = (
    "lesion_kind", "negative_kind", "lesion_location", "lesion_diameter_mm",
    "lesion_center_x_mm", "lesion_center_y_mm", "lesion_center_z_mm",
    "lesion_bbox_min_x_mm", "lesion_bbox_min_y_mm", "lesion_bbox_min_z_mm",
    "lesion_bbox_max_x_mm", "lesion_bbox_max_y_mm", "lesion_bbox_max_z_mm",
    "lesion_count", "pdac_small", "pdac_iso",
)  # fmt: skip
LESIONS_JSON_VERSION = 1
TRUTH_COLUMNS: tuple[str, ...] = (
    "patient_id", "StudyInstanceUID", "SeriesInstanceUID",
    *(f"contact_{v}" for v in KEY_VESSELS),
    "rule_category", "nccn_label", "label_noise_flipped", "biological_borderline",
    "tumor_location", "tumor_volume_ml",
    "pixel_spacing", "slice_thickness", "patient_position",
)  # fmt: skip
#: ``truth.csv`` of the wide modes: the standard columns, then what the variation drew.
WIDE_TRUTH_COLUMNS: tuple[str, ...] = (
    *TRUTH_COLUMNS,
    "has_tumor", "tumor_attenuation", "tumor_shape", "contrast_phase", "variant", "generator",
    *LESION_COLUMNS,
)  # fmt: skip
CLINICAL_COLUMNS: tuple[str, ...] = ("patient_id", *(v.name for v in CLINICAL_VARIABLES))

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PatientFiles:
    """Where one patient's outputs were written (DICOM files in instance order).

    ``lesions`` (instance mask) and ``lesions_json`` are written in the wide modes only;
    ``organs``, ``nodes`` and ``lymph_nodes_json`` with lymph nodes on only.
    """

    dicom_dir: Path
    dicom: tuple[Path, ...]
    image: Path
    label: Path
    lesions: Path | None = None
    lesions_json: Path | None = None
    organs: Path | None = None
    nodes: Path | None = None
    lymph_nodes_json: Path | None = None


@dataclass(frozen=True)
class PhantomPatient:
    """One written phantom patient: its plan, its files and its measured tumor volume."""

    plan: PatientPlan
    files: PatientFiles
    tumor_volume_ml: float

    @property
    def patient_id(self) -> str:
        """Patient ID (also the folder name)."""
        return self.plan.patient_id

    @property
    def study_uid(self) -> str:
        """Study Instance UID."""
        return self.plan.study_uid

    @property
    def series_uid(self) -> str:
        """Series Instance UID."""
        return self.plan.series_uid

    @property
    def dicom_dir(self) -> Path:
        """Folder holding the DICOM series."""
        return self.files.dicom_dir


@dataclass(frozen=True)
class PhantomCohort(Sequence[PhantomPatient]):
    """A written cohort: a sequence of :class:`PhantomPatient` plus where it lies."""

    out: Path
    patients: tuple[PhantomPatient, ...]

    @overload
    def __getitem__(self, index: int) -> PhantomPatient: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PhantomPatient]: ...

    def __getitem__(self, index: int | slice) -> PhantomPatient | Sequence[PhantomPatient]:
        return self.patients[index]

    def __len__(self) -> int:
        return len(self.patients)


def scan_volumes(scan: PhantomScan) -> tuple[Volume, Volume]:
    """The image and label volumes exactly as written to NIfTI.

    Returns
    -------
    tuple of Volume
        Image (int16 HU) and labels (uint8), canonical RAS+ (flips of the DICOM grid only).
    """
    return _volume(scan, scan.hu), _volume(scan, scan.labels)


def lesion_volume(scan: PhantomScan) -> Volume | None:
    """The lesion instance mask exactly as written to ``lesions.nii.gz`` (``None``: standard)."""
    return None if scan.lesion_mask is None else _volume(scan, scan.lesion_mask)


def _volume(scan: PhantomScan, array: npt.NDArray[np.generic]) -> Volume:
    (x0, y0, z0), (dx, dy, dz) = scan.grid.origin, scan.grid.spacing
    lps = np.array([[dx, 0, 0, x0], [0, dy, 0, y0], [0, 0, dz, z0], [0, 0, 0, 1]], dtype=np.float64)
    # Volume index (i, j, k) = (column, row, slice), i.e. the transpose of the [k, r, c] array.
    return to_canonical(Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), LPS_TO_RAS @ lps))


def series_header(plan: PatientPlan) -> SeriesHeader:
    """DICOM patient/study/series attributes of a plan (true values, never blanked)."""
    rng = header_stream(plan)
    truth = plan.clinical_truth
    male = truth["sex"] == 1.0
    age = int(truth["age"])
    height = float(rng.normal(1.76 if male else 1.63, 0.06))
    born = plan.acquired.date() - dt.timedelta(days=int(age * 365.25) + int(rng.integers(1, 360)))
    return SeriesHeader(
        patient_id=plan.patient_id,
        patient_name=f"Phantom^{plan.index + 1:04d}",
        birth_date=born.strftime("%Y%m%d"),
        sex="M" if male else "F",
        age_years=age,
        height_m=round(height, 2),
        weight_kg=round(truth["bmi"] * height**2, 1),
        study_uid=plan.study_uid,
        series_uid=plan.series_uid,
        frame_uid=plan.frame_of_reference_uid,
        uid_entropy=plan.uid_entropy,
        acquired=plan.acquired,
        position=plan.patient_position,
        thickness=plan.slice_thickness,
        contrast_phase=(
            plan.variation.contrast_phase if plan.variation is not None else "portal-venous"
        ),
    )


def write_patient(
    plan: PatientPlan, scan: PhantomScan, out: Path, options: PhantomOptions
) -> PatientFiles:
    """Write one patient's DICOM series and NIfTI files under ``out/<patient_id>/``.

    ``options`` gives the transfer syntax and file-name shuffling; the CSV tables are written
    by :func:`generate_cohort` only.

    Stale ``*.dcm`` files of an earlier run in the patient's ``dicom`` folder are removed first,
    so the folder always holds exactly one series.
    """
    root = out / plan.patient_id
    dicom_dir = root / "dicom"
    if dicom_dir.is_dir():
        for stale in dicom_dir.glob("*.dcm"):
            stale.unlink()
    names = file_names(scan.grid.shape[0], options.shuffle, files_stream(plan))
    syntax = TRANSFER_SYNTAXES[options.transfer_syntax]
    paths = write_series(scan, series_header(plan), dicom_dir, syntax, names)
    image, label = scan_volumes(scan)
    write_nifti(image, root / "image.nii.gz")
    write_nifti(label, root / "label.nii.gz")
    files = PatientFiles(dicom_dir, tuple(paths), root / "image.nii.gz", root / "label.nii.gz")
    written = write_node_files(scan, root, lambda array: _volume(scan, array))
    if written:
        files = dataclasses.replace(
            files, organs=written[0], nodes=written[1], lymph_nodes_json=written[2]
        )
    lesions = lesion_volume(scan)
    if lesions is None:
        # An earlier wide-mode run into the same folder must not leave its lesions behind.
        for name in ("lesions.nii.gz", "lesions.json"):
            (root / name).unlink(missing_ok=True)
        return files
    write_nifti(lesions, root / "lesions.nii.gz")
    document = json.dumps(lesions_document(plan, scan), indent=2) + "\n"
    (root / "lesions.json").write_text(document, encoding="utf-8")
    return dataclasses.replace(
        files, lesions=root / "lesions.nii.gz", lesions_json=root / "lesions.json"
    )


def lesions_document(plan: PatientPlan, scan: PhantomScan) -> dict[str, object]:
    """The content of a wide-mode patient's ``lesions.json``."""
    variation = plan.variation
    return {
        "version": LESIONS_JSON_VERSION,
        "patient_id": plan.patient_id,
        "series_instance_uid": plan.series_uid,
        "coordinates": "DICOM patient coordinates (LPS), mm",
        "mask": "lesions.nii.gz",
        "has_pdac": plan.has_tumor,
        "negative_kind": variation.negative_kind if variation is not None else "",
        "lesions": [lesion.as_json() for lesion in scan.lesions],
    }


def _number(value: float) -> str:
    return format(value, ".10g")


def clinical_rows(plans: Sequence[PatientPlan]) -> list[dict[str, str]]:
    """``clinical.csv`` rows: patient_id and the 17 variables (empty cell = missing)."""
    rows = []
    for plan in plans:
        row = {"patient_id": plan.patient_id}
        for variable in CLINICAL_VARIABLES:
            value = plan.clinical.values[variable.name]
            if value is None:
                row[variable.name] = ""
            elif variable.kind is VariableKind.CATEGORICAL:
                row[variable.name] = str(int(value))
            else:
                row[variable.name] = _number(float(value))
        rows.append(row)
    return rows


def truth_row(plan: PatientPlan, scan: PhantomScan, follow_up: bool = False) -> dict[str, str]:
    """One ``truth.csv`` row (:func:`truth_columns`).

    A tumor-free patient leaves ``rule_category``, ``nccn_label`` and ``contact_*`` empty.
    ``follow_up`` adds the :data:`~phantom._follow_up.FOLLOW_UP_TRUTH_COLUMNS` (needs nodes).
    """
    row = {
        "patient_id": plan.patient_id,
        "StudyInstanceUID": plan.study_uid,
        "SeriesInstanceUID": plan.series_uid,
        "rule_category": str(plan.rule_category),
        "nccn_label": str(plan.nccn_label),
        "label_noise_flipped": str(int(plan.label_noise_flipped)),
        "biological_borderline": str(int(plan.biological_borderline)),
        "tumor_location": plan.tumor_location,
        "tumor_volume_ml": _number(scan.tumor_volume_ml),
        "pixel_spacing": _number(plan.pixel_spacing),
        "slice_thickness": _number(plan.slice_thickness),
        "patient_position": plan.patient_position,
    }
    row.update({f"contact_{v}": _number(float(plan.angles[v])) for v in KEY_VESSELS})
    if plan.variation is not None:
        row.update(_wide_cells(plan, scan))
    if plan.nodes is not None:
        row.update(node_cells(scan))
    if follow_up:
        row.update(_follow_up_cells(plan, scan, row))
    return row


def _follow_up_cells(
    plan: PatientPlan, scan: PhantomScan, row: Mapping[str, str]
) -> dict[str, str]:
    """The follow-up cells from the row's own truth and the patient's true clinical values."""
    if not plan.has_tumor:
        return follow_up_cells(None, follow_up_stream(plan))
    if "n_status" not in row:
        raise ValueError("follow-up needs the N status: turn lymph nodes on")
    truth = plan.clinical_truth
    covariates = (
        scan.tumor_volume_ml, plan.rule_category, int(row["n_status"]),
        float(truth["ca19_9_baseline"]), float(truth["age"]),
    )  # fmt: skip
    return follow_up_cells(covariates, follow_up_stream(plan))


def _wide_cells(plan: PatientPlan, scan: PhantomScan) -> dict[str, str]:
    variation = plan.variation
    assert variation is not None
    look = variation.tumor
    attenuation = scan.tumor_attenuation
    cells = {
        "has_tumor": str(int(plan.has_tumor)),
        "tumor_attenuation": "" if attenuation is None else _number(attenuation),
        "tumor_shape": look.shape if look is not None else "",
        "contrast_phase": variation.contrast_phase,
        "variant": variation.body.variant,
        "generator": variation.generator,
    }
    if not plan.has_tumor:
        cells.update({"rule_category": "", "nccn_label": ""})
        cells.update({f"contact_{v}": "" for v in KEY_VESSELS})
    cells.update(lesion_cells(plan, scan))
    return cells


def main_lesion(scan: PhantomScan) -> Lesion | None:
    """The patient's main lesion: the PDAC, else the largest other lesion (``None``: none)."""
    pdac = [lesion for lesion in scan.lesions if lesion.kind == "pdac"]
    others = sorted(scan.lesions, key=lambda lesion: (-lesion.voxels, lesion.id))
    found = pdac or others
    return found[0] if found else None


def lesion_cells(plan: PatientPlan, scan: PhantomScan) -> dict[str, str]:
    """The :data:`LESION_COLUMNS` of a wide-mode patient (centre and box empty: none seen)."""
    variation = plan.variation
    assert variation is not None
    look, main = variation.tumor, main_lesion(scan)
    cells = dict.fromkeys(LESION_COLUMNS, "")
    cells["negative_kind"] = variation.negative_kind
    cells["lesion_count"] = str(len(scan.lesions))
    cells["lesion_kind"] = "pdac" if look is not None else main.kind if main else "none"
    if look is not None:
        cells.update(pdac_small=str(int(look.small)), pdac_iso=str(int(look.iso)))
        cells.update(lesion_location=look.site, lesion_diameter_mm=_number(look.diameter_mm))
    elif main is not None:
        cells.update(lesion_location=main.location, lesion_diameter_mm=_number(main.diameter_mm))
    if main is None or main.kind != cells["lesion_kind"]:
        return cells
    corners = zip("xyz", main.center_lps, main.bbox_min_lps, main.bbox_max_lps, strict=True)
    for axis, center, lo, hi in corners:
        cells[f"lesion_center_{axis}_mm"] = _number(center)
        cells[f"lesion_bbox_min_{axis}_mm"] = _number(lo)
        cells[f"lesion_bbox_max_{axis}_mm"] = _number(hi)
    return cells


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write ``rows`` with a header line (written to a temporary name, then renamed)."""
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def check_encoder(transfer_syntax: str) -> None:
    """Raise ``ValueError`` if the transfer syntax cannot be encoded in this environment."""
    uid = TRANSFER_SYNTAXES[transfer_syntax]
    if not uid.is_compressed:
        return
    if transfer_syntax == "jpeg-lossless":
        return  # encoded by the phantom's own numpy encoder
    encoder = get_encoder(uid)
    if not encoder.is_available:
        missing = "; ".join(encoder.missing_dependencies) or "no plugin"
        raise ValueError(
            f"transfer syntax {transfer_syntax!r} needs an encoder not installed here: {missing}"
        )


def prepare_output(out: Path) -> None:
    """Create ``out`` and make sure it is a writable directory free of foreign files.

    Raises
    ------
    OSError
        If it cannot be created or written.
    ValueError
        If it holds files but no earlier phantom cohort (nothing is overwritten then).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OSError(f"output directory {out} is not writable: {reason}") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise OSError(f"output directory {out} is not writable")
    earlier = any((out / name).exists() for name in ("truth.csv", "clinical.csv"))
    if any(out.iterdir()) and not earlier:
        raise ValueError(f"output directory {out} is not empty and holds no phantom cohort")


def generate_cohort(
    out: Path,
    n: int | None = None,
    seed: int = 0,
    options: PhantomOptions | None = None,
    progress: Progress | None = None,
    *,
    n_patients: int | None = None,
    workers: int = 1,
) -> PhantomCohort:
    """Generate and write a cohort of ``n`` phantom patients into ``out``.

    Parameters
    ----------
    out
        Output directory (created; must be empty or hold an earlier cohort).
    n
        Number of patients, at least 1.
    seed
        Cohort seed: the same seed and options give identical files.
    options
        Generation options (defaults: :class:`PhantomOptions`).
    progress
        Called with ``(0, n)`` once the arguments are checked, then ``(done, n)`` after each
        patient (so a caller can show a progress bar only once the input is known good).
    n_patients
        Alias of ``n`` (give one of the two).
    workers
        Render and write patients in this many processes (the files are the same: every
        patient has its own random streams).

    Returns
    -------
    PhantomCohort
        The written patients, in patient-ID order.

    Raises
    ------
    ValueError
        On invalid arguments or an unavailable encoder.
    OSError
        If ``out`` cannot be written.
    """
    count = _patient_count(n, n_patients)
    opts = options or PhantomOptions()
    check_encoder(opts.transfer_syntax)
    prepare_output(out)
    plans = plan_cohort(count, seed, opts)
    write_csv(out / "clinical.csv", CLINICAL_COLUMNS, clinical_rows(plans))
    if progress is not None:
        progress(0, count)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    truths = []
    patients = []
    targets = cohort_targets(count, seed, opts)
    jobs = [(seed, plan.index, target) for plan, target in zip(plans, targets, strict=True)]
    written = zip(plans, ordered_map(_write_one, jobs, out, opts, workers=workers), strict=True)
    for done, (plan, (files, tumor_ml, truth)) in enumerate(written, start=1):
        patients.append(PhantomPatient(plan, files, tumor_ml))
        truths.append(truth)
        if progress is not None:
            progress(done, count)
    write_csv(out / "truth.csv", truth_columns(opts), truths)
    return PhantomCohort(out, tuple(patients))


def truth_columns(options: PhantomOptions) -> tuple[str, ...]:
    """``truth.csv``'s columns: standard or wide, then nodes' and follow-up's where on."""
    columns = WIDE_TRUTH_COLUMNS if options.wide else TRUTH_COLUMNS
    if options.nodes_on:
        columns = (*columns, *NODE_COLUMNS)
    return (*columns, *FOLLOW_UP_TRUTH_COLUMNS) if options.follow_up_on else columns


def _write_one(
    job: tuple[int, int, int | None], out: Path, opts: PhantomOptions
) -> tuple[PatientFiles, float, dict[str, str]]:
    """Render and write one patient; a worker re-plans it (plans hold unpicklable views)."""
    seed, index, target = job
    plan = plan_patient(seed, index, target, opts)
    scan = render_patient(plan)
    files = write_patient(plan, scan, out, opts)
    return files, scan.tumor_volume_ml, truth_row(plan, scan, opts.follow_up_on)


def _patient_count(n: int | None, n_patients: int | None) -> int:
    if (n is None) == (n_patients is None):
        raise ValueError("give the number of patients once (n or n_patients)")
    count = n if n is not None else n_patients
    assert count is not None
    if count < 1:
        raise ValueError(f"number of patients must be at least 1, got {count}")
    return count
