"""Fixtures shared by the SEG, SR and PDF writer tests (bound explicitly in each module).

Two small phantom studies stand in for an analysed series; their ``label.nii.gz`` stands in for
the predicted segmentation and a hand-made :class:`AnalysisResult` for the analysis:

- ``HFS``: head first, files in instance order, network and rule categories disagree;
- ``FFS``: feet first with the true feet-first orientation (row cosine ``-1, 0, 0``: every
  slice's columns mirrored and ImagePositionPatient moved to match, so the world geometry is
  unchanged), files written in shuffled name order and handed to the writers shuffled.

Each study's SEG, SR and PDF are written once per session (:func:`written`).
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference import DicomVolume, Volume, read_dicom_series, read_nifti
from inference.pdf_report import write_pdf_report
from inference.seg_writer import write_seg
from inference.sr_writer import write_sr
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    KEY_VESSELS,
    NO_TUMOR_NOTE,
    OUT_OF_DOMAIN_NOTE,
    AnalysisResult,
    BundleRef,
    Category,
    ClinicalUse,
    Localisation,
    Measurements,
    SourceSeries,
)
from phantom import PhantomOptions, generate_cohort
from tests.conftest import require_executable

BUNDLE = BundleRef(name="pancreas-ai-phantom", version="0.3.1", sha256="ab" * 32)
CASES = ("HFS", "FFS")


@dataclass(frozen=True)
class WriterCase:
    """One phantom study ready for the writers."""

    name: str
    dicom_dir: Path
    files: tuple[Path, ...]
    label: Volume
    series: DicomVolume
    result: AnalysisResult


@dataclass(frozen=True)
class Written:
    """The three objects written for a case."""

    case: WriterCase
    seg_path: Path
    seg_uid: str
    sr_path: Path
    sr_uid: str
    pdf_dicom_path: Path
    pdf_uid: str
    pdf_path: Path


def _true_feet_first(dicom_dir: Path) -> None:
    """Mirror every slice's columns and set row cosine ``-1, 0, 0`` (same world geometry)."""
    for path in dicom_dir.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        row_cosine = np.asarray(ds.ImageOrientationPatient[:3], dtype=float)
        column_spacing = float(ds.PixelSpacing[1])
        last = np.asarray(ds.ImagePositionPatient, dtype=float) + row_cosine * column_spacing * (
            int(ds.Columns) - 1
        )
        ds.ImagePositionPatient = [f"{v:.4f}" for v in last]
        mirrored = [0.0 - v for v in row_cosine] + [
            float(v) for v in ds.ImageOrientationPatient[3:]
        ]
        ds.ImageOrientationPatient = [f"{v:g}" for v in mirrored]
        ds.PixelData = np.ascontiguousarray(pixels[:, ::-1]).tobytes()
        ds.save_as(path)


def _result(
    case: str,
    series: DicomVolume,
    plan_angles: dict[str, float],
    rule: int,
    tumor_ml: float,
    missing: tuple[str, ...],
) -> AnalysisResult:
    network = (rule + 1) % 3 if case == "HFS" else rule
    probabilities = [0.1, 0.1, 0.1]
    probabilities[network] = 0.8
    return AnalysisResult(
        study_uid=series.study_instance_uid,
        series_uid=series.series_instance_uid,
        job_id=f"job-{case.lower()}",
        bundle=BUNDLE,
        category=Category(
            label=CATEGORY_LABELS[network],
            probabilities=(probabilities[0], probabilities[1], probabilities[2]),
            uncertainty=0.042,
        ),
        rule_category=CATEGORY_LABELS[rule],
        disagreement=network != rule,
        measurements=Measurements(
            tumor_volume_ml=round(tumor_ml, 3),
            tumor_max_diameter_mm=27.25,
            contact_deg=dict(plan_angles),
        ),
        clinical=ClinicalUse(
            used=("age", "sex", "ca19_9"),
            missing=missing,
            imputed=missing[:1],
            knocked_out=False,
            registry_status="found",
        ),
        localisation=Localisation(found=True, confidence=0.91, box_mm=(0, 0, 0, 80, 80, 60)),
        source=SourceSeries(instance_count=len(series.sop_instance_uids), series_version=2),
        warnings=("phantom study: synthetic anatomy",),
    )


