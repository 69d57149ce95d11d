"""The survival model in the analysis (issue 25; result schema 1.7).

A hand-made survival bundle (random DenseNet, a one-split forest: this tests the plumbing,
nothing here says anything about accuracy) runs last, after the staging segmentation of a
phantom CT (the staging network segments its whole cube as tumor) and a stand-in lymph-node
stage: ``result.prognosis`` has T from the staging measurements, N from the lymph-node
answer, M missing, and the registry's values. A stage that fails leaves the rest of the
result; without a tumor (or a PDAC) there is no prognosis and a note says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference._analysis_lymph_nodes import LymphNodeOutput
from inference._analysis_survival import (
    SURVIVAL_FAILED,
    SurvivalAssessor,
    run_survival,
    staging_inputs,
)
from inference.analysis import Analyzer
from inference.tasks.survival import SurvivalAnswer
from inference.volume import Volume
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.lymph_nodes import LymphNodeAssessment
from pancreas_contracts.prognosis import StageInput
from pancreas_contracts.result import RESULT_SCHEMA_VERSION, AnalysisResult, BundleRef, Measurements
from tests.inference._staging_fixtures import small_phantom_series, tumor_staging_bundle
from tests.training._survival_cohort import PANCREAS, TUMOR, sphere_case, tiny_bundle

torch.set_num_threads(1)
_NOTICE = "imputed with the training folds' median"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_phantom_series(tmp_path_factory.mktemp("phantom"))


@pytest.fixture(scope="module")
def staging_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tumor_staging_bundle(tmp_path_factory.mktemp("staging"))


@pytest.fixture(scope="module")
def survival_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("survival") / "b")


def _n_plus(image: Volume, tumor_mask: Volume | None) -> LymphNodeOutput:
    """Stand-in lymph-node stage: N+ without nodes on the CT."""
    assessment = LymphNodeAssessment(
        model_version="stand-in 1", n_positive_probability=0.7, threshold=0.5, n_estimate="N+",
        inputs_used=("ct",), inputs_missing=("attention", "tumor_mask"),
    )  # fmt: skip
    return LymphNodeOutput(assessment, None, BundleRef(name="s", version="1", sha256="e" * 64), {})


def test_the_survival_bundle_adds_the_prognosis(
    staging_bundle: Path, series: Path, survival_bundle: Path, tmp_path: Path
) -> None:
    assessor = SurvivalAssessor(survival_bundle / "bundle.json", torch.device("cpu"))
    assert assessor.bundle.name == "test-survival" and len(assessor.bundle.sha256) == 64
    analyzer = Analyzer(staging_bundle, "cpu", lymph_nodes=_n_plus, survival=assessor)
    clinical = ClinicalVariables({"sex": 1.0, "age": 71.0})
    output = analyzer.analyze(series, clinical, out_dir=tmp_path / "out", job_id="job-surv")
    result = AnalysisResult.model_validate_json(output.result_json.read_text())
    # the staging is intact
    assert result.schema_version == RESULT_SCHEMA_VERSION and result.category is not None
    assert result.measurements.tumor_max_diameter_mm is not None
    prognosis = result.prognosis
    assert prognosis is not None and prognosis == output.result.prognosis
    assert prognosis.model_version == "test-survival 0"
    assert set(prognosis.components) == {"radiomics", "densenet", "clinical"}
    diameter = result.measurements.tumor_max_diameter_mm
    expected_t = "T1" if diameter <= 20 else "T2" if diameter <= 40 else "T3"
    if any((result.measurements.contact_deg.get(a) or 0.0) > 180 for a in ("SMA", "CA", "CHA")):
        expected_t = "T4"
    assert prognosis.staging == {
        "T": StageInput(value=expected_t, source="node"),
        "N": StageInput(value="N+", source="lymph-node-model"),
        "M": StageInput(source="missing"),
    }
    assert prognosis.inputs_missing == ("M", "ca19_9_baseline")
    assert prognosis.inputs_used == ("ct", "tumor_mask", "sex", "age", "T", "N")
    assert f"survival: M missing: {_NOTICE}" in result.warnings
    assert f"survival: ca19_9_baseline missing: {_NOTICE}" in result.warnings
    assert {"survival", "survival_radiomics", "survival_densenet"} <= set(result.timings_s)
    assert not any(w.startswith(SURVIVAL_FAILED) for w in result.warnings)


def _value_error(image: Volume, tumor: Volume, values: Mapping[str, float | None],
                 staging: Mapping[str, StageInput]) -> SurvivalAnswer:  # fmt: skip
    raise ValueError("a radiomic feature is not\nfinite (stand-in)")


def test_a_failing_survival_model_leaves_the_rest_of_the_result(
    staging_bundle: Path, series: Path, tmp_path: Path
) -> None:
    analyzer = Analyzer(staging_bundle, "cpu", survival=_value_error)
    output = analyzer.analyze(series, None, out_dir=tmp_path / "out", job_id="job-fail")
    result = AnalysisResult.model_validate_json(output.result_json.read_text())
    assert result.prognosis is None
    assert result.category is not None and result.measurements.tumor_volume_ml is not None
    failed = [w for w in result.warnings if w.startswith(SURVIVAL_FAILED)]
    assert failed == [f"{SURVIVAL_FAILED} (ValueError: a radiomic feature is not finite "
                      "(stand-in)); no survival prognosis"]  # fmt: skip
    assert "survival" in result.timings_s
    assert [p.name for p in output.files] == ["seg.dcm", "sr.dcm", "report.dcm"]


class _Recorder:
    """Stand-in stage: records its inputs and answers through the real model."""

    def __init__(self, bundle: Path) -> None:
        self.assessor = SurvivalAssessor(bundle, torch.device("cpu"))
        self.calls: list[tuple[Volume, dict[str, float | None], dict[str, StageInput]]] = []

    def __call__(self, image: Volume, tumor: Volume, values: Mapping[str, float | None],
                 staging: Mapping[str, StageInput]) -> SurvivalAnswer:  # fmt: skip
        self.calls.append((tumor, dict(values), dict(staging)))
        return self.assessor(image, tumor, values, staging)


def _labelled(with_tumor: bool) -> tuple[Volume, Volume]:
    ct, label = sphere_case(9.0)
    if not with_tumor:
        array = np.where(np.asarray(label.array) == TUMOR, PANCREAS, label.array)
        label = Volume(array.astype(np.uint8), label.affine)
    return ct, label


def _fields(**changes: Any) -> dict[str, Any]:
    measured = Measurements(tumor_volume_ml=3.0, tumor_max_diameter_mm=18.0,
                            contact_deg={"SMA": 200.0, "SMV": 90.0})  # fmt: skip
    fields: dict[str, Any] = {"outcome": "done", "measurements": measured, "lymph_nodes": None}
    return fields | changes


def test_run_survival_on_a_label_map_with_a_tumor(survival_bundle: Path) -> None:
    stage = _Recorder(survival_bundle)
    ct, label = _labelled(with_tumor=True)
    notes: list[str] = []
    timings: dict[str, float] = {}
    clinical = ClinicalVariables({"sex": 0.0, "age": 58.0, "ca19_9_baseline": 120.0, "bmi": 24.0})
    prognosis = run_survival(stage, ct, label, _fields(), clinical, notes, timings)
    assert prognosis is not None and prognosis.model_version == "test-survival 0"
    (tumor, values, staging), = stage.calls  # fmt: skip
    assert int(np.asarray(tumor.array).sum()) == int((np.asarray(label.array) == TUMOR).sum())
    assert np.array_equal(tumor.affine, label.affine)
    assert values == {"sex": 0.0, "age": 58.0, "ca19_9_baseline": 120.0}
    assert staging["T"] == StageInput(value="T4", source="node")  # SMA encased
    assert staging["N"] == StageInput(source="missing") == staging["M"]
    assert prognosis.inputs_missing == ("N", "M")
    assert notes == [f"survival: N missing: {_NOTICE}", f"survival: M missing: {_NOTICE}"]
    assert {"survival", "survival_radiomics", "survival_densenet"} <= set(timings)


@pytest.mark.parametrize(
    ("changes", "with_tumor", "reason"),
    [
        ({}, False, "no tumor was segmented"),
        ({"outcome": "no-tumor"}, True, "no tumor was segmented"),
        ({"outcome": "no-pdac"}, True, "the PDAC detector found no PDAC"),
        ({"outcome": "out-of-domain"}, True, "the CT is strongly out of the training domain"),
    ],
)
def test_no_prognosis_without_a_pdac(
    survival_bundle: Path, changes: dict[str, Any], with_tumor: bool, reason: str
) -> None:
    stage = _Recorder(survival_bundle)
    ct, label = _labelled(with_tumor)
    notes: list[str] = []
    prognosis = run_survival(stage, ct, label, _fields(**changes), None, notes, {})
    assert prognosis is None and stage.calls == []
    assert notes == [f"no survival prognosis: {reason}"]


def test_a_runtime_error_is_a_failure_note_too(survival_bundle: Path) -> None:
    def out_of_memory(*_: object) -> SurvivalAnswer:
        raise RuntimeError("CUDA out of memory (stand-in)")

    ct, label = _labelled(with_tumor=True)
    notes: list[str] = []
    timings: dict[str, float] = {}
    assert run_survival(out_of_memory, ct, label, _fields(), None, notes, timings) is None
    assert notes == [f"{SURVIVAL_FAILED} (RuntimeError: CUDA out of memory (stand-in)); "
                     "no survival prognosis"]  # fmt: skip
    assert "survival" in timings


def test_staging_inputs_take_t_from_the_measurements_and_n_from_the_lymph_nodes() -> None:
    nodes = LymphNodeAssessment(model_version="ln 1", n_positive_probability=0.2,
                                threshold=0.5, n_estimate="N0")  # fmt: skip
    staging = staging_inputs(_fields(
        measurements=Measurements(tumor_max_diameter_mm=35.0, contact_deg={"SMV": 270.0}),
        lymph_nodes=nodes,
    ))  # fmt: skip
    assert staging == {
        "T": StageInput(value="T2", source="node"),
        "N": StageInput(value="N0", source="lymph-node-model"),
        "M": StageInput(source="missing"),
    }
    nothing = staging_inputs({"measurements": None, "lymph_nodes": None})
    assert all(s == StageInput(source="missing") for s in nothing.values())
    assert set(nothing) == {"T", "N", "M"}
    no_size = staging_inputs(_fields(measurements=Measurements()))
    assert no_size["T"] == StageInput(source="missing")
