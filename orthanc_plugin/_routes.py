"""The ``/pancreas-ai/`` REST routes, independent of Orthanc's callback objects.

Orthanc's HTTP server authenticates every request before a plugin route sees it (HTTP 401
without valid credentials when ``AuthenticationEnabled`` is true). The routes:

``GET  /pancreas-ai/studies/{study}/results``
    Results summary of a study: status and labels, category and probabilities, contact angles
    and measurements, clinical inputs, model version, the lymph-node model's N estimate and
    nodes (``lymph_nodes``, :mod:`orthanc_plugin._lymph_nodes`; ``null`` without one), the
    survival model's prognosis (``prognosis``, :mod:`orthanc_plugin._prognosis`; ``null``
    without one), links to the SEG/SR/PDF instances and to the detector's lesion SEG
    (``detection_seg``) and the node SEG (``lymph_node_seg``).
``GET  /pancreas-ai/studies/{study}/status``
    The study's AI status, its series as the node holds them (the node's routing decision and
    reason, and jobs), and the plugin's submissions: whether each series was forwarded to the
    node and where it stands (``progress``: not forwarded, sending, waiting for the node,
    analyse, skipped, failed) with the reason (``reason``: the plugin's for a series not
    forwarded, the node's routing reason once the node decided, else the last send error).
``POST /pancreas-ai/studies/{study}/reanalyse``
    Re-analyse: retry failed jobs, queue jobs for series without one (or analysed by another
    bundle), or, when the node has no series of the study to analyse, send its forwarded
    series to the node again (the node decides again only on instances new to it).
    Only ``PancreasAI.WriteUsers`` (default ``admin``) may POST; others get 403.
``GET  /pancreas-ai/jobs/{job id}``
    One job's status.
``GET  /pancreas-ai/worklist``
    The tumor-board worklist (filters and sort: :mod:`orthanc_plugin._worklist`).
``GET  /pancreas-ai/queue``
    Job counts by state in the node and submission counts by state in the plugin.

``{study}`` is a StudyInstanceUID or Orthanc's study identifier.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from db import (
    JobInfo,
    ResultInfo,
    RoutingDecision,
    SeriesInfo,
    StudyJobInfo,
    enqueue_job,
    get_job,
    get_result,
    get_series,
    list_study_jobs,
    list_worklist,
    queue_counts,
    reopen_series,
    retry_job,
)
from orthanc_plugin._config import PluginConfig
from orthanc_plugin._lymph_nodes import lymph_nodes_json
from orthanc_plugin._node import NodeContext
from orthanc_plugin._orthanc_api import OrthancCallError, RestApi, get_json
from orthanc_plugin._prognosis import prognosis_json
from orthanc_plugin._status import (
    category_name,
    progress_reason,
    series_progress,
    study_labels,
)
from orthanc_plugin._store import Submission, SubmissionStore
from orthanc_plugin._worklist import parse_worklist_query, worklist_page
from pancreas_contracts import JobState
from pancreas_contracts.job_states import ASSEMBLY_STAGE, failed_stage
from pancreas_contracts.result import CATEGORY_LABELS, AnalysisResult

__all__ = ["Request", "Response", "RouteTable", "Routes"]

_log = logging.getLogger(__name__)
_ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ORIGIN = "orthanc-plugin"


@dataclass(frozen=True)
class Request:
    """An HTTP request to a plugin route."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def user(self) -> str:
        """The Orthanc user who sent it (from the basic-auth header Orthanc checked)."""
        header = self.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return "unknown"
            return decoded.split(":", 1)[0] or "unknown"
        return "anonymous"


@dataclass(frozen=True)
class Response:
    """Status and body of an answer: JSON, or ``bytes`` of ``content_type`` (CSV, PDF)."""

    status: int
    body: Any
    allowed: str | None = None  # set for 405 answers
    content_type: str = "application/json"


#: One route: its path pattern, and a handler per HTTP method.
RouteTable = list[tuple[re.Pattern[str], dict[str, Callable[..., Response]]]]


