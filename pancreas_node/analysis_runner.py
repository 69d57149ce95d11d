"""The worker's :class:`~dicom_node.worker.JobRunner` that analyses a series.

For one job: the spool paths of the job's series version, the registry lookup through the
study's join keys (an audit event ``registry.lookup`` records the status only, never values or
identifiers), the analysis (:class:`inference.analysis.Analyzer`) into
``<data>/results/<job id>/``, and the outcome the worker stores and dispatches.

This module does not import torch: the analyzer is passed in, built by ``serve`` only when a
bundle is configured (:func:`build_runner` imports :mod:`inference.analysis` lazily).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from db import (
    JobInfo,
    NewResult,
    NodeDatabase,
    RegistryBridge,
    RegistryLookupStatus,
    RegistryResult,
    add_audit_event,
    get_series,
    get_study,
    series_instance_paths,
)
from dicom_node import NodeMetrics
from dicom_node.worker import JobFailedError, JobOutcome
from pancreas_contracts import Settings
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.result import CATEGORY_LABELS, AnalysisResult, BundleRef
from pancreas_contracts.status import REFUSED_PREFIX, StudyStatus

if TYPE_CHECKING:
    from inference.analysis import AnalysisOutput


class AnalysisErrorLike(Protocol):
    """What the runner reads of :class:`inference.tasks.AnalysisError`."""

    reason: str
    details: Mapping[str, float | str]

    def details_text(self) -> str:
        """The measured details in words."""
        ...


__all__ = ["AnalysisRunner", "AnalyzerLike", "build_runner", "new_result"]

_ACTOR = "worker"
_log = logging.getLogger(__name__)


class AnalyzerLike(Protocol):
    """What the runner needs of :class:`inference.analysis.Analyzer`."""

    @property
    def bundle_ref(self) -> BundleRef:
        """The bundle that analyses."""
        ...

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
        """Analyse one series."""
        ...

    def close(self) -> None:
        """Release what the analyzer holds (its writer process)."""
        ...


def new_result(result: AnalysisResult, result_json: Path) -> NewResult:
    """The job record's result built from an :class:`AnalysisResult`."""
    # A no-tumor result (outcome no-tumor) has no category: stored as None.
    label = None if result.category is None else result.category.label
    nodes = result.lymph_nodes
    prognosis = result.prognosis
    return NewResult(
        result_json_path=str(result_json),
        bundle_name=result.bundle.name,
        bundle_version=result.bundle.version,
        bundle_sha256=result.bundle.sha256,
        category=None if label is None else CATEGORY_LABELS.index(label),
        category_label=label,
        outcome=result.outcome,
        pdac_likelihood=None if result.detection is None else result.detection.pdac_likelihood,
        n_estimate=None if nodes is None else nodes.n_estimate,
        n_positive_probability=None if nodes is None else nodes.n_positive_probability,
        risk_group=None if prognosis is None else prognosis.risk_group,
        death_probability_1y=None if prognosis is None else prognosis.death_probability[0],
        death_probability_3y=None if prognosis is None else prognosis.death_probability[2],
        probabilities=() if result.category is None else tuple(result.category.probabilities),
        measurements=result.measurements.model_dump(mode="json"),
        timings_s=dict(result.timings_s),
        clinical_used=result.clinical.used,
        clinical_missing=result.clinical.missing,
        clinical_imputed=result.clinical.imputed,
        clinical_knocked_out=result.clinical.knocked_out,
        registry_status=result.clinical.registry_status,
        warnings=result.warnings,
    )


