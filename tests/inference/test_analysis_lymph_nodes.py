"""The lymph-node model in the analysis (issue 24, item 4; result schema 1.6).

A real lymph-node bundle (tiny, random weights: this tests the plumbing, not the model; nothing
here says anything about accuracy) runs after the staging segmentation of a phantom CT; its
nodes reach ``result.json``, a SEG of their own (series 9005, one segment per node) and the SR
(one TID 1411 group per node referencing its segment, a patient group with the N estimate),
all dciodvfy clean. A stand-in stage checks two nodes (one suspicious), a node without voxels
on the CT (a SCOORD3D point instead of a segment) and a model that fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch

from inference._analysis_lymph_nodes import (
    LN_INPUTS,
    LymphNodeAssessor,
    LymphNodeOutput,
    to_assessment,
)
from inference.analysis import LN_FAILED, AnalysisOutput, Analyzer, LymphNodeStage
from inference.dicom_codes import (
    LYMPH_NODE_ASSESSMENT,
    LYMPH_NODE_SEG_SERIES_NUMBER,
    LYMPH_NODE_STATION,
    N_ESTIMATE_CODES,
)
from inference.tasks.lymph_nodes.bundle import (
    LymphNodeNetworks,
    LymphNodeSettings,
    save_lymph_node_bundle,
)
from inference.tasks.lymph_nodes.model import NodeClassifierConfig, SegConfig, UNetConfig
from inference.tasks.lymph_nodes.patient import PatientNetConfig
from inference.tasks.lymph_nodes.task import LymphNode, LymphNodeAnalysis, LymphNodeResult
from inference.volume import Volume
from pancreas_contracts.lymph_nodes import LymphNodeAssessment, LymphNodeFinding
from pancreas_contracts.result import RESULT_SCHEMA_VERSION, AnalysisResult, BundleRef
from tests.inference._staging_fixtures import small_phantom_series, tumor_staging_bundle
from tests.inference._writers_fixtures import dciodvfy_errors

torch.set_num_threads(1)
_STAGES = ("organs", "attention", "segmentation", "nodes", "classification", "patient")


def tiny_lymph_node_bundle(out: Path, node_bias: float = 50.0) -> Path:
    """A lymph-node bundle with random weights and tiny networks (plumbing tests only).

    ``node_bias`` 50: every voxel of the node cube inside the scan is one node.
    """
    torch.manual_seed(0)
    seg = SegConfig(cube_size=32, cube_mm=64.0, base_filters=4, max_filters=16)
    networks = LymphNodeNetworks.build(
        UNetConfig(cube_size=32, cube_mm=128.0, base_filters=4, max_filters=16), seg,
        NodeClassifierConfig(crop_size=16), PatientNetConfig(patch_size=16, patch_mm=48.0),
    )  # fmt: skip
    with torch.no_grad():
        output = networks.segmenter.head[1].conv.conv  # type: ignore[union-attr]
        output.bias.copy_(torch.tensor([0.0, node_bias]))  # type: ignore[union-attr, operator]
    save_lymph_node_bundle(
        out, networks, LymphNodeSettings(suspicious_threshold=0.0, patient_threshold=0.3),
        name="test-ln", version="0", config_sha256="c" * 64, data_hash="d" * 64, metrics={},
        weights_dtype="float16",
    )  # fmt: skip
    return out / "bundle.json"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_phantom_series(tmp_path_factory.mktemp("phantom"))


@pytest.fixture(scope="module")
def staging_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tumor_staging_bundle(tmp_path_factory.mktemp("staging"))


def _analyse(staging: Path, stage: LymphNodeStage, series: Path, out: Path) -> AnalysisOutput:
    analyzer = Analyzer(staging, "cpu", lymph_nodes=stage)
    return analyzer.analyze(series, None, out_dir=out, job_id="job-ln")


def _sr_items(sr_path: Path) -> list[pydicom.Dataset]:
    items: list[pydicom.Dataset] = []

    def walk(sequence: pydicom.Sequence) -> None:
        for item in sequence:
            items.append(item)
            walk(item.get("ContentSequence", []))

    walk(pydicom.dcmread(sr_path).ContentSequence)
    return items


def _texts(items: list[pydicom.Dataset], code: str) -> list[str]:
    return [
        str(i.TextValue)
        for i in items
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == code
    ]


def _referenced_segments(items: list[pydicom.Dataset]) -> list[tuple[str, int]]:
    return [
        (str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
         int(i.ReferencedSOPSequence[0].ReferencedSegmentNumber))
        for i in items
        if i.ValueType == "IMAGE" and "ReferencedSegmentNumber" in i.ReferencedSOPSequence[0]
    ]  # fmt: skip


def test_the_lymph_node_bundle_adds_its_section_seg_and_sr_groups(
    staging_bundle: Path, series: Path, tmp_path: Path
) -> None:
    assessor = LymphNodeAssessor(tiny_lymph_node_bundle(tmp_path / "ln"), torch.device("cpu"))
    output = _analyse(staging_bundle, assessor, series, tmp_path / "out")
    result = AnalysisResult.model_validate_json(output.result_json.read_text())
    # the staging is intact
    assert result.schema_version == RESULT_SCHEMA_VERSION and result.category is not None
    nodes = result.lymph_nodes
    assert nodes is not None and nodes.model_version == "test-ln 0" and nodes.threshold == 0.3
    assert nodes.inputs_used == ("ct", "attention", "tumor_mask") and nodes.inputs_missing == ()
    assert nodes.n_estimate == ("N+" if nodes.n_positive_probability >= 0.3 else "N0")
    assert len(nodes.nodes) == 1 and nodes.nodes[0].suspicious  # threshold 0: plumbing only
    assert {"lymph_nodes", *(f"lymph_nodes_{s}" for s in _STAGES)} <= set(result.timings_s)
    assert "write_lymph_node_seg" in result.timings_s
    seg_path, sr_path, _, node_path = output.files
    assert node_path.name == "seg-lymph-nodes.dcm"
    for path in output.files:
        assert dciodvfy_errors(path) == [], path.name
    seg = hd.seg.segread(node_path)
    assert seg.SOPInstanceUID == result.outputs.lymph_node_seg_sop_uid
    assert seg.SeriesNumber == LYMPH_NODE_SEG_SERIES_NUMBER
    assert seg.SeriesInstanceUID != pydicom.dcmread(seg_path).SeriesInstanceUID
    assert seg.get_segment_numbers() == [1]
    description = seg.get_segment_description(1)
    assert description.tracking_id == "lymph-node-1"
    assert description.segmented_property_type.value == "59441001"  # SCT Lymph node
    items = _sr_items(sr_path)
    assert (str(seg.SOPInstanceUID), 1) in _referenced_segments(items)
    assert len(_texts(items, LYMPH_NODE_STATION.value)) == 1
    assert _texts(items, LYMPH_NODE_ASSESSMENT.value) == [
        f"Lymph nodes (test-ln 0): {nodes.describe()}"
    ]
    estimate = N_ESTIMATE_CODES[nodes.n_estimate].value
    assert any(i.ValueType == "CODE" and i.ConceptCodeSequence[0].CodeValue == estimate
               for i in items)  # fmt: skip


def _finding(node_id: int, probability: float, suspicious: bool) -> LymphNodeFinding:
    return LymphNodeFinding(
        node_id=node_id, station="8a" if suspicious else None, centre_lps_mm=(0.0, 0.0, 0.0),
        short_axis_mm=11.0, long_axis_mm=14.0, volume_ml=1.2, probability=probability,
        suspicious=suspicious,
    )  # fmt: skip


class _TwoNodes:
    """Stand-in stage: node 1 (suspicious) and 2 on the CT, node 3 with no voxel on it."""

    def __call__(self, image: Volume, tumor_mask: Volume | None) -> LymphNodeOutput:
        shape = np.asarray(image.shape)
        nodes = np.zeros(image.shape, dtype=np.uint8)
        i, j, k = (shape // 2).tolist()
        nodes[i - 3 : i + 3, j - 3 : j + 3, k - 2 : k + 2] = 1
        nodes[i + 8 : i + 12, j - 2 : j + 2, k - 1 : k + 1] = 2
        assessment = LymphNodeAssessment(
            model_version="stand-in 1", n_positive_probability=0.7, threshold=0.5,
            n_estimate="N+", inputs_used=("ct",), inputs_missing=("attention", "tumor_mask"),
            nodes=(_finding(1, 0.8, True), _finding(2, 0.2, False), _finding(3, 0.1, False)),
        )  # fmt: skip
        bundle = BundleRef(name="stand-in", version="1", sha256="e" * 64)
        return LymphNodeOutput(assessment, Volume(nodes, image.affine), bundle, {"nodes": 0.1})


def test_one_segment_per_node_and_a_point_for_a_node_off_the_images(
    staging_bundle: Path, series: Path, tmp_path: Path
) -> None:
    output = _analyse(staging_bundle, _TwoNodes(), series, tmp_path / "out")
    result = output.result
    assert result.lymph_nodes is not None and result.lymph_nodes.n_estimate == "N+"
    _, sr_path, pdf_path, node_path = output.files
    assert dciodvfy_errors(node_path) == [] and dciodvfy_errors(sr_path) == []
    assert dciodvfy_errors(pdf_path) == []
    seg = hd.seg.segread(node_path)
    labels = {n: seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()}
    assert labels == {
        1: "Suspicious lymph node 1 (station 8a, p 0.80)",
        2: "Lymph node 2 (no station, p 0.20)",
    }
    items = _sr_items(sr_path)
    references = _referenced_segments(items)
    assert sorted(n for uid, n in references if uid == seg.SOPInstanceUID) == [1, 2]
    assert sum(i.ValueType == "SCOORD3D" for i in items) == 1  # node 3: a point
    assert _texts(items, LYMPH_NODE_STATION.value) == [
        "8a: anterosuperior, along the common hepatic artery",
        "not assigned",
        "not assigned",
    ]
    study = pydicom.dcmread(sr_path).CurrentRequestedProcedureEvidenceSequence[0]
    evidence = {str(s.SeriesInstanceUID) for s in study.ReferencedSeriesSequence}
    assert str(seg.SeriesInstanceUID) in evidence
    _assert_lymph_node_page(output.files[2].with_suffix(".pdf"))


def _assert_lymph_node_page(pdf: Path) -> None:
    """Page 2 holds the N estimate and the node table (skipped where poppler is absent)."""
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    pages = [
        subprocess.run([pdftotext, "-layout", "-f", str(n), "-l", str(n), str(pdf), "-"],
                       check=True, capture_output=True, text=True).stdout
        for n in (1, 2)
    ]  # fmt: skip
    assert "Lymph nodes (stand-in 1): N+" in pages[0] and "table on page 2" in pages[0]
    assert "N estimate: N+ (probability of N+ 0.70, threshold 0.50)" in pages[1]
    assert "1 suspicious of 3 nodes" in pages[1]
    rows = [line.split() for line in pages[1].splitlines() if line.strip()[:2] in ("1 ", "2 ")]
    assert rows[0][:3] == ["1", "8a", "11.0"] and rows[1][:3] == ["2", "-", "11.0"]
    assert "Investigational, not for clinical use" in pages[1]


def _failing(image: Volume, tumor_mask: Volume | None) -> LymphNodeOutput:
    raise RuntimeError("CUDA out of memory (stand-in)")


def test_a_failing_lymph_node_model_leaves_the_rest_of_the_result(
    staging_bundle: Path, series: Path, tmp_path: Path
) -> None:
    output = _analyse(staging_bundle, _failing, series, tmp_path / "out")
    result = AnalysisResult.model_validate_json(output.result_json.read_text())
    assert result.lymph_nodes is None and result.outputs.lymph_node_seg_sop_uid is None
    assert result.category is not None and result.measurements.tumor_volume_ml is not None
    failed = [w for w in result.warnings if w.startswith(LN_FAILED)]
    assert failed == [f"{LN_FAILED} (RuntimeError: CUDA out of memory (stand-in)); "
                      "no lymph-node assessment"]  # fmt: skip
    assert "lymph_nodes" in result.timings_s
    assert [p.name for p in output.files] == ["seg.dcm", "sr.dcm", "report.dcm"]
    assert dciodvfy_errors(output.files[1]) == []


def _analysis(probabilities: list[float], inputs: tuple[str, ...]) -> LymphNodeAnalysis:
    nodes = tuple(
        LymphNode(
            centre_voxel=(1.0, 2.0, 3.0), centre_lps_mm=(-1.234567, 2.0, 3.0), short_axis_mm=8.04,
            long_axis_mm=10.0, volume_ml=0.51234, station="14p", nearest_structure="sma",
            metastasis_probability=p, suspicious=p >= 0.5,
        )
        for p in probabilities
    )  # fmt: skip
    result = LymphNodeResult(nodes=nodes, n_positive_probability=0.5, n_positive=True,
                             largest_suspicious_volume_ml=0.5, inputs=inputs,
                             model_version="m 2", warnings=("w",))  # fmt: skip
    empty = Volume(np.zeros((2, 2, 2), dtype=np.float32), np.eye(4))
    instances = np.zeros((2, 2, 2), dtype=np.int32)
    return LymphNodeAnalysis(result, empty, np.zeros((2, 2, 2), dtype=np.float32), empty,
                             instances, instances, (1.0,) * len(nodes))  # fmt: skip


def test_the_assessment_lists_the_most_probable_first_and_says_what_it_lacked() -> None:
    assessment = to_assessment(_analysis([0.2, 0.9, 0.6], ("ct", "attention")), threshold=0.5)
    assert [n.node_id for n in assessment.nodes] == [2, 3, 1]
    assert [n.suspicious for n in assessment.nodes] == [True, True, False]
    assert assessment.nodes[0].centre_lps_mm == (-1.23, 2.0, 3.0)
    assert assessment.nodes[0].short_axis_mm == 8.0 and assessment.nodes[0].volume_ml == 0.512
    assert assessment.n_estimate == "N+" and assessment.threshold == 0.5  # 0.5 reaches 0.5
    assert assessment.inputs_missing == ("tumor_mask",) and assessment.warnings == ("w",)
    assert set(assessment.inputs_used) | set(assessment.inputs_missing) == set(LN_INPUTS)
    assert to_assessment(_analysis([], ("ct",)), threshold=0.6).n_estimate == "N0"
