"""The task protocol: a second task is one registration, and reaches result.json, SR and PDF.

The toy task below measures the pancreas volume of the CT's HU band around the localised
centre: it stands for the next models (detection, lymph nodes, survival) and proves that a
task's section, findings, notes, label map and timings travel through the pipeline and the
writers without any change to them. Structure, never accuracy (the bundle is untrained).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset

from inference.analysis import AnalysisOutput, Analyzer
from inference.bundle import LoadedBundle
from inference.tasks import (
    TASKS,
    AnalysisError,
    AnalysisTask,
    TaskContext,
    TaskOutput,
    TaskRegistration,
)
from inference.volume import Volume
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import (
    RESULT_SCHEMA_VERSION,
    AnalysisResult,
    CodeRef,
    TaskFinding,
    TaskSection,
)
from phantom import PhantomOptions, generate_cohort
from tests.conftest import require_executable
from tests.inference._writers_fixtures import dciodvfy_errors
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

_VOLUME = CodeRef(value="118565006", scheme="SCT", meaning="Volume")
_ML = CodeRef(value="ml", scheme="UCUM", meaning="milliliter")
_MM = CodeRef(value="mm", scheme="UCUM", meaning="millimeter")
_FINDING = CodeRef(value="15776009", scheme="SCT", meaning="Pancreas")
_DUCT = label_by_name("bile_duct").value


class _ToyTask:
    """Marks a 3-voxel cube at the localised centre as bile duct and reports two findings."""

    name = "toy"

    def __init__(self, bundle: LoadedBundle, device: torch.device) -> None:
        self.bundle_name = str(bundle.meta.get("model", {}).get("name"))
        self.device = device

    def run(self, context: TaskContext) -> TaskOutput:
        image = context.image
        centre = np.asarray(context.localisation.centre_mm, dtype=np.float64)
        index = np.rint(image.world_to_voxel(centre[None, :])[0]).astype(int)
        labels = np.zeros(image.shape, dtype=np.uint8)
        lo = np.maximum(index - 1, 0)
        labels[lo[0] : lo[0] + 3, lo[1] : lo[1] + 3, lo[2] : lo[2] + 3] = _DUCT
        section = TaskSection(
            title="Toy task",
            model_version="0.0.1",
            outcome="done",
            finding_type=_FINDING,
            findings=(
                TaskFinding(name=_VOLUME, value=12.5, unit=_ML),
                TaskFinding(name=CodeRef(value="81827009", scheme="SCT", meaning="Diameter"),
                            value=None, unit=_MM),
            ),
            notes=("toy note for the report",),
        )  # fmt: skip
        return TaskOutput(
            result_update={"tasks": {"toy": section}},
            label_map=Volume(labels, image.affine),
            warnings=("toy warning",),
            timings_s={"toy": 0.001},
        )


def _toy(bundle: LoadedBundle, device: torch.device) -> AnalysisTask:
    return _ToyTask(bundle, device)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    options = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
    cohort = generate_cohort(tmp_path_factory.mktemp("phantom"), 1, 3, options)
    return cohort.patients[0].dicom_dir


@pytest.fixture(scope="module")
def with_toy(
    bundle_dir: Path, series: Path, tmp_path_factory: pytest.TempPathFactory
) -> AnalysisOutput:
    analyzer = Analyzer(bundle_dir, "cpu", tasks=(*TASKS, TaskRegistration("toy", _toy)))
    assert analyzer.task_names == ("resectability", "toy")
    return analyzer.analyze(series, None, out_dir=tmp_path_factory.mktemp("out"))


def test_the_registry_runs_resectability_first() -> None:
    assert [t.name for t in TASKS] == ["resectability"]


def test_a_second_task_adds_its_section_warning_and_timing(with_toy: AnalysisOutput) -> None:
    stored = AnalysisResult.model_validate_json(with_toy.result_json.read_text())
    assert stored.schema_version == RESULT_SCHEMA_VERSION
    section = stored.tasks["toy"]
    assert section.findings[0].value == 12.5 and section.findings[1].value is None
    assert "toy warning" in stored.warnings
    assert stored.timings_s["toy"] == 0.001 and "inference" in stored.timings_s
    # The test bundle segments pancreas only: no tumor, so no category (outcome no-tumor).
    assert stored.outcome == "no-tumor" and stored.category is None


def test_the_second_task_reaches_the_sr_and_passes_dciodvfy(with_toy: AnalysisOutput) -> None:
    require_executable("dciodvfy")
    sr_path = next(p for p in with_toy.files if p.name == "sr.dcm")
    assert dciodvfy_errors(sr_path) == []
    texts = _text_values(pydicom.dcmread(sr_path))
    assert "Toy task 0.0.1: done" in texts
    assert {"Diameter: not measured", "toy note for the report"} <= texts
    numbers = _numeric_values(pydicom.dcmread(sr_path))
    assert ("Volume", 12.5) in numbers


def _items(ds: Dataset) -> list[Dataset]:
    found = []
    for item in ds.get("ContentSequence", []):
        found.append(item)
        found.extend(_items(item))
    return found


def _text_values(ds: Dataset) -> set[str]:
    return {str(i.TextValue) for i in _items(ds) if i.ValueType == "TEXT"}


def _numeric_values(ds: Dataset) -> set[tuple[str, float]]:
    return {
        (
            str(i.ConceptNameCodeSequence[0].CodeMeaning),
            float(i.MeasuredValueSequence[0].NumericValue),
        )
        for i in _items(ds)
        if i.ValueType == "NUM" and i.get("MeasuredValueSequence")
    }


def test_the_second_task_labels_reach_the_seg(with_toy: AnalysisOutput) -> None:
    seg = hd.seg.segread(next(p for p in with_toy.files if p.name == "seg.dcm"))
    labels = {str(d.SegmentLabel).lower() for d in seg.SegmentSequence}
    assert any("bile" in label for label in labels)


def test_the_second_task_reaches_the_pdf(with_toy: AnalysisOutput) -> None:
    pdftotext = require_executable("pdftotext")
    pdf = with_toy.result_json.parent / "report.pdf"
    text = subprocess.run(
        [pdftotext, str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Toy task (0.0.1): done" in text
    assert "toy note for the report" in text


def test_two_tasks_may_not_own_one_field(bundle_dir: Path, series: Path, tmp_path: Path) -> None:
    class _Thief(_ToyTask):
        def run(self, context: TaskContext) -> TaskOutput:
            return TaskOutput(result_update={"rule_category": None})

    def thief(bundle: LoadedBundle, device: torch.device) -> AnalysisTask:
        return _Thief(bundle, device)

    analyzer = Analyzer(bundle_dir, "cpu", tasks=(*TASKS, TaskRegistration("thief", thief)))
    with pytest.raises(ValueError, match="rule_category"):
        analyzer.analyze(series, None, out_dir=tmp_path)
    assert not (tmp_path / "result.json").exists()


def test_task_names_are_unique(bundle_dir: Path) -> None:
    with pytest.raises(ValueError, match="distinct"):
        Analyzer(bundle_dir, "cpu", tasks=(*TASKS, *TASKS))


def test_a_task_refusal_writes_nothing(bundle_dir: Path, series: Path, tmp_path: Path) -> None:
    class _Refuser(_ToyTask):
        def run(self, context: TaskContext) -> TaskOutput:
            raise AnalysisError("toy-refused", "the toy task refuses every CT")

    def refuser(bundle: LoadedBundle, device: torch.device) -> AnalysisTask:
        return _Refuser(bundle, device)

    analyzer = Analyzer(bundle_dir, "cpu", tasks=(*TASKS, TaskRegistration("refuser", refuser)))
    with pytest.raises(AnalysisError) as caught:
        analyzer.analyze(series, None, out_dir=tmp_path / "out")
    assert caught.value.reason == "toy-refused"
    assert not (tmp_path / "out").exists()
