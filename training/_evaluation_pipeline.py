"""The end-to-end pipeline as ``pancreas-node evaluate`` runs it: observed, and scored per case.

:class:`PipelineProbe` builds a real :class:`inference.analysis.Analyzer` whose localiser and
tasks are wrapped (composition, not patching) so that the evaluation sees what the node
computed: the localiser's estimate, also when it refuses, and the tasks' label map on the CT
grid (merged as the analyzer merges it), which the node itself only writes as DICOM-SEG. For
the real-CT check the localiser can be *forced*: a refusal (``found`` false) is turned into a
found estimate at the same centre, so the segmentation behind the refusal can be scored; the
refusal itself is reported beside it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.analysis import (
    AnalysisError,
    Analyzer,
    LandmarkLocaliser,
    LocalisationEstimate,
    Localiser,
    default_localiser,
)
from inference.bundle import LoadedBundle
from inference.tasks import (
    TASKS,
    AnalysisTask,
    TaskContext,
    TaskFactory,
    TaskOutput,
    TaskRegistration,
)
from inference.volume import Volume, read_nifti
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.labels import label_by_name
from training._evaluation_scores import score_label_map
from training._evaluation_truth import PatientTruth
from training.dataset import CaseRecord

__all__ = ["FORCED_NOTE", "PipelineProbe", "pipeline_case"]

#: The warning added to a result whose localiser refusal was forced past (evaluation only).
_TUMOR_VALUE = label_by_name("tumor").value

FORCED_NOTE = "evaluation: forced past the localiser refusal (the node would refuse)"


class _ProbeLocaliser:
    """The analyzer's localiser, keeping its last estimate; ``force`` overrides a refusal."""

    def __init__(self, inner: Localiser) -> None:
        self.inner = inner
        self.last: LocalisationEstimate | None = None
        self.force = False

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        self.last = self.inner(volume)
        if self.force and not self.last.found:
            return dataclasses.replace(
                self.last, found=True, warnings=(*self.last.warnings, FORCED_NOTE)
            )
        return self.last


@dataclass
class _LabelSink:
    """The label maps the tasks returned for the CT being analysed."""

    maps: list[Volume] = field(default_factory=list)

    def merged(self) -> Volume | None:
        """One map, a later task's labels winning (as the analyzer merges them)."""
        if not self.maps:
            return None
        merged = np.array(self.maps[0].array, dtype=np.uint8, copy=True)
        for other in self.maps[1:]:
            values = np.asarray(other.array)
            merged[values > 0] = values[values > 0]
        return Volume(merged, self.maps[0].affine)


@dataclass(frozen=True)
class _RecordingTask:
    inner: AnalysisTask
    sink: _LabelSink

    @property
    def name(self) -> str:
        return self.inner.name

    def run(self, context: TaskContext) -> TaskOutput:
        output = self.inner.run(context)
        if output.label_map is not None:
            self.sink.maps.append(output.label_map)
        return output


def _build(
    build: TaskFactory, sink: _LabelSink, bundle: LoadedBundle, device: torch.device
) -> AnalysisTask:
    return _RecordingTask(build(bundle, device), sink)


