"""Dispatch of result objects (DICOM-SEG, SR, encapsulated PDF: any PS3.10 file).

Each finished job's objects go to every configured destination: DIMSE peers by C-STORE
(PS3.4 Annex B, :class:`CStoreDestination`) and, if ``stow_url`` is set, a DICOMweb origin
server by STOW-RS (PS3.18 10.5, :class:`StowDestination`). Every attempt at every destination is
recorded with :func:`db.record_delivery_attempt`; the retry schedule is derived from those
records alone (exponential back-off, 30 s doubling to at most 1 h), so it survives restarts.
``dispatch_max_age_h`` after the first attempt a job still not delivered everywhere is given up
(:attr:`DispatchStatus.GIVEN_UP`, job ``failed`` with the reason); once every destination has
the objects the job is marked ``delivered``. Destinations that succeeded are not retried.

Exactly once per (job, destination), issue 22: each object a destination confirms is recorded
at once, in its own transaction (:func:`db.record_delivered_object`, through the
:class:`DeliveryLedger` handed to ``send``), and every attempt skips the objects already
recorded for that destination. A retry, after a failed attempt or after the node was killed
mid-batch, therefore sends only what was not confirmed. The one remaining window is a kill
between the peer's acknowledgement and that commit: that one object (one STOW-RS request's
objects) is sent again; receivers deduplicate by SOPInstanceUID (Orthanc does).

The worker loop calls :meth:`Dispatcher.deliver` when a job is done and then, periodically,
:meth:`Dispatcher.deliver_due` (each due one). Both paths may reach the same job at the same
moment: a delivery first takes the job's delivery lease (:func:`db.claim_delivery`, one guarded
``UPDATE``), so exactly one of them sends and each destination gets the objects once
(:attr:`DispatchStatus.IN_PROGRESS` for the other). A cancelled or superseded job (its series
grew) is never delivered. :meth:`Dispatcher.deliver_due` is supervised: a job whose delivery
raises an unexpected error gets a failed attempt with the error's name (so back-off and the
give-up apply to it) and the loop goes on with the next job. Time is a
parameter (``now``) everywhere. Log lines carry job ids, SOPInstanceUIDs and destination names,
never patient data.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from db import (
    DeliveryProtocol,
    DeliveryStatus,
    InvalidTransitionError,
    NodeDatabase,
    claim_delivery,
    delivered_objects,
    fail_job,
    get_job,
    list_delivery_attempts,
    list_recent_jobs,
    mark_delivered,
    record_delivered_object,
    record_delivery_attempt,
    release_delivery,
)
from dicom_node._dispatch_cstore import CStoreDestination
from dicom_node._dispatch_files import ResultFile, find_part10_files
from dicom_node._dispatch_schedule import (
    DeliverySchedule,
    DestinationKey,
    RetryPolicy,
    plan_delivery,
)
from dicom_node._dispatch_stow import (
    StoreInstancesResponse,
    StowDestination,
    describe_stow_reason,
    parse_store_response,
)
from dicom_node._dispatch_types import (
    AttemptStatus,
    DeliveryLedger,
    DeliveryOutcome,
    DestinationOutcome,
    DispatchStatus,
    InstanceOutcome,
    InstanceStatus,
    describe_store_status,
    is_store_success,
)
from dicom_node.metrics import NodeMetrics
from pancreas_contracts import Settings
from pancreas_contracts.job_states import JobState

__all__ = [
    "AttemptStatus",
    "CStoreDestination",
    "DeliveryLedger",
    "DeliveryOutcome",
    "DeliverySchedule",
    "Destination",
    "DestinationOutcome",
    "DispatchStatus",
    "Dispatcher",
    "DueDelivery",
    "InstanceOutcome",
    "InstanceStatus",
    "NotDeliverableError",
    "ResultFile",
    "RetryPolicy",
    "StoreInstancesResponse",
    "StowDestination",
    "describe_store_status",
    "describe_stow_reason",
    "destinations_from_settings",
    "is_store_success",
    "parse_store_response",
]

_log = logging.getLogger(__name__)

#: How long one delivery may hold a job (a dead holder loses it after that, or at restart).
DELIVERY_LEASE_S = 900.0
_NOT_DELIVERABLE = frozenset({JobState.CANCELLED, JobState.SUPERSEDED})


class NotDeliverableError(ValueError):
    """The job is neither ``done`` nor ``delivered`` (still running, or failed)."""


class Destination(Protocol):
    """Where result objects go; :class:`CStoreDestination` and :class:`StowDestination` are two.

    ``send`` must not raise for network or peer failures: it names them in its outcome.
    """

    @property
    def name(self) -> str:
        """Stable name recorded with each attempt (no credentials)."""
        ...

    @property
    def protocol(self) -> DeliveryProtocol:
        """How the destination is reached."""
        ...

    def send(
        self,
        files: Sequence[ResultFile],
        *,
        job_id: str,
        ledger: DeliveryLedger | None = None,
    ) -> DestinationOutcome:
        """Send one batch and report every instance's outcome.

        Objects in ``ledger.delivered`` are not sent (they count as stored); each object the
        peer confirms is passed to ``ledger.record`` as soon as it is confirmed.
        """
        ...


@dataclass(frozen=True)
class DueDelivery:
    """A job whose next delivery attempt (or give-up) is due.

    Parameters
    ----------
    job_id
        The job (state ``done``).
    due_at
        When it became due.
    pending
        Names of the destinations that do not have its objects yet.
    files
        The DICOM files in ``<data>/results/<job id>/``.
    expired
        ``True`` if :meth:`Dispatcher.deliver` will give it up instead of sending.
    """

    job_id: str
    due_at: datetime
    pending: tuple[str, ...]
    files: tuple[Path, ...]
    expired: bool


def destinations_from_settings(settings: Settings) -> list[Destination]:
    """The C-STORE destinations of ``settings.destinations`` then STOW-RS if ``stow_url`` is set.

    Raises
    ------
    ValueError
        If an AE title or the STOW-RS URL is invalid.
    """
    found: list[Destination] = [
        CStoreDestination(
            ae_title=d.ae_title,
            host=d.host,
            port=d.port,
            calling_ae_title=settings.ae_title,
            acse_timeout_s=settings.acse_timeout_s,
            dimse_timeout_s=settings.dimse_timeout_s,
            network_timeout_s=settings.network_timeout_s,
        )
        for d in settings.destinations
    ]
    if settings.stow_url:
        found.append(
            StowDestination(
                base_url=settings.stow_url,
                username=settings.stow_username,
                password=settings.stow_password,
                timeout_s=settings.network_timeout_s,
            )
        )
    return found


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


class Dispatcher:
    """Delivers finished jobs' result objects and keeps their retry schedule.

    Parameters
    ----------
    settings
        ``destinations``, ``stow_url`` (+ credentials), ``ae_title``, timeouts,
        ``dispatch_max_age_h`` and ``results_dir``.
    database
        The node database (delivery records, job states).
    destinations
        Overrides the destinations built from ``settings``.
    policy
        Overrides the back-off; its ``max_age`` defaults to ``dispatch_max_age_h``.
    actor
        Recorded as the actor of attempts and state changes.
    lease_owner
        Names this dispatcher in the jobs' delivery leases (the node passes its host, node id
        and incarnation, see :func:`db.reclaim_node_leases`); default: ``actor`` and a random
        suffix.
    metrics
        Counts each recorded attempt by destination kind and each failed one by its status;
        ``None``: no counting.

    Raises
    ------
    ValueError
        If two destinations have the same name and protocol, or one is invalid.
    """

    def __init__(
        self,
        settings: Settings,
        database: NodeDatabase,
        *,
        destinations: Sequence[Destination] | None = None,
        policy: RetryPolicy | None = None,
        actor: str = "dispatch",
        lease_owner: str | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._db = database
        chosen = destinations_from_settings(settings) if destinations is None else destinations
        self._destinations: tuple[Destination, ...] = tuple(chosen)
        keys = [(d.name, d.protocol) for d in self._destinations]
        if len(set(keys)) != len(keys):
            raise ValueError("two destinations have the same name and protocol")
        self._policy = policy or RetryPolicy(max_age=timedelta(hours=settings.dispatch_max_age_h))
        self._actor = actor
        self._owner = lease_owner or f"{actor}-{uuid.uuid4().hex[:8]}"

    @property
    def destinations(self) -> tuple[Destination, ...]:
        """The destinations every job is delivered to."""
        return self._destinations

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy."""
        return self._policy

    def result_files(self, job_id: str) -> tuple[Path, ...]:
        """The DICOM Part-10 files in ``<data>/results/<job id>/``, by name."""
        return tuple(find_part10_files(self._settings.results_dir / job_id))

    def schedule(self, job_id: str) -> DeliverySchedule:
        """Where ``job_id``'s delivery stands (from its recorded attempts).

        Raises
        ------
        LookupError
            If there is no such job.
        """
        job = get_job(self._db, job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        return self._plan(job_id, job.updated_at)

    def due_deliveries(
        self, now: datetime | None = None, *, limit: int = 1000
    ) -> list[DueDelivery]:
        """Jobs in state ``done`` whose next attempt (or give-up) is due at ``now``.

        Parameters
        ----------
        now
            The time to compare with (timezone-aware; default: the current time).
        limit
            At most this many ``done`` jobs (most recently changed first) are examined.

        Returns
        -------
        list of DueDelivery
            Oldest due first.
        """
        now = _aware(now)
        if not self._destinations:
            return []
        due: list[DueDelivery] = []
        for job in list_recent_jobs(self._db, limit=limit, states=[JobState.DONE]):
            plan = self._plan(job.id, job.updated_at)
            if not plan.pending:
                # Every destination confirmed, but the dispatcher died before it marked the
                # job delivered: due now, and :meth:`deliver` only marks it.
                due_at = now
            elif plan.next_attempt_at is None or not plan.is_due(now):
                continue
            else:
                due_at = plan.next_attempt_at
            due.append(
                DueDelivery(
                    job_id=job.id,
                    due_at=due_at,
                    pending=tuple(name for name, _ in plan.pending),
                    files=self.result_files(job.id),
                    expired=plan.is_expired(now),
                )
            )
        due.sort(key=lambda d: (d.due_at, d.job_id))
        return due

    def deliver(
        self, job_id: str, files: Iterable[Path], *, now: datetime | None = None
    ) -> DeliveryOutcome:
        """Send ``files`` to every destination that does not have them yet, and record it.

        Each pending destination gets one attempt (one association or one request), recorded
        with :func:`db.record_delivery_attempt`. When none is pending any more the job is
        marked ``delivered``. At or after the deadline (``dispatch_max_age_h`` after the first
        attempt) nothing is sent: the job is marked ``failed`` with the reason.

        Parameters
        ----------
        job_id
            A job in state ``done`` (``delivered`` jobs are left alone).
        files
            The result objects (PS3.10 files); unreadable ones count as failures.
        now
            The time of this attempt (timezone-aware; default: the current time).

        Returns
        -------
        DeliveryOutcome
            The named outcome and every attempt made.

        Raises
        ------
        LookupError
            If there is no such job.
        NotDeliverableError
            If the job is not ``done`` or ``delivered``.

        Notes
        -----
        ``now`` decides whether the deadline has passed and stamps the give-up; the attempts
        themselves are stamped by :func:`db.record_delivery_attempt` with the current time, and
        the back-off is counted from those stamps.
        """
        now = _aware(now)
        job = get_job(self._db, job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        if job.state is JobState.DELIVERED:
            return DeliveryOutcome(job_id, DispatchStatus.ALREADY_DELIVERED)
        if job.state in _NOT_DELIVERABLE:
            _log.info("job %s: %s, not delivered", job_id, job.state.value)
            return DeliveryOutcome(job_id, DispatchStatus.SUPERSEDED)
        if job.state is not JobState.DONE:
            raise NotDeliverableError(f"job {job_id} is {job.state.value}, not done")
        if not self._destinations:
            _log.warning("job %s: no destination configured; results stay local", job_id)
            return DeliveryOutcome(job_id, DispatchStatus.NO_DESTINATIONS)
        if not claim_delivery(self._db, job_id, self._owner, DELIVERY_LEASE_S, now=now):
            return self._not_claimed(job_id)
        try:
            # Read the attempts only now: the previous holder's are all recorded.
            return self._deliver_claimed(job_id, job.updated_at, files, now)
        finally:
            release_delivery(self._db, job_id, self._owner)

    def deliver_first(self, job_id: str, files: Iterable[Path]) -> None:
        """The first delivery attempt, right after the analysis stored the job.

        What cannot be attempted is logged with the job id and left to :meth:`deliver_due`
        (the delivery loop), which retries; nothing is raised to the worker that ran the job.
        """
        try:
            self.deliver(job_id, files)
        except (NotDeliverableError, LookupError, SQLAlchemyError) as exc:
            _log.error("job %s: delivery not attempted (%s)", job_id, type(exc).__name__)

    def deliver_due(self, now: datetime | None = None) -> list[DeliveryOutcome]:
        """Deliver every due job (:meth:`due_deliveries`), one failing job never stopping it.

        A job whose delivery raises an unexpected error is logged in one line with its id (the
        traceback at DEBUG) and gets a failed attempt at each pending destination naming the
        error, so the back-off and the give-up apply to it; the next job is delivered as usual.
        Database errors are not recorded (the database is what failed) and propagate.
        """
        outcomes = []
        for due in self.due_deliveries(now):
            try:
                outcomes.append(self.deliver(due.job_id, due.files, now=now))
            except SQLAlchemyError:
                raise
            # Supervision boundary: whatever one job's objects or peer raise, the loop lives on.
            except Exception as exc:  # noqa: BLE001
                outcomes.append(self._record_internal_error(due, exc))
        return outcomes

    def _record_internal_error(self, due: DueDelivery, exc: Exception) -> DeliveryOutcome:
        error = f"internal error: {type(exc).__name__}"
        _log.error("job %s: delivery failed (%s)", due.job_id, error)
        _log.debug("job %s: delivery traceback", due.job_id, exc_info=exc)
        for destination in self._destinations:
            if destination.name in due.pending:
                record_delivery_attempt(
                    self._db,
                    due.job_id,
                    destination=destination.name,
                    protocol=destination.protocol,
                    status=DeliveryStatus.FAILURE,
                    error=error,
                    actor=self._actor,
                )
                self._count(destination.protocol, DispatchStatus.INTERNAL_ERROR)
        return DeliveryOutcome(due.job_id, DispatchStatus.INTERNAL_ERROR)

    def _count(self, protocol: DeliveryProtocol, failure: str | None) -> None:
        if self._metrics is not None:
            self._metrics.delivery_attempt(protocol, failure)

    def _not_claimed(self, job_id: str) -> DeliveryOutcome:
        job = get_job(self._db, job_id)
        if job is not None and job.state is JobState.DELIVERED:
            return DeliveryOutcome(job_id, DispatchStatus.ALREADY_DELIVERED)
        _log.info("job %s: delivery already in progress elsewhere", job_id)
        return DeliveryOutcome(job_id, DispatchStatus.IN_PROGRESS)

    def _deliver_claimed(
        self, job_id: str, ready_at: datetime, files: Iterable[Path], now: datetime
    ) -> DeliveryOutcome:
        plan = self._plan(job_id, ready_at)
        if plan.is_expired(now):
            return self._give_up(job_id, plan, now)
        batch = ResultFile.read_all(files)
        attempts: list[DestinationOutcome] = []
        for destination in self._destinations:
            if (destination.name, destination.protocol) not in plan.pending:
                continue
            outcome = (
                destination.send(batch, job_id=job_id, ledger=self._ledger(job_id, destination))
                if batch
                else DestinationOutcome(
                    destination.name,
                    destination.protocol,
                    AttemptStatus.NOTHING_SENDABLE,
                    error="no result objects to send",
                )
            )
            attempts.append(outcome)
            record_delivery_attempt(
                self._db,
                job_id,
                destination=destination.name,
                protocol=destination.protocol,
                status=DeliveryStatus.SUCCESS if outcome.succeeded else DeliveryStatus.FAILURE,
                error=None if outcome.succeeded else f"{outcome.status.value}: {outcome.error}",
                actor=self._actor,
            )
            self._count(destination.protocol, None if outcome.succeeded else outcome.status)

        after = self._plan(job_id, ready_at)
        if not after.pending:
            return self._mark_delivered(job_id, tuple(attempts), after)
        _log.info(
            "job %s: %d destination(s) pending, next attempt at %s",
            job_id,
            len(after.pending),
            after.next_attempt_at.isoformat() if after.next_attempt_at else "-",
        )
        return DeliveryOutcome(
            job_id,
            DispatchStatus.RETRY_SCHEDULED,
            tuple(attempts),
            next_attempt_at=after.next_attempt_at,
            first_attempt_at=after.first_attempt_at,
        )

    def _ledger(self, job_id: str, destination: Destination) -> DeliveryLedger:
        """What ``destination`` already holds of ``job_id``, and how it records what it gets."""
        name, protocol = destination.name, destination.protocol

        def record(sop_instance_uid: str) -> None:
            # Committed before the next object goes out: a kill after this never resends it.
            record_delivered_object(
                self._db,
                job_id,
                destination=name,
                protocol=protocol,
                sop_instance_uid=sop_instance_uid,
            )

        return DeliveryLedger(delivered_objects(self._db, job_id, name), record)

    def _plan(self, job_id: str, ready_at: datetime) -> DeliverySchedule:
        keys: list[DestinationKey] = [(d.name, d.protocol) for d in self._destinations]
        return plan_delivery(
            list_delivery_attempts(self._db, job_id), keys, self._policy, ready_at=ready_at
        )

    def _mark_delivered(
        self, job_id: str, attempts: tuple[DestinationOutcome, ...], plan: DeliverySchedule
    ) -> DeliveryOutcome:
        try:
            mark_delivered(self._db, job_id, actor=self._actor)
        except InvalidTransitionError:
            # Another dispatcher finished the same job first; only "delivered" is acceptable.
            job = get_job(self._db, job_id)
            if job is None or job.state is not JobState.DELIVERED:
                raise
        _log.info("job %s: delivered to %d destination(s)", job_id, len(plan.delivered))
        return DeliveryOutcome(
            job_id, DispatchStatus.DELIVERED, attempts, first_attempt_at=plan.first_attempt_at
        )

    def _give_up(self, job_id: str, plan: DeliverySchedule, now: datetime) -> DeliveryOutcome:
        hours = self._policy.max_age.total_seconds() / 3600
        names = ", ".join(name for name, _ in plan.pending)
        reason = f"delivery given up: not delivered to {names} within {hours:g} h of first attempt"
        try:
            fail_job(self._db, job_id, reason, actor=self._actor, now=now)
        except InvalidTransitionError:
            job = get_job(self._db, job_id)
            if job is None or job.state is not JobState.FAILED:
                raise
        _log.error("job %s: %s", job_id, reason)
        return DeliveryOutcome(
            job_id, DispatchStatus.GIVEN_UP, first_attempt_at=plan.first_attempt_at
        )
