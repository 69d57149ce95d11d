"""Stable series -> C-STORE to the node, with a persistent retry queue.

Runs on the plugin's worker thread only (it calls Orthanc's REST API, which an OnChange
callback must not). The plugin does not route: for each stable series the worker reads the
series' resource from Orthanc (its main tags and the list of its instances, never an
instance's file), records it once per set of instances and forwards it to the node with
Orthanc's own C-STORE SCU (``/modalities/<node>/store``), so the node receives it like from
any scanner and its series assembly alone applies the routing rules and stores the decision
(read back from the node database by :mod:`orthanc_plugin._status`).

The scanner's AE title travels with the series the standard way: the worker reads Orthanc's
``RemoteAET`` metadata of one instance of the series (a few bytes of Orthanc's index, not
the instance's file) and passes it to ``/modalities/<node>/store`` as ``MoveOriginatorAet``,
which Orthanc puts into each C-STORE request as the *Move Originator Application Entity
Title* (0000,1030; PS3.7 9.1.1.1). The node, trusting Orthanc as a relay
(``relay_ae_titles``), records the scanner's AE title as the caller its routing rules test.
A series uploaded over REST has no ``RemoteAET``: then no originator is sent.

One cheap pre-filter remains, and it is not routing: only CT series are forwarded. The node
records CT image storage only, and Orthanc also stores the node's own outputs (SEG, SR,
PDF), which must never travel back to the node. A series of another modality is recorded as
not forwarded, with that reason, so nothing is dropped silently. A refused or failed send is
retried with exponential back-off until ``GiveUpHours``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import time
from typing import Any

from orthanc_plugin._config import PluginConfig
from orthanc_plugin._orthanc_api import OrthancCallError, RestApi, get_json, post_json
from orthanc_plugin._store import NewSubmission, Submission, SubmissionStore
from pancreas_contracts.settings import clean_ae_title

__all__ = [
    "FORWARDED",
    "FORWARDED_MODALITIES",
    "MOVE_ORIGINATOR_ID",
    "SeriesSnapshot",
    "Submitter",
    "fingerprint",
    "not_forwarded_reason",
    "read_series",
    "scanner_ae_title",
]

_log = logging.getLogger(__name__)

#: Modalities the plugin forwards to the node (the node records CT image storage only).
FORWARDED_MODALITIES = frozenset({"CT"})
#: What a submission record says of a series that was (or will be) sent to the node.
FORWARDED = "forwarded"
#: Move Originator Message ID (0000,1031) sent with the originator's AE title. There is no
#: C-MOVE behind the forwarding, but Orthanc (1.10) puts the originator into its C-STORE
#: requests only when this ID is not 0, so a fixed non-zero placeholder is sent.
MOVE_ORIGINATOR_ID = 1


def fingerprint(instance_ids: list[str]) -> str:
    """Identity of a series' set of instances (order-independent)."""
    digest = hashlib.sha256("\n".join(sorted(instance_ids)).encode("ascii"))
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class SeriesSnapshot:
    """A series as Orthanc holds it (from ``/series/<id>`` and its study's main tags)."""

    orthanc_series_id: str
    series_uid: str
    orthanc_study_id: str
    study_uid: str
    modality: str
    instance_ids: tuple[str, ...]


def read_series(api: RestApi, series_id: str) -> SeriesSnapshot:
    """Read a series and its study's UID from Orthanc's index (no instance is downloaded).

    Raises
    ------
    OrthancCallError
        If the series (or its study) does not exist.
    """
    series = get_json(api, f"/series/{series_id}")
    study = get_json(api, f"/studies/{series['ParentStudy']}")
    tags = series["MainDicomTags"]
    return SeriesSnapshot(
        orthanc_series_id=series_id,
        series_uid=str(tags.get("SeriesInstanceUID", "")),
        orthanc_study_id=str(series["ParentStudy"]),
        study_uid=str(study["MainDicomTags"].get("StudyInstanceUID", "")),
        modality=str(tags.get("Modality", "")).strip().upper(),
        instance_ids=tuple(series["Instances"]),
    )


