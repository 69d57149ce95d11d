"""Study analysis end to end: one CT series in, DICOM-SEG + TID 1500 SR + PDF + ``result.json`` out.

Pipeline (timed per stage in ``result.timings_s``):

1. ``read``: the DICOM series (:func:`inference.volume_io.read_dicom_series`) or a NIfTI file.
2. ``localise``: the coarse pancreas localisation (:class:`Localiser`): the bundle's learned
   localiser when it ships one (a small U-Net on the whole CT at 5 mm,
   :mod:`inference.localiser`), else :class:`LandmarkLocaliser` (anatomical landmarks). Both
   give a confidence; ``result.localisation.method`` names the one that ran. Uncertain
   localisation is reported and warned about, never hidden.
3. Every registered task (:data:`inference.tasks.TASKS`, the task protocol of
   :mod:`inference.tasks.protocol`) on the same CT, clinical variables and localisation; each
   adds its result fields or section, its label map and its own timed stages (the resectability
   task: ``preprocess``, ``inference``, ``postprocess``, ``measure``).
4. With a lymph-node bundle (``lymph_nodes``, :mod:`inference._analysis_lymph_nodes`): the
   lymph-node model on the CT and the staging tumor mask, timed as ``lymph_nodes`` and
   ``lymph_nodes_<stage>``; its failure leaves the rest of the result intact (a warning says
   why). Its nodes get a SEG of their own (``seg-lymph-nodes.dcm``) that the SR references.
5. With a survival bundle (``survival``, :mod:`inference._analysis_survival`): the survival
   model on the CT, the staging tumor mask, the registry's sex, age and CA 19-9 and the TNM
   inputs, timed as ``survival``; no prognosis without a PDAC (a note says why), and its
   failure leaves the rest of the result intact (a warning says why).
5. ``write_seg``, ``write_sr``, ``write_pdf`` and ``result.json`` (a NIfTI input gets the label
   map as NIfTI and the bare PDF instead: there is no DICOM source to reference). With
   ``parallel_writing`` the SEG is written in a helper process from the moment the task's label
   map exists (:mod:`inference._analysis_writing`).

Expected failures raise :class:`AnalysisError` with a named ``reason`` (nothing is written).
Investigational, not for clinical use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydicom.uid import generate_uid

from inference._analysis_detection import Detector, DetectorOutput, PdacDetector, apply_gate
from inference._analysis_localise import (
    MAX_DISAGREEMENT_MM,
    MIN_CONFIDENCE,
    CrossCheckedLocaliser,
    LandmarkLocaliser,
    LocalisationEstimate,
    Localiser,
    with_known_landmarks,
)
from inference._analysis_lymph_nodes import (
    LN_FAILED,
    LymphNodeAssessor,
    LymphNodeOutput,
    LymphNodeStage,
    run_lymph_nodes,
)
from inference._analysis_outputs import (
    new_outputs,
    write_result_json,
    write_without_dicom,
)
from inference._analysis_survival import SurvivalAssessor, SurvivalStage, run_survival
from inference._analysis_writing import SegWriting
from inference._output_process import WriterProcess
from inference._writer_common import load_source_headers
from inference.bundle import LoadedBundle, load_bundle, sha256_file
from inference.landmark_store import LandmarkStore
from inference.tasks import TASKS, AnalysisError, AnalysisTask, TaskContext, TaskRegistration
from inference.tasks.resectability.task import clinical_weight_notes
from inference.timing import timed
from inference.volume import Volume, read_nifti
from inference.volume_io import DicomVolume, read_dicom_series
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.result import (
    AnalysisResult,
    BundleRef,
    Localisation,
    Outputs,
    SourceSeries,
)

_log = logging.getLogger(__name__)

__all__ = [
    "LN_FAILED",
    "MIN_CONFIDENCE",
    "AnalysisError",
    "AnalysisOutput",
    "Analyzer",
    "Detector",
    "LandmarkLocaliser",
    "LocalisationEstimate",
    "Localiser",
    "LymphNodeAssessor",
    "LymphNodeStage",
    "PdacDetector",
    "SurvivalAssessor",
    "SurvivalStage",
    "clinical_weight_notes",
    "default_localiser",
    "resolve_device",
]


@dataclass(frozen=True)
class AnalysisOutput:
    """What :meth:`Analyzer.analyze` produced.

    Attributes
    ----------
    result
        The analysis result (also in ``result_json``).
    files
        The DICOM objects written: SEG, SR, encapsulated PDF (empty for a NIfTI input).
    result_json
        Path of ``result.json``.
    """

    result: AnalysisResult
    files: tuple[Path, ...]
    result_json: Path


@dataclass(frozen=True)
class _Extras:
    """What the optional models add to the SEG series: lesions and lymph nodes."""

    detected: DetectorOutput | None
    nodes: LymphNodeOutput | None


@dataclass(frozen=True)
class _Source:
    image: Volume
    dicom: DicomVolume | None
    files: Path | tuple[Path, ...]


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.

    Raises
    ------
    ValueError
        For an unknown name or ``cuda`` without a GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def _localisation_details(loc: LocalisationEstimate) -> dict[str, float | str]:
    """What the localisation measured, for a ``not-localised`` refusal."""
    details: dict[str, float | str] = {
        "confidence": round(loc.confidence, 2),
        "min_confidence": MIN_CONFIDENCE,
    }
    if loc.disagreement_mm is not None:
        details["localisers_apart_mm"] = round(loc.disagreement_mm, 1)
        details["limit_mm"] = MAX_DISAGREEMENT_MM
    details["method"] = loc.method
    return details


def _is_nifti(series: Path | Sequence[Path]) -> bool:
    return isinstance(series, Path) and series.name.endswith((".nii", ".nii.gz"))


def _read(series: Path | Sequence[Path]) -> _Source:
    try:
        if _is_nifti(series):
            assert isinstance(series, Path)
            return _Source(read_nifti(series), None, series)
        files = series if isinstance(series, Path) else tuple(Path(p) for p in series)
        dicom = read_dicom_series(files)
    except (ValueError, OSError) as exc:
        raise AnalysisError("unreadable-series", " ".join(str(exc).split())) from exc
    if dicom.modality not in ("CT", ""):
        raise AnalysisError("not-ct", f"the series is {dicom.modality}, not CT")
    return _Source(dicom.volume, dicom, files)


def default_localiser(bundle: LoadedBundle) -> Localiser:
    """The coarse localisation stage the :class:`Analyzer` of ``bundle`` uses by default.

    The bundle's learned localiser cross-checked against the anatomical landmarks when it
    ships one, else the landmarks alone.
    """
    learned = bundle.localiser
    if learned is None:
        return LandmarkLocaliser()
    return CrossCheckedLocaliser(learned, LandmarkLocaliser())


def _with_output_uids(
    result: AnalysisResult, writing: SegWriting, extras: _Extras
) -> AnalysisResult:
    """``result`` naming the SEGs' UIDs (chosen before they were written) and the node SEG's."""
    uids = {
        "seg_sop_uid": writing.seg_sop_uid,
        "detection_seg_sop_uid": None if extras.detected is None else writing.detection_seg_sop_uid,
        "lymph_node_seg_sop_uid": None if extras.nodes is None else generate_uid(),
    }
    outputs = result.outputs.model_copy(update=uids)
    return result.model_copy(update={"outputs": outputs})


def _merge_labels(maps: Sequence[Volume]) -> Volume:
    """One label map from the tasks' maps on the CT grid: a later task's labels win."""
    merged = np.array(maps[0].array, dtype=np.uint8, copy=True)
    for other in maps[1:]:
        if other.shape != maps[0].shape:
            raise ValueError("the tasks' label maps are on different grids")
        values = np.asarray(other.array)
        merged[values > 0] = values[values > 0]
    return Volume(merged, maps[0].affine)


def _merge_fields(base: dict[str, Any], update: dict[str, Any], task: str) -> None:
    """Add one task's result fields; a field owned by two tasks is a registration error."""
    for key, value in update.items():
        if key == "tasks":
            sections = dict(base.get("tasks", {}))
            clash = set(sections) & set(value)
            if clash:
                raise ValueError(f"task {task}: result sections {sorted(clash)} already set")
            sections.update(value)
            base["tasks"] = sections
        elif key in base:
            raise ValueError(f"task {task}: result field {key!r} is set by another task")
        else:
            base[key] = value


