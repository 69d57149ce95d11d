"""Domain checks (issue 21, item 1): the bundle's training statistics and the grade of one CT.

Five small phantoms (seed 21) stand in for a training cohort; a sixth, of another seed, with its
true labels, is a CT of the same domain. Shifting its HU by +300 or removing its SMA takes it
out of the domain. End to end, the untrained test bundle (it labels its whole cube as tumor)
with these statistics withholds the category, and says so in result.json, SR and PDF.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest
import torch

from inference.analysis import AnalysisOutput, Analyzer
from inference.bundle import BundleError, add_domain, load_bundle
from inference.dicom_codes import (
    DOMAIN_CHECK,
    DOMAIN_GRADES,
    DOMAIN_REASON,
    NETWORK_CATEGORY,
    OUT_OF_DOMAIN_STAGING,
    STAGING,
    TUMOR_SEGMENTED,
)
from inference.domain import (
    BODY_MIN_HU,
    HU_LEVELS,
    CaseStats,
    DomainStats,
    case_stats,
    check_domain,
    cube_reference,
    reference_case_stats,
    summarise,
)
from inference.preprocessing import PreprocessConfig
from inference.volume import Volume, read_nifti
from inference.volume_io import resample_to_reference
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import OUT_OF_DOMAIN_NOTE, RESULT_SCHEMA_VERSION, AnalysisResult
from phantom import PhantomOptions, generate_cohort
from tests.inference._writers_fixtures import dciodvfy_errors
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

_PRE = PreprocessConfig(64)  # the test bundle's cube (64 voxels, 160 mm)
# The test bundle labels its whole cube: the scan must hold the whole cube.
_OPTIONS = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)


def _stats(folder: Path, image: Volume | None = None, labels: Volume | None = None) -> CaseStats:
    ct = read_nifti(folder / "image.nii.gz") if image is None else image
    label = read_nifti(folder / "label.nii.gz") if labels is None else labels
    return reference_case_stats(ct, label, _PRE)


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cohort = generate_cohort(tmp_path_factory.mktemp("training"), 5, 21, _OPTIONS)
    stats = [_stats(p.files.image.parent) for p in cohort.patients]
    return summarise(stats, source="phantom seed 21, 5 patients")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom of another seed: its folder (image.nii.gz, label.nii.gz, dicom/)."""
    cohort = generate_cohort(tmp_path_factory.mktemp("fresh"), 1, 22, _OPTIONS)
    return cohort.patients[0].files.image.parent


def test_the_section_records_the_cohort(section: dict[str, Any]) -> None:
    stats = DomainStats.from_dict(json.loads(json.dumps(section)))
    assert stats.cases == 5 and stats.source == "phantom seed 21, 5 patients"
    assert {"pancreas", "aorta", "sma", "smv", "portal_vein"} <= set(stats.present_in_all)
    pancreas = stats.volumes_ml["pancreas"]
    assert 0 < pancreas["p1"] <= pancreas["median"] <= pancreas["p99"]
    assert stats.sma_left_mm is not None and stats.sma_left_mm["p1"] > 0  # SMA left of SMV


def test_an_in_domain_phantom_passes(section: dict[str, Any], fresh: Path) -> None:
    check = check_domain(DomainStats.from_dict(section), _stats(fresh))
    assert check.grade == "in-domain", check.reasons
    assert check.reasons == ()
    distance = check.numbers["intensity_distance_iqr"]
    assert distance is not None and distance < 3.0
    assert check.source == "phantom seed 21, 5 patients (5 CTs)"


def test_a_ct_shifted_300_hu_is_out_of_domain(section: dict[str, Any], fresh: Path) -> None:
    ct = read_nifti(fresh / "image.nii.gz")
    shifted = Volume(np.asarray(ct.array, dtype=np.float32) + 300.0, ct.affine)
    check = check_domain(DomainStats.from_dict(section), _stats(fresh, image=shifted))
    assert check.grade == "out-of-domain"
    assert check.reasons[0].startswith("CT intensities: HU percentile")
    distance = check.numbers["intensity_distance_iqr"]
    assert distance is not None and distance > 6.0


def test_a_segmentation_without_sma_is_out_of_domain(section: dict[str, Any], fresh: Path) -> None:
    labels = read_nifti(fresh / "label.nii.gz")
    array = np.asarray(labels.array).copy()
    array[array == label_by_name("sma").value] = 0
    check = check_domain(
        DomainStats.from_dict(section), _stats(fresh, labels=Volume(array, labels.affine))
    )
    assert check.grade == "out-of-domain"
    assert "sma not segmented (present in every training CT)" in check.reasons
    assert check.numbers["sma_ml"] == 0.0 and check.numbers["sma_smv_distance_mm"] is None


def test_an_sma_far_from_the_smv_is_out_of_domain(section: dict[str, Any], fresh: Path) -> None:
    labels = read_nifti(fresh / "label.nii.gz")
    array = np.asarray(labels.array).copy()
    sma = array == label_by_name("sma").value
    array[sma] = 0
    # 50 mm further to the patient's left (RAS+ x falls to the left), away from the SMV
    step = -25 if labels.affine[0, 0] > 0 else 25
    array[np.roll(sma, step, axis=0) & (array == 0)] = label_by_name("sma").value
    check = check_domain(
        DomainStats.from_dict(section), _stats(fresh, labels=Volume(array, labels.affine))
    )
    assert check.grade == "out-of-domain"
    assert any(r.startswith("SMA ") and "from the SMV" in r for r in check.reasons)