def make_case(root: Path, case: str) -> WriterCase:
    """Generate the phantom of ``case`` (``"HFS"`` or ``"FFS"``) under ``root``."""
    options = PhantomOptions(
        fov_mm=(120.0, 120.0, 60.0),
        pixel_spacing=0.9,
        slice_thickness=3.0,
        position=case,
        shuffle=case == "FFS",
    )
    (patient,) = generate_cohort(root, n=1, seed=3 if case == "HFS" else 4, options=options)
    files = sorted(patient.dicom_dir.glob("*.dcm"))
    if case == "FFS":
        _true_feet_first(patient.dicom_dir)
        random.Random(11).shuffle(files)
    series = read_dicom_series(files)
    label = read_nifti(patient.files.label)
    np.testing.assert_allclose(series.volume.affine, label.affine, atol=1e-4)
    plan = patient.plan
    missing = tuple(n for n in ("bilirubin", "albumin") if plan.clinical.values.get(n) is None)
    rule = plan.rule_category
    result = _result(
        case, series, dict(plan.angles), rule, patient.tumor_volume_ml, missing or ("albumin",)
    )
    return WriterCase(case, patient.dicom_dir, tuple(files), label, series, result)


@pytest.fixture(scope="session", params=CASES)
def writer_case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> WriterCase:
    """A phantom study (HFS, then FFS shuffled) with its label map and result."""
    return make_case(tmp_path_factory.mktemp(f"phantom-{request.param}"), str(request.param))


@pytest.fixture(scope="session")
def written(writer_case: WriterCase, tmp_path_factory: pytest.TempPathFactory) -> Written:
    """SEG, SR and PDF of ``writer_case``, written the way the pipeline does."""
    out = tmp_path_factory.mktemp(f"out-{writer_case.name}")
    case = writer_case
    seg_path = out / "seg.dcm"
    seg_uid = write_seg(case.label, list(case.files), case.result, seg_path)
    sr_path = out / "sr.dcm"
    sr_uid = write_sr(case.result, seg_path, list(case.files), sr_path)
    pdf_dicom = out / "report.dcm"
    pdf_path = out / "report.pdf"
    pdf_uid = write_pdf_report(
        case.result, case.series.volume, case.label, case.dicom_dir, pdf_dicom, pdf_path=pdf_path
    )
    return Written(case, seg_path, seg_uid, sr_path, sr_uid, pdf_dicom, pdf_uid, pdf_path)


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's "Error" lines for ``path`` (fails in CI, skips elsewhere without it)."""
    tool = require_executable("dciodvfy")
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if "Error" in line]


def dcmdump_reads(path: Path) -> None:
    """Assert that DCMTK's dcmdump parses ``path`` without errors."""
    tool = require_executable("dcmdump")
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "E: " not in run.stderr, run.stderr


def source_headers(case: WriterCase) -> Iterator[pydicom.Dataset]:
    """The case's source headers, in file order."""
    for path in case.files:
        yield pydicom.dcmread(path, stop_before_pixels=True)


def no_tumor(result: AnalysisResult) -> AnalysisResult:
    """``result`` as the pipeline writes it when no tumor was segmented (outcome no-tumor)."""
    return AnalysisResult.model_validate(
        {
            **result.model_dump(),
            "outcome": "no-tumor",
            "category": None,
            "rule_category": None,
            "disagreement": False,
            "measurements": {"contact_deg": dict.fromkeys(KEY_VESSELS)},
            "warnings": (*result.warnings, NO_TUMOR_NOTE),
        }
    )


#: The reasons of :func:`out_of_domain` (as :mod:`inference.domain` words them).
OUT_OF_DOMAIN_REASONS = (
    "CT intensities: HU percentile 50 is 218 HU, training median -92 HU (20.7 training IQRs off)",
    "sma not segmented (present in every training CT)",
)


def out_of_domain(result: AnalysisResult) -> AnalysisResult:
    """``result`` as the pipeline writes it when the CT is out of the training domain."""
    return AnalysisResult.model_validate(
        {
            **result.model_dump(),
            "outcome": "out-of-domain",
            "category": None,
            "rule_category": None,
            "disagreement": False,
            "domain": {
                "grade": "out-of-domain",
                "reasons": OUT_OF_DOMAIN_REASONS,
                "numbers": {"intensity_distance_iqr": 20.7, "sma_ml": 0.0},
                "source": "phantom seed 11 (20 CTs)",
            },
            "warnings": (*result.warnings, OUT_OF_DOMAIN_NOTE),
        }
    )