class Analyzer:
    """Runs the analysis with one verified model bundle (loaded once; torch lives here).

    Parameters
    ----------
    bundle_path
        The bundle directory (or its ``bundle.json``).
    device
        ``auto``, ``cpu`` or ``cuda``.
    localiser
        The coarse localisation stage (default: the bundle's learned localiser when it has
        one, else :class:`LandmarkLocaliser`).
    tasks
        The tasks to run, in order (default: :data:`inference.tasks.TASKS`).
    tta_flips
        Test-time flip passes for tasks that support them (settings ``tta_flips``; off by
        default, since they multiply the inference time).
    detector
        The PDAC detection gate, run first on every CT (:class:`PdacDetector`; ``None``: no
        detection, the result has no ``detection`` section).
    lymph_nodes
        The lymph-node model, run after the segmentation (:class:`LymphNodeAssessor`;
        ``None``: the result has no ``lymph_nodes`` section).
    survival
        The survival model, run last (:class:`SurvivalAssessor`; ``None``: the result has no
        ``prognosis``).
    landmark_store
        Where the node's phase check kept each series' contrast landmarks
        (:mod:`inference.landmark_store`): the landmark localiser uses them instead of finding
        them again when they are there for exactly the files analysed (``None``: always found).
    parallel_writing
        Write each DICOM analysis' SEGs in a spawned helper process, the label-map SEG from
        the moment the task's label map exists, while this one measures and writes the label
        map, the PDF and (on the CPU) the detection SEG; the SR follows here
        (:mod:`inference._analysis_writing`; ``Settings.parallel_writing``). :meth:`close`
        stops the helper.

    Raises
    ------
    BundleError
        If the bundle cannot be loaded or a task refuses it (e.g. its clinical variables
        differ from the node's).
    ValueError
        For an unusable device, or two tasks registered under one name.
    """

    def __init__(
        self,
        bundle_path: Path,
        device: str = "auto",
        *,
        localiser: Localiser | None = None,
        tasks: Sequence[TaskRegistration] = TASKS,
        tta_flips: bool = False,
        detector: Detector | None = None,
        lymph_nodes: LymphNodeStage | None = None,
        survival: SurvivalStage | None = None,
        landmark_store: LandmarkStore | None = None,
        parallel_writing: bool = False,
    ) -> None:
        self._tta_flips = tta_flips
        self._landmark_store = landmark_store
        self._detector = detector
        self._lymph_nodes = lymph_nodes
        self._survival = survival
        self._bundle = load_bundle(bundle_path)
        self._device = resolve_device(device)
        names = [t.name for t in tasks]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"tasks must be one or more distinct names, got {names}")
        self._tasks: tuple[AnalysisTask, ...] = tuple(
            t.build(self._bundle, self._device) for t in tasks
        )
        model = self._bundle.meta.get("model", {})
        self.bundle_ref = BundleRef(
            name=str(model.get("name", "")) or "unnamed",
            version=str(model.get("version", "")) or "0",
            sha256=sha256_file(self._bundle.path / "bundle.json"),
        )
        self._localiser: Localiser = (
            default_localiser(self._bundle) if localiser is None else localiser
        )
        self._writer = WriterProcess() if parallel_writing else None

    def close(self) -> None:
        """Stop the SEG writer process, if there is one (the analyzer writes in-process after)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def bundle(self) -> LoadedBundle:
        """The loaded bundle."""
        return self._bundle

    @property
    def localiser(self) -> Localiser:
        """The coarse localisation stage in use."""
        return self._localiser

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks this analyzer runs, in order."""
        return tuple(t.name for t in self._tasks)

    def analyze(
        self,
        series: Path | Sequence[Path],
        clinical: ClinicalVariables | None,
        *,
        out_dir: Path,
        job_id: str | None = None,
        registry_status: str = "not_configured",
        warnings: Sequence[str] = (),
        series_version: int | None = None,
    ) -> AnalysisOutput:
        """Analyse one CT and write its outputs under ``out_dir``.

        Parameters
        ----------
        series
            A DICOM series (directory, or its files) or a NIfTI file (``.nii``/``.nii.gz``).
        clinical
            The patient's clinical variables; ``None`` or all missing: knock-out path.
        out_dir
            Folder for ``seg.dcm``, ``sr.dcm``, ``report.dcm``, ``report.pdf`` and
            ``result.json`` (created).
        job_id
            The node's job id, recorded in the result.
        registry_status
            How the registry lookup went (recorded in ``result.clinical``).
        warnings
            Warnings from earlier steps (e.g. the registry), carried into every output.
        series_version
            The node's version of the series (``result.source``; ``None`` outside the node).

        Returns
        -------
        AnalysisOutput
            The result, the DICOM files and the ``result.json`` path.

        Raises
        ------
        AnalysisError
            For an input that cannot be analysed (see its ``reason``).
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        notes: list[str] = list(warnings)
        source = timed(timings, "read", lambda: _read(series))
        if source.dicom is not None:
            notes.extend(source.dicom.warnings)
        writing = self._seg_writing(source, out_dir)
        try:
            detected = None
            if self._detector is not None:
                detector = self._detector
                detected = timed(timings, "detection", lambda: detector(source.image))
                notes.extend(detected.detection.warnings)
                # Beside a network on the GPU; on the CPU it would slow the network as much.
                if writing is not None and self._device.type == "cuda":
                    writing.start_lesions(detected)
            # Looking the node's landmarks up is part of localising (and timed with it).
            loc = timed(
                timings, "localise", lambda: self._localiser_for(source, job_id)(source.image)
            )
            notes.extend(loc.warnings)
            if not loc.found:
                raise AnalysisError(
                    "not-localised",
                    f"the pancreas was not located (confidence {loc.confidence:.2f}, "
                    f"{loc.method}); no category is given",
                    details=_localisation_details(loc),
                )
            # One task's label map is the SEG's: its writing can start before the task measures.
            early = writing.start if writing is not None and len(self._tasks) == 1 else None
            context = TaskContext(
                source.image, clinical, registry_status, loc, self._tta_flips, on_label_map=early
            )
            fields, label = self._run_tasks(context, notes, timings)
            if detected is not None:
                fields["detection"] = apply_gate(fields, notes, detected.detection, label)
            nodes = None
            if self._lymph_nodes is not None:
                nodes = run_lymph_nodes(self._lymph_nodes, source.image, label, notes, timings)
                fields["lymph_nodes"] = None if nodes is None else nodes.assessment
            if self._survival is not None:
                fields["prognosis"] = run_survival(
                    self._survival, source.image, label, fields, clinical, notes, timings
                )
            result = self._result(source, loc, fields, job_id, notes, series_version)
            extras = _Extras(
                None if detected is None or detected.lesions is None else detected,
                None if nodes is None or nodes.nodes is None else nodes,
            )
            if writing is not None:
                result = _with_output_uids(result, writing, extras)
            return self._write(result, source, (label, extras), writing, out_dir, timings, started)
        except BaseException:
            if writing is not None:
                writing.abandon()
            raise

    def _seg_writing(self, source: _Source, out_dir: Path) -> SegWriting | None:
        """How this analysis writes its DICOM objects (``None`` for a NIfTI input)."""
        dicom = source.dicom
        if dicom is None:
            return None
        # The headers read with the pixels; a volume made elsewhere may come without them.
        headers = tuple(dicom.headers) or tuple(
            load_source_headers(source.files, dicom.series_instance_uid)
        )
        return SegWriting(self._writer, dicom, headers, self.bundle_ref, out_dir)

    def _run_tasks(
        self, context: TaskContext, notes: list[str], timings: dict[str, float]
    ) -> tuple[dict[str, Any], Volume]:
        """Every task on the CT: the result fields they add and their merged label map."""
        fields: dict[str, Any] = {}
        label_maps: list[Volume] = []
        for task in self._tasks:
            output = task.run(context)
            _merge_fields(fields, dict(output.result_update), task.name)
            if output.label_map is not None:
                label_maps.append(output.label_map)
            notes.extend(output.warnings)
            timings.update(output.timings_s)
        if not label_maps:
            raise AnalysisError("no-pancreas", "no task produced a label map")
        return fields, _merge_labels(label_maps)

    def _localiser_for(self, source: _Source, job_id: str | None) -> Localiser:
        """The localiser, with the series' landmarks when the node's phase check kept them."""
        # The node names a series by its files; a folder (the command line) is never stored.
        if self._landmark_store is None or not isinstance(source.files, tuple):
            return self._localiser
        marks = self._landmark_store.get(source.files)
        if marks is None:
            return self._localiser
        _log.info("job %s: localising with the landmarks of the node's phase check", job_id)
        return with_known_landmarks(self._localiser, marks)

    def _result(
        self,
        source: _Source,
        loc: LocalisationEstimate,
        fields: dict[str, Any],
        job_id: str | None,
        notes: list[str],
        series_version: int | None,
    ) -> AnalysisResult:
        dicom = source.dicom
        read = None
        if dicom is not None:
            read = SourceSeries(
                instance_count=len(set(dicom.sop_instance_uids)), series_version=series_version
            )
        return AnalysisResult.model_validate(
            {
                **fields,
                "source": read,
                "study_uid": dicom.study_instance_uid if dicom is not None else "",
                "series_uid": dicom.series_instance_uid if dicom is not None else "",
                "job_id": job_id,
                "bundle": self.bundle_ref,
                "localisation": Localisation(
                    found=loc.found,
                    confidence=round(loc.confidence, 4),
                    box_mm=loc.box_mm,
                    method=loc.method,
                ),
                "outputs": new_outputs() if dicom is not None else Outputs(),
                "warnings": tuple(dict.fromkeys(notes)),
            }
        )

    @staticmethod
    def _write(
        result: AnalysisResult,
        source: _Source,
        labels: tuple[Volume, _Extras],
        writing: SegWriting | None,
        out_dir: Path,
        timings: dict[str, float],
        started: float,
    ) -> AnalysisOutput:
        label_ct = labels[0]
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AnalysisError("unwritable-output", f"cannot create {out_dir}") from exc
        if writing is None:
            result = result.model_copy(
                update={"warnings": (*result.warnings, "NIfTI input: no DICOM objects written")}
            )
            written = write_without_dicom(result, source.image, label_ct, out_dir, timings)
        else:
            written = writing.finish(
                result, source.image, label_ct, (labels[1].detected, labels[1].nodes), timings
            )
        timings["total"] = round(time.perf_counter() - started, 3)
        final = result.model_copy(update={"timings_s": dict(timings)})
        path = write_result_json(AnalysisResult.model_validate(final.model_dump()), out_dir)
        return AnalysisOutput(final, written.dicom, path)
