"""Stable series -> routing rules -> C-STORE to the node, with a persistent retry queue.

Runs on the plugin's worker thread only (it calls Orthanc's REST API, which an OnChange
callback must not). For each stable series the worker reads the instances from Orthanc,
applies the node's routing rules exactly as the node would (:func:`dicom_node.series_assembly.
gather_facts`, the calling AE being the scanner's ``RemoteAET``), records the decision once per
set of instances, and sends series to analyse to the node with Orthanc's own C-STORE SCU
(``/modalities/<node>/store``), so the node receives them like from any scanner. A refused or
failed send is retried with exponential back-off until ``GiveUpHours``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import time
from typing import Any

from dicom_node.routing import RoutingDecisionResult, RuleAction, RuleSet
from dicom_node.series_assembly import gather_facts
from orthanc_plugin._config import PluginConfig
from orthanc_plugin._orthanc_api import OrthancCallError, RestApi, get_json, post_json
from orthanc_plugin._store import NewSubmission, Submission, SubmissionStore

__all__ = ["SeriesSnapshot", "Submitter", "fingerprint"]

_log = logging.getLogger(__name__)


def fingerprint(instance_ids: list[str]) -> str:
    """Identity of a series' set of instances (order-independent)."""
    digest = hashlib.sha256("\n".join(sorted(instance_ids)).encode("ascii"))
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class SeriesSnapshot:
    """A series as Orthanc holds it."""

    orthanc_series_id: str
    series_uid: str
    orthanc_study_id: str
    study_uid: str
    instance_ids: tuple[str, ...]


def read_series(api: RestApi, series_id: str) -> SeriesSnapshot:
    """Read a series and its study's UID from Orthanc.

    Raises
    ------
    OrthancCallError
        If the series (or its study) does not exist.
    """
    series = get_json(api, f"/series/{series_id}")
    study = get_json(api, f"/studies/{series['ParentStudy']}")
    return SeriesSnapshot(
        orthanc_series_id=series_id,
        series_uid=str(series["MainDicomTags"].get("SeriesInstanceUID", "")),
        orthanc_study_id=str(series["ParentStudy"]),
        study_uid=str(study["MainDicomTags"].get("StudyInstanceUID", "")),
        instance_ids=tuple(series["Instances"]),
    )


def _calling_ae(api: RestApi, instance_ids: tuple[str, ...]) -> str:
    """The AE title that sent the series to Orthanc (empty for REST uploads)."""
    for instance_id in instance_ids[:1]:
        try:
            return api.get(f"/instances/{instance_id}/metadata/RemoteAET").decode().strip()
        except OrthancCallError as exc:
            if not exc.not_found:
                raise
    return ""


def route_series(api: RestApi, rules: RuleSet, snapshot: SeriesSnapshot) -> RoutingDecisionResult:
    """Apply the node's routing rules to a series held by Orthanc.

    The instances are copied to a temporary folder (the rules read headers, and pixels only
    when a rule asks for the contrast phase) and removed afterwards.
    """
    calling_ae = _calling_ae(api, snapshot.instance_ids)
    with tempfile.TemporaryDirectory(prefix="pancreas-ai-") as folder:
        paths = []
        for index, instance_id in enumerate(snapshot.instance_ids):
            path = Path(folder) / f"{index:06d}.dcm"
            path.write_bytes(api.get(f"/instances/{instance_id}/file"))
            paths.append(path)
        try:
            return rules.evaluate(gather_facts(paths, calling_ae))
        except ValueError as exc:
            return RoutingDecisionResult(RuleAction.IGNORE, None, (f"unreadable series: {exc}",))


class Submitter:
    """Records stable series and sends due ones to the node.

    Parameters
    ----------
    api
        Orthanc's REST API.
    store
        The persistent submission queue.
    rules
        The node's routing rules.
    config
        The plugin's settings (modality name, back-off, give-up time).
    clock
        Seconds since the epoch.
    """

    def __init__(
        self,
        api: RestApi,
        store: SubmissionStore,
        rules: RuleSet,
        config: PluginConfig,
        clock: Callable[[], float] = time,
    ) -> None:
        self._api = api
        self._store = store
        self._rules = rules
        self._config = config
        self._clock = clock

    def on_stable_series(self, series_id: str) -> Submission | None:
        """Record one stable series (once per set of instances) and return the new record.

        Returns ``None`` when the series is gone from Orthanc or this exact set of instances
        was recorded before (the submission is idempotent).

        Raises
        ------
        OrthancCallError
            If Orthanc fails to answer (other than for a deleted series).
        """
        try:
            snapshot = read_series(self._api, series_id)
        except OrthancCallError as exc:
            if exc.not_found:
                return None
            raise
        mark = fingerprint(list(snapshot.instance_ids))
        if self._store.known(series_id, mark):
            return None
        decision = route_series(self._api, self._rules, snapshot)
        recorded = self._store.record(
            NewSubmission(
                orthanc_series_id=series_id,
                series_uid=snapshot.series_uid,
                orthanc_study_id=snapshot.orthanc_study_id,
                study_uid=snapshot.study_uid,
                fingerprint=mark,
                instance_count=len(snapshot.instance_ids),
                analyse=decision.action is RuleAction.ANALYZE,
                decision=decision.summary,
            )
        )
        if recorded is not None:
            _log.info(
                "series %s (%d instances): %s",
                snapshot.series_uid,
                len(snapshot.instance_ids),
                decision.action.value,
            )
        return recorded

    def send_due(self) -> list[Submission]:
        """Send every due submission to the node; return those that were attempted."""
        due = self._store.due()
        for submission in due:
            self._send(submission)
        return due

    def _send(self, submission: Submission) -> None:
        body: dict[str, Any] = {
            "Resources": [submission.orthanc_series_id],
            "Synchronous": True,
        }
        path = f"/modalities/{self._config.node_modality}/store"
        try:
            answer = post_json(self._api, path, body)
        except OrthancCallError as exc:
            if exc.not_found and not self._series_exists(submission.orthanc_series_id):
                self._store.mark_gone(submission.id)
                return
            self._retry(submission, f"C-STORE to the node failed: {exc.message}")
            return
        failed = int(answer.get("FailedInstancesCount", 0)) if isinstance(answer, dict) else 0
        if failed:
            self._retry(submission, f"the node refused {failed} instance(s)")
            return
        self._store.mark_submitted(submission.id)
        _log.info("series %s sent to the node", submission.series_uid)

    def _series_exists(self, series_id: str) -> bool:
        try:
            self._api.get(f"/series/{series_id}")
        except OrthancCallError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def _retry(self, submission: Submission, error: str) -> None:
        now = self._clock()
        attempt = submission.attempts + 1
        retry_at: float | None = now + self._config.retry_delay_s(attempt)
        if now - submission.created_at > self._config.give_up_h * 3600.0:
            retry_at = None
        self._store.mark_retry(submission.id, error, retry_at)
        _log.warning(
            "series %s: %s (attempt %d, %s)",
            submission.series_uid,
            error,
            attempt,
            "retry scheduled" if retry_at is not None else "given up",
        )