class PipelineProbe:
    """An :class:`Analyzer` of ``bundle_path`` whose localisation and label map are observed.

    Parameters
    ----------
    bundle_path
        The bundle directory.
    device
        ``auto``, ``cpu`` or ``cuda``.
    tasks
        The tasks to run (default :data:`inference.tasks.TASKS`).
    """

    def __init__(
        self, bundle_path: Path, device: str, tasks: Sequence[TaskRegistration] = TASKS
    ) -> None:
        self.sink = _LabelSink()
        self.localiser = _ProbeLocaliser(LandmarkLocaliser())
        wrapped = [TaskRegistration(t.name, partial(_build, t.build, self.sink)) for t in tasks]
        self.analyzer = Analyzer(bundle_path, device, localiser=self.localiser, tasks=wrapped)
        # The localiser the node would use: the bundle's learned one (checked) or the landmarks.
        self.localiser.inner = default_localiser(self.analyzer.bundle)

    def analyse(
        self, series: Path, clinical: ClinicalVariables | None, out_dir: Path, *, force: bool,
        localiser: Localiser | None = None,
    ) -> tuple[dict[str, Any], Volume | None]:  # fmt: skip
        """Analyse one CT: the result fields the evaluation keeps, and the label map.

        ``localiser`` replaces the node's for this CT (the real-CT check places the cube with
        the landmarks too). Never raises for a CT the node refuses or fails on: the reason is
        recorded (``reason``, ``message``).
        """
        self.sink.maps.clear()
        self.localiser.last = None
        self.localiser.force = force
        node = self.localiser.inner
        if localiser is not None:
            self.localiser.inner = localiser
        record: dict[str, Any] = dict.fromkeys(
            ("category", "probabilities", "reason", "message", "rule_category", "outcome")
        )
        record.update(contact_deg={}, tumor_volume_ml=None, warnings=[])
        started = time.perf_counter()
        try:
            result = self.analyzer.analyze(
                series, clinical, out_dir=out_dir, registry_status="file"
            ).result
            category = result.category  # None: no tumor segmented (outcome no-tumor)
            record.update(
                category=None if category is None else category.label,
                probabilities=None if category is None else list(category.probabilities),
                rule_category=result.rule_category, outcome=result.outcome,
                warnings=list(result.warnings),
                contact_deg=dict(result.measurements.contact_deg),
                tumor_volume_ml=result.measurements.tumor_volume_ml,
            )  # fmt: skip
        except AnalysisError as exc:
            record.update(reason=exc.reason, message=str(exc))
        except (ValueError, OSError, RuntimeError) as exc:  # recorded, not fatal
            record.update(reason="error", message=" ".join(f"{type(exc).__name__}: {exc}".split()))
        finally:
            self.localiser.force = False
            self.localiser.inner = node
        record["seconds"] = round(time.perf_counter() - started, 2)
        return record, self.sink.merged()


def _localisation(
    loc: LocalisationEstimate | None, centre: tuple[float, float, float] | None
) -> dict[str, Any] | None:
    if loc is None:
        return None
    found = [float(v) for v in loc.centre_mm]
    distance = None if centre is None else float(np.linalg.norm(np.subtract(found, centre)))
    return {
        "centre_mm": found, "true_centre_mm": None if centre is None else list(centre),
        "distance_mm": distance, "confidence": float(loc.confidence),
        "found": bool(loc.found), "method": str(loc.method),
    }  # fmt: skip


def pipeline_case(
    probe: PipelineProbe, case: CaseRecord, truth: PatientTruth, data_dir: Path, out: Path,
    centre: tuple[float, float, float] | None,
) -> dict[str, Any]:  # fmt: skip
    """Analyse one cohort patient end to end and score its label map against ``label.nii.gz``.

    The input is the patient's DICOM series when there is one (the node's real input), else
    its NIfTI image.
    """
    dicom = data_dir / case.patient_id / "dicom"
    series = dicom if dicom.is_dir() else case.image or case.dicom_dir
    record: dict[str, Any] = {"input": "dicom" if dicom.is_dir() else "nifti"}
    record.update(has_tumor=truth.has_tumor, contact_true=dict(truth.contact_deg), scores=None)
    # A label map without the tumor (partial labels) cannot tell whether it was found.
    record["tumor_labelled"] = _TUMOR_VALUE in case.labelled
    if series is None:
        record.update(reason="error", message="no image", category=None, outcome=None)
        return record
    analysed, label_map = probe.analyse(
        series, ClinicalVariables(case.clinical), out / case.patient_id, force=False
    )
    record.update(analysed)
    record["localisation"] = _localisation(probe.localiser.last, centre)
    if label_map is not None and case.label is not None:
        try:
            record["scores"] = score_label_map(label_map, read_nifti(case.label))
        except (ValueError, OSError) as exc:  # recorded, not fatal
            record["score_error"] = " ".join(f"{type(exc).__name__}: {exc}".split())
    return record