def scanner_ae_title(api: RestApi, series_id: str) -> str | None:
    """The AE title that sent the series to Orthanc over DICOM, or ``None``.

    Reads the series' instance list and Orthanc's ``RemoteAET`` metadata of its first instance
    (``/instances/<id>/metadata/RemoteAET``), never an instance's file. ``None`` when the
    series came over REST (no ``RemoteAET``), has no instance, or the value is not a valid AE
    title (PS3.5 6.2).

    Raises
    ------
    OrthancCallError
        If the series does not exist (``not_found``) or Orthanc fails to answer.
    """
    instances = get_json(api, f"/series/{series_id}").get("Instances") or []
    if not instances:
        return None
    try:
        value = api.get(f"/instances/{instances[0]}/metadata/RemoteAET")
    except OrthancCallError as exc:
        if exc.not_found:  # not received over DICOM (or the instance was just deleted)
            return None
        raise
    return clean_ae_title(value)


def not_forwarded_reason(snapshot: SeriesSnapshot) -> str | None:
    """Why a series is not sent to the node, or ``None`` when it is.

    Only the series' modality counts; whether a CT series is worth analysing is the node's
    routing rules' decision, taken by the node's series assembly.
    """
    if snapshot.modality in FORWARDED_MODALITIES:
        return None
    shown = snapshot.modality or "missing"
    return f"modality {shown}: the node analyses CT only"


class Submitter:
    """Records stable series and sends due ones to the node.

    Parameters
    ----------
    api
        Orthanc's REST API.
    store
        The persistent submission queue.
    config
        The plugin's settings (modality name, back-off, give-up time).
    clock
        Seconds since the epoch.
    """

    def __init__(
        self,
        api: RestApi,
        store: SubmissionStore,
        config: PluginConfig,
        clock: Callable[[], float] = time,
    ) -> None:
        self._api = api
        self._store = store
        self._config = config
        self._clock = clock

    def on_stable_series(self, series_id: str) -> Submission | None:
        """Record one stable series (once per set of instances) and return the new record.

        A CT series is recorded as due for sending; any other as not forwarded, with the
        reason. Returns ``None`` when the series is gone from Orthanc or this exact set of
        instances was recorded before (the submission is idempotent).

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
        reason = not_forwarded_reason(snapshot)
        recorded = self._store.record(
            NewSubmission(
                orthanc_series_id=series_id,
                series_uid=snapshot.series_uid,
                orthanc_study_id=snapshot.orthanc_study_id,
                study_uid=snapshot.study_uid,
                fingerprint=mark,
                instance_count=len(snapshot.instance_ids),
                forward=reason is None,
                forwarding=FORWARDED if reason is None else f"not forwarded: {reason}",
            )
        )
        if recorded is not None:
            _log.info(
                "series %s (%d instances): %s",
                snapshot.series_uid,
                len(snapshot.instance_ids),
                recorded.forwarding,
            )
        return recorded

    def send_due(self) -> list[Submission]:
        """Send every due submission to the node; return those that were attempted."""
        due = self._store.due()
        for submission in due:
            self._send(submission)
        return due

    def _send(self, submission: Submission) -> None:
        try:
            originator = scanner_ae_title(self._api, submission.orthanc_series_id)
        except OrthancCallError as exc:
            if exc.not_found:
                self._store.mark_gone(submission.id)
            else:
                self._retry(submission, f"cannot read the series in Orthanc: {exc.message}")
            return
        body: dict[str, Any] = {
            "Resources": [submission.orthanc_series_id],
            "Synchronous": True,
        }
        if originator is not None:
            # Orthanc's C-STORE carries it as Move Originator AE Title (0000,1030).
            body["MoveOriginatorAet"] = originator
            body["MoveOriginatorID"] = MOVE_ORIGINATOR_ID
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
