"""The analysis pipeline end to end with a tiny untrained bundle: structure, never accuracy."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch

from inference import read_dicom_series, read_nifti
from inference._analysis_localise import CrossCheckedLocaliser
from inference.analysis import AnalysisError, AnalysisOutput, Analyzer
from inference.bundle import add_localiser
from inference.localiser import LearnedLocaliser, LocaliserConfig, build_network
from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables
from pancreas_contracts.result import AnalysisResult
from phantom import PhantomOptions, generate_cohort
from tests.inference._writers_fixtures import dciodvfy_errors
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

STAGES = ("read", "localise", "preprocess", "inference", "postprocess", "measure", "total")


@dataclass(frozen=True)
class Phantom:
    """One phantom patient."""

    dicom_dir: Path
    nifti: Path
    clinical_csv: Path


def _phantom(out: Path, seed: int, fov_z: float = 240.0) -> Phantom:
    # The test bundle labels its whole cube pancreas: the scan must hold the whole cube.
    options = PhantomOptions(fov_mm=(320.0, 320.0, fov_z), pixel_spacing=2.0, slice_thickness=4.0)
    cohort = generate_cohort(out, 1, seed, options)
    patient = cohort.patients[0]
    return Phantom(
        patient.dicom_dir, patient.dicom_dir.parent / "image.nii.gz", out / "clinical.csv"
    )


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture(scope="module")
def analyzer(bundle_dir: Path) -> Analyzer:
    return Analyzer(bundle_dir, "cpu")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Phantom:
    return _phantom(tmp_path_factory.mktemp("phantom"), seed=3)


@pytest.fixture(scope="module")
def knocked_out(
    analyzer: Analyzer, phantom: Phantom, tmp_path_factory: pytest.TempPathFactory
) -> AnalysisOutput:
    out = tmp_path_factory.mktemp("result")
    return analyzer.analyze(phantom.dicom_dir, None, out_dir=out, job_id="job-1")


def test_result_json_is_a_valid_result_with_timings(
    knocked_out: AnalysisOutput, phantom: Phantom
) -> None:
    stored = AnalysisResult.model_validate_json(knocked_out.result_json.read_text())
    assert stored == knocked_out.result
    assert stored.job_id == "job-1" and stored.bundle.name == "pancreas-ai-test"
    assert all(stored.timings_s[stage] >= 0 for stage in STAGES)
    assert {"write_seg", "write_sr", "write_pdf"} <= set(stored.timings_s)
    assert stored.localisation.box_mm is not None and 0 <= stored.localisation.confidence <= 1
    assert (stored.localisation.method or "").startswith("landmarks")  # no learned localiser
    assert stored.notice == "Investigational, not for clinical use."
    assert len(stored.bundle.sha256) == 64
    # Outside the node there is no series version, only the instances read.
    assert stored.source is not None and stored.source.series_version is None
    assert stored.source.instance_count == len(list(phantom.dicom_dir.glob("*.dcm")))


def test_knock_out_path_is_stated(knocked_out: AnalysisOutput) -> None:
    clinical = knocked_out.result.clinical
    assert clinical.knocked_out and clinical.used == () and clinical.imputed == ()
    assert clinical.missing == tuple(v.name for v in CLINICAL_VARIABLES)
    assert any("knock-out" in w for w in knocked_out.result.warnings)


def test_objects_pass_dciodvfy_and_name_the_result(knocked_out: AnalysisOutput) -> None:
    seg_path, sr_path, pdf_path = knocked_out.files
    outputs = knocked_out.result.outputs
    for path, uid in (
        (seg_path, outputs.seg_sop_uid),
        (sr_path, outputs.sr_sop_uid),
        (pdf_path, outputs.pdf_sop_uid),
    ):
        assert dciodvfy_errors(path) == [], path.name
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.SOPInstanceUID == uid
        assert ds.StudyInstanceUID == knocked_out.result.study_uid


def test_seg_is_aligned_with_the_source_grid(knocked_out: AnalysisOutput, phantom: Phantom) -> None:
    series = read_dicom_series(phantom.dicom_dir)
    label = read_nifti(knocked_out.result_json.parent / "label.nii.gz")
    native = series.to_native(label)
    seg = hd.seg.segread(knocked_out.files[0])
    uids = list(series.sop_instance_uids)
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False)
    # pixels: (slices, rows, columns); native: (columns, rows, slices)
    expected = np.transpose(np.asarray(native.array), (2, 1, 0))
    np.testing.assert_array_equal(pixels, expected)
    assert expected.any()


def test_clinical_values_are_used_and_imputed(
    analyzer: Analyzer, phantom: Phantom, tmp_path: Path
) -> None:
    with phantom.clinical_csv.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    values: dict[str, float | None] = {
        v.name: float(row[v.name]) if row.get(v.name) else None for v in CLINICAL_VARIABLES
    }
    values["bmi"] = None
    nifti = analyzer.analyze(phantom.nifti, ClinicalVariables(values), out_dir=tmp_path)
    clinical = nifti.result.clinical
    assert not clinical.knocked_out and "bmi" in clinical.missing
    assert "bmi" in clinical.imputed and "bmi" not in clinical.used
    # A NIfTI input has no DICOM source: no DICOM objects, but the label map and the PDF.
    assert nifti.files == ()
    assert (tmp_path / "label.nii.gz").is_file() and (tmp_path / "report.pdf").is_file()
    assert any("NIfTI" in w for w in nifti.result.warnings)


def test_the_bundles_learned_localiser_runs_and_is_named(
    phantom: Phantom, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = build_test_bundle(tmp_path_factory.mktemp("loc") / "b", members=1)
    # All weights zero: P(pancreas) is 0.5 everywhere, never above the threshold, so nothing is
    # found: the analysis refuses with a named reason and writes nothing.
    config = LocaliserConfig()
    network = build_network(config)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
    add_localiser(root, LearnedLocaliser(network, config), metrics={}, training={})
    analyzer = Analyzer(root, "cpu")
    assert isinstance(analyzer.localiser, CrossCheckedLocaliser)
    with pytest.raises(AnalysisError) as info:
        analyzer.analyze(phantom.nifti, None, out_dir=tmp_path / "out")
    assert info.value.reason == "not-localised"
    # What the checks measured travels with the refusal (issue 20, item 2).
    assert info.value.details["confidence"] < info.value.details["min_confidence"]
    assert "confidence" in info.value.details_text()
    assert "learned-unet-5mm v1, checked against landmarks" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_no_pancreas_fails_cleanly(
    phantom: Phantom, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = tmp_path_factory.mktemp("bg") / "b"
    empty = Analyzer(build_test_bundle(root, fill_label="background", members=1), "cpu")
    with pytest.raises(AnalysisError) as info:
        empty.analyze(phantom.dicom_dir, None, out_dir=tmp_path / "out")
    assert info.value.reason == "no-pancreas"
    assert not (tmp_path / "out").exists()


def test_pancreas_cut_by_a_short_scan_fails(
    analyzer: Analyzer, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    short = _phantom(tmp_path_factory.mktemp("short"), seed=3, fov_z=60.0)
    with pytest.raises(AnalysisError) as info:
        analyzer.analyze(short.dicom_dir, None, out_dir=tmp_path / "out")
    assert info.value.reason == "pancreas-cut"


def test_unreadable_series_is_named(analyzer: Analyzer, tmp_path: Path) -> None:
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    with pytest.raises(AnalysisError) as info:
        analyzer.analyze(tmp_path, None, out_dir=tmp_path / "out")
    assert info.value.reason == "unreadable-series"