class AnalysisRunner:
    """Runs one job: series paths, registry lookup, analysis, outcome.

    Parameters
    ----------
    database
        The node database.
    analyzer
        The loaded analyzer (:class:`inference.analysis.Analyzer`).
    settings
        Node settings (for ``results_dir``).
    registry
        The clinical registry bridge, or ``None`` when none is configured (knock-out path).
    metrics
        Counts each registry lookup by its status (``pancreas_ai_registry_lookups_total``);
        ``None``: no counting.
    """

    def __init__(
        self,
        database: NodeDatabase,
        analyzer: AnalyzerLike,
        settings: Settings,
        registry: RegistryBridge | None = None,
        *,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._db = database
        self._analyzer = analyzer
        self._settings = settings
        self._registry = registry
        self._metrics = metrics

    def __call__(self, job: JobInfo) -> JobOutcome:
        """Analyse the job's series.

        Raises
        ------
        JobFailedError
            With a named reason and stage: no stored instances, an unusable bundle (not
            retryable) or an I/O error (retryable). An input the pipeline refuses is no
            failure: the outcome then carries the refusal and its document.
        """
        paths = series_instance_paths(
            self._db, job.series_instance_uid, max_version=job.series_version
        )
        existing = [Path(p) for p in paths if Path(p).is_file()]
        if not existing:
            raise JobFailedError(
                "series unavailable: no stored instances", retryable=False, stage="series"
            )
        lookup = self._lookup(job)
        clinical = None if lookup.imaging_only else lookup.variables
        return self._analyze(job, existing, clinical, lookup)

    def _lookup(self, job: JobInfo) -> RegistryResult:
        if self._registry is None:
            lookup = RegistryResult.without_registry(RegistryLookupStatus.NOT_CONFIGURED)
        else:
            series = get_series(self._db, job.series_instance_uid)
            study = None if series is None else get_study(self._db, series.study_instance_uid)
            lookup = self._registry.lookup_study(
                patient_id=None if study is None else study.patient_id,
                accession_number=None if study is None else study.accession_number,
                study_date=None if study is None else study.study_date,
            )
        add_audit_event(
            self._db,
            actor=_ACTOR,
            action="registry.lookup",
            object_type="job",
            object_id=job.id,
            detail={"status": lookup.status.value},
        )
        if self._metrics is not None:
            self._metrics.registry_lookup(lookup.status)
        return lookup

    def _analyze(
        self,
        job: JobInfo,
        paths: list[Path],
        clinical: ClinicalVariables | None,
        lookup: RegistryResult,
    ) -> JobOutcome:
        # Local import: torch is loaded only where an analyzer exists (it already does here).
        from inference.analysis import AnalysisError
        from inference.bundle import BundleError

        out_dir = self._settings.results_dir / job.id
        try:
            output = self._analyzer.analyze(
                paths,
                clinical,
                out_dir=out_dir,
                job_id=job.id,
                registry_status=lookup.status.value,
                warnings=lookup.warnings,
                series_version=job.series_version,
            )
        except AnalysisError as exc:
            if exc.reason == "unwritable-output":
                raise JobFailedError(
                    "results folder not writable", retryable=True, stage="output"
                ) from exc
            return self._refused(job, paths, out_dir, exc)
        except BundleError as exc:
            raise JobFailedError("bundle unusable", retryable=False, stage="bundle") from exc
        except OSError as exc:
            raise JobFailedError(
                f"I/O error: {type(exc).__name__}", retryable=True, stage="analysis"
            ) from exc
        return JobOutcome(new_result(output.result, output.result_json), output.files)

    def _refused(
        self, job: JobInfo, paths: list[Path], out_dir: Path, exc: AnalysisErrorLike
    ) -> JobOutcome:
        """A refusal is an outcome: the job is done with its reason and the refusal document.

        The reason reads ``refused: <reason>: <what was measured>`` (no identifiers); the
        document (:func:`inference.outcome_sr.write_outcome_sr`) is delivered like a result.
        Without a readable source series no document is written; the job is refused all the
        same.
        """
        from inference.outcome_sr import write_outcome_sr

        measured = exc.details_text()
        refusal = REFUSED_PREFIX + exc.reason + (f": {measured}" if measured else "")
        try:
            document = write_outcome_sr(
                paths,
                out_dir,
                status=StudyStatus.REFUSED,
                reason=exc.reason,
                details=exc.details,
                bundle=self._analyzer.bundle_ref,
                details_text=measured,
            )
        except (ValueError, OSError) as write_error:
            _log.warning(
                "job %s: refusal document not written (%s)", job.id, type(write_error).__name__
            )
            return JobOutcome(None, (), refusal=refusal)
        return JobOutcome(None, (document,), refusal=refusal)

    def close(self) -> None:
        """Close the registry bridge's connections and stop the analyzer's writer process."""
        if self._registry is not None:
            self._registry.close()
        self._analyzer.close()


def build_runner(
    settings: Settings, database: NodeDatabase, metrics: NodeMetrics | None = None
) -> AnalysisRunner | None:
    """The runner ``serve`` uses: ``None`` without a bundle (jobs then wait in the queue).

    ``metrics`` (the node's :class:`dicom_node.NodeMetrics`) counts the registry lookups.

    Raises
    ------
    inference.bundle.BundleError
        If the configured bundle cannot be loaded.
    ValueError
        For an unusable device or registry configuration.
    """
    if settings.bundle_path is None:
        return None
    from inference.analysis import (
        Analyzer,
        LymphNodeAssessor,
        PdacDetector,
        SurvivalAssessor,
        resolve_device,
    )
    from inference.landmark_store import LandmarkStore

    # torch only when a bundle is configured (the imports above)
    detector = None
    if settings.detection_bundle_path is not None:
        detector = PdacDetector(
            settings.detection_bundle_path,
            resolve_device(settings.device),
            settings.detection_threshold,
        )
    lymph_nodes = None
    if settings.lymph_node_bundle_path is not None:  # the lymph-node model (issue 24)
        lymph_nodes = LymphNodeAssessor(
            settings.lymph_node_bundle_path, resolve_device(settings.device)
        )
    survival = None
    if settings.survival_bundle_path is not None:  # the survival model (issue 25)
        survival = SurvivalAssessor(settings.survival_bundle_path, resolve_device(settings.device))
    analyzer = Analyzer(
        settings.bundle_path,
        settings.device,
        tta_flips=settings.tta_flips,
        parallel_writing=settings.parallel_writing,
        detector=detector,
        lymph_nodes=lymph_nodes,
        survival=survival,
        landmark_store=LandmarkStore(settings.landmarks_dir),
    )
    registry = (
        RegistryBridge.from_toml(settings.registry_config)
        if settings.registry_config is not None
        else None
    )
    return AnalysisRunner(database, analyzer, settings, registry, metrics=metrics)
