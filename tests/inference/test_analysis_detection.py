"""The PDAC detection gate in the analysis (issue 23, item 4; result schema 1.5).

A real detection bundle (tiny, random weights: this tests the plumbing, not the detector) runs
first on a phantom CT; its threshold decides whether the staging is given. The SR, with the
detection group and one SCOORD3D point per lesion, passes dciodvfy.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch

from inference._analysis_detection import PdacDetector, _voxels_of, apply_gate
from inference.analysis import AnalysisOutput, Analyzer
from inference.dicom_codes import NO_PDAC_STAGING, PDAC_DETECTION
from inference.tasks.detection.bundle import DetectionSettings, save_detection_bundle
from inference.tasks.detection.model import MultiTaskNet, NetConfig, build_stage1
from inference.volume import Volume
from pancreas_contracts.detection import NO_PDAC_NOTE, DetectedLesion, Detection
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import RESULT_SCHEMA_VERSION, AnalysisResult
from phantom import PhantomOptions, generate_cohort
from tests.inference._writers_fixtures import dciodvfy_errors
from training.structure_bundle import build_test_bundle

_S1 = NetConfig(cube_size=32, cube_mm=256.0, base_filters=4, max_filters=16, max_pools=3)
_S2 = NetConfig(cube_size=32, cube_mm=96.0, base_filters=4, max_filters=16, max_pools=3,
                fpn_channels=8)  # fmt: skip


def tiny_detection_bundle(out: Path) -> Path:
    """A detection bundle with random weights and tiny networks (plumbing tests only)."""
    torch.manual_seed(0)
    return save_detection_bundle(
        out, (build_stage1(_S1), _S1), MultiTaskNet(_S2),
        DetectionSettings(report_threshold=0.0), name="test-detector", version="0",
        config_sha256="c" * 64, data_hash="d" * 64, metrics={}, weights_dtype="float16",
    )  # fmt: skip


@pytest.fixture(scope="module")
def detection_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_detection_bundle(tmp_path_factory.mktemp("detection") / "b")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    options = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
    cohort = generate_cohort(tmp_path_factory.mktemp("phantom"), 1, 3, options)
    return cohort.patients[0].dicom_dir


def _analyse(
    bundle: Path, detection: Path, series: Path, out: Path, threshold: float
) -> AnalysisOutput:
    detector = PdacDetector(detection, torch.device("cpu"), threshold)
    analyzer = Analyzer(build_test_bundle(out / "bundle"), "cpu", detector=detector)
    return analyzer.analyze(series, None, out_dir=out / "result", job_id="job-d")


def _qualitative_texts(sr_path: Path) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {}

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            if item.ValueType == "TEXT":
                code = str(item.ConceptNameCodeSequence[0].CodeValue)
                texts.setdefault(code, []).append(str(item.TextValue))
            walk(item.get("ContentSequence", []))

    walk(pydicom.dcmread(sr_path).ContentSequence)
    return texts


def _codes(sr_path: Path) -> set[str]:
    found: set[str] = set()

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            if item.ValueType == "CODE":
                found.add(str(item.ConceptCodeSequence[0].CodeValue))
            if item.ValueType == "SCOORD3D":
                found.add("SCOORD3D")
            walk(item.get("ContentSequence", []))

    walk(pydicom.dcmread(sr_path).ContentSequence)
    return found


def test_no_pdac_gates_the_staging(detection_bundle: Path, series: Path, tmp_path: Path) -> None:
    # threshold 1.0: the detector never finds a PDAC, so no category is given.
    output = _analyse(tmp_path, detection_bundle, series, tmp_path, threshold=1.0)
    result = AnalysisResult.model_validate_json(output.result_json.read_text())
    assert result.schema_version == RESULT_SCHEMA_VERSION and result.outcome == "no-pdac"
    assert result.category is None and result.rule_category is None
    assert NO_PDAC_NOTE in result.warnings and result.no_category_note() == NO_PDAC_NOTE
    detection = result.detection
    assert detection is not None and not detection.detected and detection.threshold == 1.0
    assert detection.model_version.startswith("test-detector")
    assert detection.agreement in ("agree", "staging-only")
    assert "detection" in result.timings_s
    sr_path = output.files[1]
    for path in output.files:
        assert dciodvfy_errors(path) == [], path.name
    assert NO_PDAC_STAGING.value in _codes(sr_path)
    assert _qualitative_texts(sr_path)[PDAC_DETECTION.value] == [detection.describe()]


def test_a_detected_pdac_keeps_the_staging_and_locates_its_lesions(
    detection_bundle: Path, series: Path, tmp_path: Path
) -> None:
    output = _analyse(tmp_path, detection_bundle, series, tmp_path, threshold=0.0)
    result = output.result
    assert result.detection is not None and result.detection.detected
    assert result.outcome in ("done", "no-tumor") and result.detection.lesions
    assert result.detection.agreement is not None
    _, sr_path, _, lesion_path = output.files
    assert dciodvfy_errors(sr_path) == []
    assert "SCOORD3D" in _codes(sr_path)  # one 3D point per lesion
    # The reported lesions as a SEG series of their own (issue 23: the SEG holds them).
    assert lesion_path.name == "seg-detection.dcm" and dciodvfy_errors(lesion_path) == []
    seg = hd.seg.segread(lesion_path)
    assert seg.SOPInstanceUID == result.outputs.detection_seg_sop_uid
    assert seg.SeriesInstanceUID != pydicom.dcmread(output.files[0]).SeriesInstanceUID
    numbers = seg.get_segment_numbers()
    assert 1 <= len(numbers) <= len(result.detection.lesions)
    assert all(
        seg.get_segment_description(n).tracking_id.startswith("pdac-lesion-") for n in numbers
    )


def _label(tumor_at: tuple[int, int, int] | None) -> Volume:
    array = np.zeros((40, 40, 40), dtype=np.uint8)
    if tumor_at is not None:
        i, j, k = tumor_at
        array[i - 2 : i + 3, j - 2 : j + 3, k - 2 : k + 3] = label_by_name("tumor").value
    return Volume(array, np.eye(4))


def _detection(likelihood: float, centre_ras: tuple[float, float, float] | None) -> Detection:
    lesions: tuple[DetectedLesion, ...] = ()
    if centre_ras is not None:
        x, y, z = centre_ras
        lesions = (DetectedLesion(centre_lps_mm=(-x, -y, z), diameter_mm=5.0, volume_ml=0.1,
                                  probability=likelihood),)  # fmt: skip
    return Detection(model_version="t 0", pdac_likelihood=likelihood, classification=likelihood,
                     detection_max=likelihood, threshold=0.5, detected=likelihood >= 0.5,
                     lesions=lesions)  # fmt: skip


@pytest.mark.parametrize(
    ("likelihood", "lesion", "tumor", "agreement", "gated"),
    [
        (0.9, (20.0, 20.0, 20.0), (20, 20, 20), "agree", False),
        (0.9, (5.0, 5.0, 5.0), (30, 30, 30), "elsewhere", False),
        (0.9, (20.0, 20.0, 20.0), None, "detection-only", False),
        (0.1, None, (20, 20, 20), "staging-only", True),
        (0.1, None, None, "agree", True),
    ],
)
def test_the_gate_compares_the_detector_with_the_staging_segmentation(
    likelihood: float,
    lesion: tuple[float, float, float] | None,
    tumor: tuple[int, int, int] | None,
    agreement: str,
    gated: bool,
) -> None:
    fields: dict[str, object] = {"outcome": "done", "category": "x", "rule_category": "y"}
    notes: list[str] = []
    checked = apply_gate(fields, notes, _detection(likelihood, lesion), _label(tumor))
    assert checked.agreement == agreement
    assert (fields["outcome"] == "no-pdac") is gated and (NO_PDAC_NOTE in notes) is gated
    assert (fields["category"] is None) is gated
    assert any("disagree" in n for n in notes) is (agreement != "agree")
    if lesion is not None and tumor is not None:
        assert checked.distance_mm is not None
        assert (checked.distance_mm <= 10.0) is (agreement == "agree")


def test_the_gate_finds_the_same_tumor_voxels_inside_the_labels_box() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        array = np.zeros(tuple(int(n) for n in rng.integers(5, 40, 3)), dtype=np.uint8)
        count = int(rng.integers(0, 60))
        where = tuple(rng.integers(0, n, count) for n in array.shape)
        array[where] = rng.integers(1, 4, count)
        for value in (1, 2, 3, 9):
            np.testing.assert_array_equal(_voxels_of(array, value), np.argwhere(array == value))