def _error(status: int, message: str) -> Response:
    return Response(status, {"error": message})


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _job_json(job: JobInfo) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "series_instance_uid": job.series_instance_uid,
        "series_version": job.series_version,
        "bundle_sha256": job.bundle_sha256,
        "attempts": job.attempts,
        "next_attempt_at": _iso(job.next_attempt_at),
        "failure_reason": job.failure_reason,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
    }


def _submission_json(sub: Submission, node_series: SeriesInfo | None) -> dict[str, Any]:
    return {
        "orthanc_series_id": sub.orthanc_series_id,
        "series_instance_uid": sub.series_uid,
        "instance_count": sub.instance_count,
        "state": sub.state.value,
        "forwarding": sub.forwarding,
        "progress": series_progress(sub, node_series).value,
        "reason": progress_reason(sub, node_series),
        "attempts": sub.attempts,
        "next_attempt_at": _epoch_iso(sub.next_attempt_at),
        "last_error": sub.last_error,
        "submitted_at": _epoch_iso(sub.submitted_at),
    }


def _epoch_iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()


class Routes:
    """Handles the plugin's routes.

    Parameters
    ----------
    api
        Orthanc's REST API (REST callbacks may call it).
    store
        The plugin's submission store.
    node
        The node's settings and database.
    config
        The plugin's settings.
    bundle_sha256
        Returns the hash of the node's current model bundle (for re-analysis).
    wake
        Tells the worker thread there is work (re-analysis).
    push_series
        Hands an Orthanc series to the worker as if it had just become stable.
    """

    def __init__(
        self,
        api: RestApi,
        store: SubmissionStore,
        node: NodeContext,
        config: PluginConfig,
        bundle_sha256: Callable[[], str],
        wake: Callable[[], None],
        push_series: Callable[[str], None],
    ) -> None:
        self._api = api
        self._store = store
        self._node = node
        self._config = config
        self._bundle_sha256 = bundle_sha256
        self._wake = wake
        self._push_series = push_series
        self._table: RouteTable = [
            (re.compile(r"^/pancreas-ai/studies/([^/]+)/results$"), {"GET": self.results}),
            (re.compile(r"^/pancreas-ai/studies/([^/]+)/status$"), {"GET": self.status}),
            (re.compile(r"^/pancreas-ai/studies/([^/]+)/reanalyse$"), {"POST": self.reanalyse}),
            (re.compile(r"^/pancreas-ai/jobs/([^/]+)$"), {"GET": self.job}),
            (re.compile(r"^/pancreas-ai/worklist$"), {"GET": self.worklist}),
            (re.compile(r"^/pancreas-ai/queue$"), {"GET": self.queue}),
        ]

    def extend(self, table: RouteTable) -> None:
        """Serve more routes (the boards' and the reviews', :mod:`orthanc_plugin._boards`)."""
        self._table.extend(table)

    def handle(self, request: Request) -> Response:
        """Route ``request``; unknown paths answer 404, wrong methods 405.

        Every method but GET changes something: only ``PancreasAI.WriteUsers`` may use it
        (403 for the others).

        Raises
        ------
        sqlalchemy.exc.SQLAlchemyError, OrthancCallError, OSError
            Left to the callback layer, which answers 503/502/500 and logs.
        """
        for pattern, handlers in self._table:
            match = pattern.match(request.path)
            if match is None:
                continue
            handler = handlers.get(request.method)
            if handler is None:
                allowed = ",".join(sorted(handlers))
                return Response(405, {"error": f"use {allowed}"}, allowed=allowed)
            if request.method != "GET" and request.user not in self._config.write_users:
                return _error(403, f"user '{request.user}' may not {request.path}")
            return handler(request, *match.groups())
        return _error(404, f"no route {request.path}")

    def resolve_study(self, ident: str) -> tuple[str | None, str | None]:
        """``(Orthanc id, StudyInstanceUID)`` of a study named either way (for other routes)."""
        return self._resolve_study(ident)

    def orthanc_study_id(self, uid: str) -> str | None:
        """Orthanc's identifier of the study ``uid`` (``None``: Orthanc lacks it)."""
        return self._lookup(uid, "Study")

    # -- helpers ---------------------------------------------------------------------------

    def _lookup(self, uid: str, kind: str) -> str | None:
        """Orthanc's identifier of the resource with DICOM UID ``uid`` (``kind`` Study, ...)."""
        if not _UID.match(uid):
            return None
        answer = json.loads(self._api.post("/tools/lookup", uid.encode("ascii")))
        for hit in answer:
            if hit.get("Type") == kind:
                return str(hit["ID"])
        return None

    def _resolve_study(self, ident: str) -> tuple[str | None, str | None]:
        """``(Orthanc id, StudyInstanceUID)`` of a study named either way."""
        if _ORTHANC_ID.match(ident):
            try:
                study = get_json(self._api, f"/studies/{ident}")
            except OrthancCallError as exc:
                if exc.not_found:
                    return None, None
                raise
            return ident, str(study["MainDicomTags"].get("StudyInstanceUID", ""))
        return self._lookup(ident, "Study"), ident

    def _study_context(
        self, ident: str
    ) -> tuple[str | None, str, list[StudyJobInfo], list[Submission]] | None:
        orthanc_id, uid = self._resolve_study(ident)
        if uid is None:
            return None
        rows = list_study_jobs(self._node.database, uid)
        subs = self._store.study_submissions(orthanc_id) if orthanc_id else []
        if orthanc_id is None and not rows:
            return None
        return orthanc_id, uid, rows, subs

    def _instance_link(self, sop_uid: str | None, study_uid: str) -> dict[str, Any] | None:
        if not sop_uid:
            return None
        instance_id = self._lookup(sop_uid, "Instance")
        if instance_id is None:
            return {"sop_instance_uid": sop_uid, "in_orthanc": False}
        instance = get_json(self._api, f"/instances/{instance_id}")
        series = get_json(self._api, f"/series/{instance['ParentSeries']}")
        series_uid = series["MainDicomTags"].get("SeriesInstanceUID", "")
        return {
            "sop_instance_uid": sop_uid,
            "in_orthanc": True,
            "orthanc_instance_id": instance_id,
            "orthanc": f"/instances/{instance_id}",
            "file": f"/instances/{instance_id}/file",
            "dicomweb": f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
        }

    # -- routes ----------------------------------------------------------------------------

    def results(self, request: Request, ident: str) -> Response:
        """``GET /pancreas-ai/studies/{study}/results``."""
        context = self._study_context(ident)
        if context is None:
            return _error(404, "study unknown to Orthanc and to the node")
        orthanc_id, uid, rows, subs = context
        labels = study_labels(rows, subs)
        body: dict[str, Any] = {
            "study_instance_uid": uid,
            "orthanc_study_id": orthanc_id,
            "status": labels.status.value,
            "status_text": labels.text,
            "reason": labels.reason,
            "labels": list(labels.labels),
            "result": None,
        }
        done = [
            r
            for r in rows
            if r.job is not None and r.job.state in (JobState.DONE, JobState.DELIVERED)
        ]
        if not done:
            return Response(200, body)
        newest = max(done, key=lambda r: (r.job.created_at, r.job.id) if r.job else ())
        assert newest.job is not None
        info = get_result(
            self._node.database, newest.job.id, actor=f"orthanc:{request.user}", origin=_ORIGIN
        )
        if info is None:
            return Response(200, body)
        body["result"] = self._result_json(newest.job, info, uid)
        return Response(200, body)

    def _result_json(self, job: JobInfo, info: ResultInfo, study_uid: str) -> dict[str, Any]:
        analysis, problem = _load_analysis(info.result_json_path)
        warnings = list(info.warnings) + ([problem] if problem else [])
        probabilities = (
            dict(zip(CATEGORY_LABELS, info.probabilities, strict=True))
            if len(info.probabilities) == len(CATEGORY_LABELS)
            else None
        )
        category = category_name(info.category, info.category_label)
        outputs = analysis.outputs if analysis is not None else None
        return {
            "job": _job_json(job),
            "series_instance_uid": job.series_instance_uid,
            # no-tumor: no tumor segmented, no category (result.json schema 1.2)
            "outcome": None if analysis is None else analysis.outcome,
            "category": {
                "label": None if category is None else category.removeprefix("nccn-"),
                "index": info.category,
                "probabilities": probabilities,
                "uncertainty": None
                if analysis is None or analysis.category is None
                else analysis.category.uncertainty,
                # 1: one model, no spread: the uncertainty says nothing (shown "not available")
                "ensemble_size": None
                if analysis is None or analysis.category is None
                else analysis.category.ensemble_size,
            },
            "rule_category": None if analysis is None else analysis.rule_category,
            "disagreement": None if analysis is None else analysis.disagreement,
            "measurements": dict(info.measurements)
            if analysis is None
            else analysis.measurements.model_dump(),
            "localisation": None if analysis is None else analysis.localisation.model_dump(),
            # result.json 1.6: the lymph-node model's N estimate and nodes (None without one)
            "lymph_nodes": None if analysis is None else lymph_nodes_json(analysis.lymph_nodes),
            # result.json 1.7: the survival model's risk group and probabilities (None without)
            "prognosis": None if analysis is None else prognosis_json(analysis.prognosis),
            "inputs": {
                "series_instance_uid": job.series_instance_uid,
                "series_version": job.series_version,
                "clinical": {
                    "used": list(info.clinical_used),
                    "missing": list(info.clinical_missing),
                    "imputed": list(info.clinical_imputed),
                    "knocked_out": info.clinical_knocked_out,
                    "registry_status": info.registry_status,
                },
            },
            "model": {
                "name": info.bundle_name,
                "version": info.bundle_version,
                "sha256": info.bundle_sha256,
            },
            "outputs": {
                "seg": self._instance_link(outputs.seg_sop_uid if outputs else None, study_uid),
                "sr": self._instance_link(outputs.sr_sop_uid if outputs else None, study_uid),
                "pdf": self._instance_link(outputs.pdf_sop_uid if outputs else None, study_uid),
                "detection_seg": self._instance_link(
                    outputs.detection_seg_sop_uid if outputs else None, study_uid
                ),
                "lymph_node_seg": self._instance_link(
                    outputs.lymph_node_seg_sop_uid if outputs else None, study_uid
                ),
            },
            "timings_s": dict(info.timings_s),
            "warnings": warnings,
            "created_at": _iso(info.created_at),
            "notice": "Investigational, not for clinical use.",
        }

    def status(self, request: Request, ident: str) -> Response:
        """``GET /pancreas-ai/studies/{study}/status``."""
        context = self._study_context(ident)
        if context is None:
            return _error(404, "study unknown to Orthanc and to the node")
        orthanc_id, uid, rows, subs = context
        labels = study_labels(rows, subs)
        known = {row.series.series_instance_uid: row.series for row in rows}
        series: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = series.setdefault(
                row.series.series_instance_uid,
                {
                    "series_instance_uid": row.series.series_instance_uid,
                    "version": row.series.version,
                    "status": row.series.status.value,
                    "routing_decision": row.series.routing_decision.value,
                    "routing_reason": row.series.routing_reason,
                    "instance_count": row.series.instance_count,
                    "jobs": [],
                },
            )
            if row.job is not None:
                entry["jobs"].append(_job_json(row.job))
        return Response(
            200,
            {
                "study_instance_uid": uid,
                "orthanc_study_id": orthanc_id,
                "status": labels.status.value,
                "status_text": labels.text,
                "reason": labels.reason,
                "labels": list(labels.labels),
                "series": list(series.values()),
                "submissions": [_submission_json(s, known.get(s.series_uid)) for s in subs],
            },
        )

    def job(self, request: Request, job_id: str) -> Response:
        """``GET /pancreas-ai/jobs/{job id}``."""
        job = get_job(self._node.database, job_id)
        if job is None:
            return _error(404, f"no job {job_id}")
        body = _job_json(job)
        series = get_series(self._node.database, job.series_instance_uid)
        body["study_instance_uid"] = None if series is None else series.study_instance_uid
        if series is not None:
            body["links"] = {
                "results": f"/pancreas-ai/studies/{series.study_instance_uid}/results",
                "status": f"/pancreas-ai/studies/{series.study_instance_uid}/status",
            }
        return Response(200, body)

    def worklist(self, request: Request) -> Response:
        """``GET /pancreas-ai/worklist``."""
        try:
            query = parse_worklist_query(request.query)
        except ValueError as exc:
            return _error(400, str(exc))
        entries = list_worklist(self._node.database)
        return Response(200, worklist_page(entries, query, lambda uid: self._lookup(uid, "Study")))

    def queue(self, request: Request) -> Response:
        """``GET /pancreas-ai/queue``."""
        counts = queue_counts(self._node.database)
        return Response(
            200,
            {
                "node_jobs": {state.value: n for state, n in counts.items()},
                "submissions": self._store.counts(),
            },
        )

    def _reassemble(self, rows: list[StudyJobInfo], actor: str) -> list[dict[str, Any]]:
        """Re-open the series whose assembly failed: assembly and the routing rules run again
        (their failed job is never analysed as it is, :func:`db.retry_job`)."""
        actions: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in rows:
            uid = row.series.series_instance_uid
            job = row.job
            if uid in seen or job is None or job.series_version != row.series.version:
                continue
            seen.add(uid)
            if job.state is JobState.FAILED and failed_stage(job.failure_reason) == ASSEMBLY_STAGE:
                version = reopen_series(self._node.database, uid, actor=actor, origin=_ORIGIN)
                actions.append(
                    {"series_instance_uid": uid, "action": "reassembling", "version": version}
                )
        return actions

    def reanalyse(self, request: Request, ident: str) -> Response:
        """``POST /pancreas-ai/studies/{study}/reanalyse``."""
        context = self._study_context(ident)
        if context is None:
            return _error(404, "study unknown to Orthanc and to the node")
        orthanc_id, uid, rows, _ = context
        actor = f"orthanc:{request.user}"
        actions: list[dict[str, Any]] = []
        newest_version: dict[str, StudyJobInfo] = {}
        for row in rows:  # rows come newest job first within a series
            if row.series.routing_decision is RoutingDecision.ANALYZE:
                newest_version.setdefault(row.series.series_instance_uid, row)
        actions.extend(self._reassemble(rows, actor))
        bundle = self._bundle_sha256() if newest_version else ""
        for series_uid, row in newest_version.items():
            version = row.series.version
            job = row.job if row.job is not None and row.job.series_version == version else None
            if job is not None and job.state is JobState.FAILED:
                job = retry_job(self._node.database, job.id, actor=actor, origin=_ORIGIN)
                action = "requeued"
            elif job is None or (
                job.bundle_sha256 != bundle and job.state in (JobState.DONE, JobState.DELIVERED)
            ):
                result = enqueue_job(
                    self._node.database, series_uid, version, bundle, actor=actor, origin=_ORIGIN
                )
                job, action = result.job, "queued" if result.created else "unchanged"
            elif job.state in (JobState.DONE, JobState.DELIVERED):
                action = "up-to-date"
            else:
                action = "in-progress"
            actions.append({"series_instance_uid": series_uid, "action": action, "job_id": job.id})
        if not actions and orthanc_id is not None:
            count = self._store.resubmit_study(orthanc_id)
            if count == 0:  # never forwarded (e.g. stored before the plugin): record it afresh
                for series_id in get_json(self._api, f"/studies/{orthanc_id}")["Series"]:
                    self._store.forget_series(series_id)
                    self._push_series(series_id)
                    count += 1
            actions.append({"action": "resubmitted", "series_count": count})
        if orthanc_id is not None:
            self._store.track_study(orthanc_id, uid)
        self._wake()
        changed = any(
            a["action"] in ("requeued", "queued", "resubmitted", "reassembling") for a in actions
        )
        _log.info("re-analysis of a study requested by %s: %d action(s)", actor, len(actions))
        return Response(202 if changed else 200, {"study_instance_uid": uid, "actions": actions})


def _load_analysis(path: str) -> tuple[AnalysisResult | None, str | None]:
    """``result.json`` as :class:`AnalysisResult`, or ``None`` and why not."""
    try:
        return AnalysisResult.model_validate_json(Path(path).read_bytes()), None
    except OSError:
        return None, "result.json is not readable by Orthanc's plugin"
    except ValidationError:
        return None, "result.json does not match the result schema"