def test_the_cube_is_measured_like_a_full_resample(fresh: Path) -> None:
    """Cropping the CT to the cube before resampling (for speed) changes no value."""
    ct, labels = read_nifti(fresh / "image.nii.gz"), read_nifti(fresh / "label.nii.gz")
    centre = np.asarray(ct.voxel_to_world(np.asarray([[10.0, 20.0, 5.0]]))[0])  # cube half out
    stats = case_stats(ct, labels, _PRE, centre)
    whole = Volume(np.asarray(ct.array, dtype=np.float32), ct.affine)
    cube = resample_to_reference(whole, cube_reference(centre, _PRE), 1, fill_value=np.nan)
    values = np.asarray(cube.array)
    body = values[np.isfinite(values) & (values >= BODY_MIN_HU)]
    np.testing.assert_allclose(stats.hu_percentiles, np.percentile(body, HU_LEVELS), atol=1e-3)


def test_without_statistics_the_check_is_not_available(fresh: Path) -> None:
    check = check_domain(None, _stats(fresh))
    assert check.grade == "not-available"
    assert check.reasons and "not checked" in check.reasons[0]


def test_the_domain_section_round_trips_through_the_bundle(
    section: dict[str, Any], tmp_path: Path
) -> None:
    root = build_test_bundle(tmp_path / "bundle", members=1)
    weights = (root / "model-0.safetensors").read_bytes()
    assert load_bundle(root).domain is None
    add_domain(root, section)
    loaded = load_bundle(root)  # the weights' sha256 still verify
    assert loaded.domain == DomainStats.from_dict(section)
    assert (root / "model-0.safetensors").read_bytes() == weights
    with pytest.raises(BundleError, match="domain"):
        add_domain(root, {**section, "format_version": "9"})
    meta = json.loads((root / "bundle.json").read_text())
    meta["domain"] = {**section, "volumes_ml": {}}
    (root / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="malformed domain section"):
        load_bundle(root)


def test_the_demo_bundle_has_its_cohort_statistics() -> None:
    demo = Path(__file__).resolve().parents[2] / "bundles" / "demo"
    stats = load_bundle(demo).domain
    assert stats is not None and stats.cases == 20
    assert "--seed 11" in stats.source


# --- end to end: the untrained bundle segments its whole cube as tumor --------------------------


@pytest.fixture(scope="module")
def withheld(
    section: dict[str, Any], fresh: Path, tmp_path_factory: pytest.TempPathFactory
) -> AnalysisOutput:
    root = tmp_path_factory.mktemp("ood")
    bundle = build_test_bundle(root / "bundle", fill_label="tumor", members=1)
    add_domain(bundle, section)
    return Analyzer(bundle, "cpu").analyze(fresh / "dicom", None, out_dir=root / "out")


def test_out_of_domain_withholds_the_category(withheld: AnalysisOutput) -> None:
    stored = AnalysisResult.model_validate_json(withheld.result_json.read_text())
    assert stored == withheld.result
    assert stored.schema_version == RESULT_SCHEMA_VERSION and stored.outcome == "out-of-domain"
    assert stored.category is None and stored.rule_category is None
    assert stored.domain is not None and stored.domain.grade == "out-of-domain"
    assert "pancreas not segmented (present in every training CT)" in stored.domain.reasons
    assert OUT_OF_DOMAIN_NOTE in stored.warnings
    assert stored.measurements.tumor_volume_ml is not None  # measured, still reported
    assert (withheld.result_json.parent / "seg.dcm").is_file()  # the segmentation is written


def test_out_of_domain_sr_codes_the_grade(withheld: AnalysisOutput) -> None:
    sr_path = withheld.result_json.parent / "sr.dcm"
    assert dciodvfy_errors(sr_path) == []
    content = hd.sr.srread(sr_path).content
    assert isinstance(content, hd.sr.MeasurementReport)
    finding = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in content.get_image_measurement_groups(finding_type=finding)
        if g.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    ]
    (grade,) = group.get_qualitative_evaluations(name=DOMAIN_CHECK)
    assert grade[0].value.value == DOMAIN_GRADES["out-of-domain"].value
    (staging,) = group.get_qualitative_evaluations(name=STAGING)
    assert staging[0].value.value == OUT_OF_DOMAIN_STAGING.value
    assert group.get_qualitative_evaluations(name=NETWORK_CATEGORY) == []
    reasons = [item.TextValue for item in group[0].ContentSequence if item.name == DOMAIN_REASON]
    assert "pancreas not segmented (present in every training CT)" in reasons


def test_out_of_domain_pdf_says_the_category_is_withheld(withheld: AnalysisOutput) -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    pdf = (withheld.result_json.parent / "report.pdf").read_bytes()
    text = subprocess.run(
        [pdftotext, "-layout", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()
    assert OUT_OF_DOMAIN_NOTE in text
    assert "OUT OF DOMAIN" in text and "pancreas not segmented" in text
    assert "Network category" not in text
