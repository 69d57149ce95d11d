"""No tumor segmented, end to end: no category anywhere, and every object says so and validates.

The tiny untrained test bundle segments its whole cube as one label: ``pancreas`` gives a gland
without tumor (outcome ``no-tumor``), ``tumor`` a tumor (outcome ``done``, a category).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import pytest
import torch

from inference.analysis import AnalysisOutput, Analyzer
from inference.dicom_codes import (
    ABSENT,
    NETWORK_CATEGORY,
    PRESENT,
    PROBABILITY_CODES,
    TUMOR_SEGMENTED,
    UNCERTAINTY,
)
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import (
    KEY_VESSELS,
    NO_TUMOR_NOTE,
    RESULT_SCHEMA_VERSION,
    AnalysisResult,
)
from phantom import PhantomOptions, generate_cohort
from tests.inference._writers_fixtures import dciodvfy_errors
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The test bundle labels its whole cube: the scan must hold the whole cube.
    options = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
    cohort = generate_cohort(tmp_path_factory.mktemp("phantom"), 1, 5, options)
    return cohort.patients[0].dicom_dir


def _analyse(root: Path, series: Path, fill_label: str, members: int) -> AnalysisOutput:
    bundle = build_test_bundle(root / "bundle", fill_label=fill_label, members=members)
    return Analyzer(bundle, "cpu").analyze(series, None, out_dir=root / "out", job_id="job-nt")


@pytest.fixture(scope="module")
def no_tumor(series: Path, tmp_path_factory: pytest.TempPathFactory) -> AnalysisOutput:
    return _analyse(tmp_path_factory.mktemp("pancreas"), series, "pancreas", 2)


@pytest.fixture(scope="module")
def tumor(series: Path, tmp_path_factory: pytest.TempPathFactory) -> AnalysisOutput:
    return _analyse(tmp_path_factory.mktemp("tumor"), series, "tumor", 1)


def _tumor_group(path: Path) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    sr = hd.sr.srread(path)
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport)
    finding = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in content.get_image_measurement_groups(finding_type=finding)
        if g.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    ]
    return group


def _pdf_text(output: AnalysisOutput) -> str:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    pdf = (output.result_json.parent / "report.pdf").read_bytes()
    return subprocess.run(
        [pdftotext, "-layout", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()


def test_result_json_says_no_tumor_and_has_no_category(no_tumor: AnalysisOutput) -> None:
    stored = AnalysisResult.model_validate_json(no_tumor.result_json.read_text())
    assert stored == no_tumor.result
    assert stored.schema_version == RESULT_SCHEMA_VERSION and stored.outcome == "no-tumor"
    assert stored.category is None and stored.rule_category is None and not stored.disagreement
    assert stored.measurements.tumor_volume_ml is None
    assert stored.measurements.tumor_max_diameter_mm is None
    assert all(stored.measurements.contact_deg.get(k) is None for k in KEY_VESSELS)
    assert NO_TUMOR_NOTE in stored.warnings
    assert "no tumor found" not in stored.warnings  # said once, as the note
    assert stored.notice == "Investigational, not for clinical use."


def test_no_tumor_objects_pass_dciodvfy(no_tumor: AnalysisOutput) -> None:
    for path in no_tumor.files:
        assert dciodvfy_errors(path) == [], path.name


def test_no_tumor_sr_is_coded_absent_without_category(no_tumor: AnalysisOutput) -> None:
    sr_path = next(p for p in no_tumor.files if p.name == "sr.dcm")
    group = _tumor_group(sr_path)
    (segmented,) = group.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    assert segmented.value.value == ABSENT.value
    assert group.get_qualitative_evaluations(name=NETWORK_CATEGORY) == []
    for code in (*PROBABILITY_CODES, UNCERTAINTY):
        assert group.get_measurements(name=code) == []


def test_no_tumor_pdf_says_staging_is_not_possible(no_tumor: AnalysisOutput) -> None:
    text = _pdf_text(no_tumor)
    assert "No tumor segmented: staging not possible" in text
    assert "Network category" not in text
    assert "not for clinical use" in text.lower()


def test_a_tumor_gives_a_category(tumor: AnalysisOutput) -> None:
    result = tumor.result
    assert result.outcome == "done" and result.category is not None
    assert result.measurements.tumor_volume_ml is not None
    assert NO_TUMOR_NOTE not in result.warnings
    for path in tumor.files:
        assert dciodvfy_errors(path) == [], path.name
    group = _tumor_group(next(p for p in tumor.files if p.name == "sr.dcm"))
    (segmented,) = group.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    assert segmented.value.value == PRESENT.value
    assert len(group.get_qualitative_evaluations(name=NETWORK_CATEGORY)) == 1
    assert group.get_measurements(name=UNCERTAINTY) == []  # one model: no spread
    assert "Network category" in _pdf_text(tumor)
