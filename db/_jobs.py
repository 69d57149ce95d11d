"""The job queue: enqueue, claim with a lease, finish, fail with back-off, recover.

Every state change is validated against :data:`pancreas_contracts.job_states.TRANSITIONS`
and written together with its audit event in one transaction.

Supersession (issue 22): the job of a newer version of a series supersedes the jobs of its
older versions in the transaction that creates it: those not yet run are ``cancelled``, a
``done`` one becomes ``superseded`` (never delivered), a ``delivered`` one keeps its state; each
records ``superseded_by``. A job still running when it is superseded becomes ``superseded`` as
it completes.

Leases. A running job is leased to one worker (``lease_owner``); a done job's delivery is
leased to one dispatcher (``delivery_owner``) so that two delivery paths never send the same
objects twice. Recovering and taking leases lives in :mod:`db._leases`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from db._audit import NewResult, affected, insert_ignore, result_row, write_audit
from db._boards import auto_add_cases
from db._database import NodeDatabase
from db._models import Job
from db._notifications import notify_job_done, notify_job_failed
from db._types import utcnow
from pancreas_contracts.job_states import ASSEMBLY_STAGE, TRANSITIONS, JobState, failed_stage

__all__ = [
    "EnqueueResult",
    "InvalidTransitionError",
    "JobInfo",
    "JobRequest",
    "LeaseLostError",
    "backoff_delay",
    "claim_next_job",
    "complete_job",
    "enqueue_job",
    "fail_job",
    "get_job",
    "heartbeat_job",
    "list_recent_jobs",
    "mark_delivered",
    "queue_counts",
    "retry_job",
]

_log = logging.getLogger(__name__)
_MAX_REASON = 2000


class InvalidTransitionError(ValueError):
    """A job state change that ``TRANSITIONS`` does not allow."""


class LeaseLostError(ValueError):
    """The worker no longer holds the job's lease (it expired and was reclaimed)."""


@dataclass(frozen=True)
class JobInfo:
    """A job as stored."""

    id: str
    series_instance_uid: str
    series_version: int
    bundle_sha256: str
    state: JobState
    attempts: int
    next_attempt_at: datetime | None
    failure_reason: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    created_at: datetime
    updated_at: datetime
    instance_count: int | None = None
    superseded_by: str | None = None


@dataclass(frozen=True)
class JobRequest:
    """What a new job is made with, besides its series and version (see :func:`enqueue_job`)."""

    bundle_sha256: str
    instance_count: int | None = None
    failure: str | None = None


@dataclass(frozen=True)
class EnqueueResult:
    """The job for a (series, version, bundle) key and whether this call created it."""

    job: JobInfo
    created: bool


def _info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        series_instance_uid=job.series_instance_uid,
        series_version=job.series_version,
        bundle_sha256=job.bundle_sha256,
        state=job.state,
        attempts=job.attempts,
        next_attempt_at=job.next_attempt_at,
        failure_reason=job.failure_reason,
        lease_owner=job.lease_owner,
        lease_expires_at=job.lease_expires_at,
        heartbeat_at=job.heartbeat_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        instance_count=job.instance_count,
        superseded_by=job.superseded_by,
    )


def _transition(
    session: Session,
    job: Job,
    target: JobState,
    *,
    actor: str,
    now: datetime,
    origin: str | None = None,
    reason: str | None = None,
) -> None:
    """Move ``job`` to ``target`` and add the audit event, in the caller's transaction."""
    if target not in TRANSITIONS[job.state]:
        raise InvalidTransitionError(f"job {job.id}: {job.state.value} -> {target.value}")
    detail: dict[str, str | int] = {"from": job.state.value, "to": target.value}
    if reason:
        detail["reason"] = reason[:200]
    job.state = target
    job.updated_at = now
    if target is not JobState.RUNNING:
        job.lease_owner = None
        job.lease_expires_at = None
        job.heartbeat_at = None
    if target is not JobState.DONE:
        job.delivery_owner = None
        job.delivery_lease_expires_at = None
    write_audit(
        session,
        actor=actor,
        action="job.state",
        object_type="job",
        object_id=job.id,
        origin=origin,
        detail=detail,
        now=now,
    )


def _lock(session: Session, job_id: str) -> Job:
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job


def _check_lease(job: Job, worker_id: str) -> None:
    if job.state is JobState.RUNNING and job.lease_owner != worker_id:
        raise LeaseLostError(f"job {job.id}: worker {worker_id} does not hold the lease")


def backoff_delay(attempt: int, *, base_s: float = 30.0, max_s: float = 3600.0) -> timedelta:
    """Exponential back-off before retry number ``attempt`` (1-based): base * 2**(attempt-1).

    Deterministic (no jitter): the node runs a handful of workers, not a thundering herd.
    """
    exponent = max(0, min(attempt - 1, 32))  # the cap keeps 2**n from overflowing a float
    return timedelta(seconds=min(max_s, base_s * 2.0**exponent))


def enqueue_job(
    db: NodeDatabase,
    series_instance_uid: str,
    series_version: int,
    bundle_sha256: str,
    *,
    instance_count: int | None = None,
    failure: str | None = None,
    actor: str = "system",
    origin: str | None = None,
) -> EnqueueResult:
    """Create and queue the job for one series version and bundle, or return the existing one.

    Idempotent by (SeriesInstanceUID, series version, bundle hash): a second call returns the
    first job, whatever its state (``created`` is then ``False``). A created job supersedes the
    jobs of the series' older versions in the same transaction (see the module docstring).
    ``instance_count`` is how many instances the series version has (what the job analyses).
    With ``failure`` the job is created ``failed`` with that reason instead of queued (the
    series could not be assembled: the failure is recorded where every status shows it, and no
    worker can claim it in between); it is never retried on its own.
    """
    request = JobRequest(bundle_sha256, instance_count=instance_count, failure=failure)
    with db.session() as session:
        return enqueue_in(
            session, series_instance_uid, series_version, request, actor=actor, origin=origin
        )


def enqueue_in(
    session: Session,
    series_instance_uid: str,
    series_version: int,
    request: JobRequest,
    *,
    actor: str = "system",
    origin: str | None = None,
) -> EnqueueResult:
    """:func:`enqueue_job` inside the caller's transaction (closing a series queues its job)."""
    now = utcnow()
    job_id = str(uuid.uuid4())
    created = insert_ignore(
        session,
        Job.__table__,  # type: ignore[arg-type]
        {
            "id": job_id,
            "series_instance_uid": series_instance_uid,
            "series_version": series_version,
            "bundle_sha256": request.bundle_sha256,
            "state": JobState.RECEIVED,
            "attempts": 0,
            "instance_count": request.instance_count,
            "created_at": now,
            "updated_at": now,
        },
        ["series_instance_uid", "series_version", "bundle_sha256"],
    )
    stmt = (
        select(Job)
        .where(
            Job.series_instance_uid == series_instance_uid,
            Job.series_version == series_version,
            Job.bundle_sha256 == request.bundle_sha256,
        )
        .with_for_update()
    )
    job = session.scalars(stmt).one()
    if created:
        write_audit(
            session,
            actor=actor,
            action="job.create",
            object_type="job",
            object_id=job.id,
            origin=origin,
            detail={"state": JobState.RECEIVED.value, "series_version": series_version},
            now=now,
        )
        if request.failure is None:
            _transition(session, job, JobState.QUEUED, actor=actor, origin=origin, now=now)
        else:
            _transition(
                session,
                job,
                JobState.FAILED,
                actor=actor,
                origin=origin,
                now=now,
                reason=request.failure,
            )
            job.failure_reason = request.failure[:_MAX_REASON]
            notify_job_failed(session, job, now)
        _supersede_older(session, job, actor=actor, now=now)
        newer = _newer_job(session, job)
        if newer is not None:  # made late for a version the series has outgrown
            why = f"series grew: version {newer.series_version} is job {newer.id}"
            _transition(session, job, JobState.CANCELLED, actor=actor, now=now, reason=why)
            job.failure_reason = f"cancelled: {why}"
            job.superseded_by = newer.id
        _log.info("job %s %s", job.id, job.state.value)
    return EnqueueResult(job=_info(job), created=created)


def _supersede_older(session: Session, newest: Job, *, actor: str, now: datetime) -> None:
    """Cancel or supersede the jobs of ``newest``'s series with an older version."""
    stmt = (
        select(Job)
        .where(
            Job.series_instance_uid == newest.series_instance_uid,
            Job.series_version < newest.series_version,
            Job.superseded_by.is_(None),
        )
        .order_by(Job.series_version, Job.id)
        .with_for_update()
    )
    count = "?" if newest.instance_count is None else str(newest.instance_count)
    why = f"series grew: version {newest.series_version} ({count} instances) is job {newest.id}"
    for old in session.scalars(stmt):
        if JobState.CANCELLED in TRANSITIONS[old.state]:
            _transition(session, old, JobState.CANCELLED, actor=actor, now=now, reason=why)
            old.failure_reason = f"cancelled: {why}"
            old.next_attempt_at = None
        elif JobState.SUPERSEDED in TRANSITIONS[old.state]:
            _transition(session, old, JobState.SUPERSEDED, actor=actor, now=now, reason=why)
        elif old.state is JobState.RUNNING:
            continue  # superseded when it completes (complete_job), never cut off mid-run
        old.superseded_by = newest.id
        _log.info("job %s %s by job %s", old.id, old.state.value, newest.id)


def _newer_job(session: Session, job: Job) -> Job | None:
    """The newest job of a later version of ``job``'s series, if any."""
    stmt = (
        select(Job)
        .where(
            Job.series_instance_uid == job.series_instance_uid,
            Job.series_version > job.series_version,
        )
        .order_by(Job.series_version.desc(), Job.created_at.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def _promote_due_retries(session: Session, now: datetime, actor: str) -> None:
    stmt = (
        select(Job)
        .where(Job.state == JobState.FAILED, Job.next_attempt_at <= now)
        .order_by(Job.next_attempt_at)
        .limit(16)
        .with_for_update(skip_locked=True)
    )
    for job in session.scalars(stmt):
        _requeue_due_retry(session, job, actor, now)


def _requeue_due_retry(session: Session, job: Job, actor: str, now: datetime) -> None:
    """A failed job whose retry time has come goes back to ``queued``."""
    job.next_attempt_at = None
    _transition(session, job, JobState.QUEUED, actor=actor, now=now, reason="retry due")


def _due(now: datetime) -> ColumnElement[bool]:
    """The condition of a queued job that may run at ``now`` (no retry time ahead)."""
    return or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)


def _lease_to(session: Session, job: Job, worker_id: str, lease_s: float, now: datetime) -> None:
    """Mark a claimed job ``running`` and lease it to ``worker_id`` for ``lease_s`` seconds."""
    _transition(session, job, JobState.RUNNING, actor=worker_id, now=now)
    job.lease_owner = worker_id
    job.lease_expires_at = now + timedelta(seconds=lease_s)
    job.heartbeat_at = now
    job.next_attempt_at = None


def claim_next_job(
    db: NodeDatabase, worker_id: str, lease_s: float, *, now: datetime | None = None
) -> JobInfo | None:
    """Atomically take the oldest due queued job, mark it running and lease it to ``worker_id``.

    Failed jobs whose retry time has come are re-queued first. On PostgreSQL the candidate is
    selected ``FOR UPDATE SKIP LOCKED`` (concurrent workers skip each other's rows); on SQLite
    the transaction holds the write lock from its start (``BEGIN IMMEDIATE``). Both then use a
    guarded ``UPDATE ... WHERE state = 'queued'`` so a job is never claimed twice.

    Returns
    -------
    JobInfo or None
        The claimed job (``attempts`` already incremented), or ``None`` if nothing is due.
    """
    now = now or utcnow()
    with db.session() as session:
        _promote_due_retries(session, now, worker_id)
        candidates = (
            select(Job.id)
            .where(Job.state == JobState.QUEUED, _due(now))
            .order_by(Job.created_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        job_id = session.scalars(candidates).first()
        if job_id is None:
            return None
        guarded = (
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED)
            .values(attempts=Job.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if not affected(session, guarded):
            return None  # pragma: no cover - excluded by the row lock / write lock
        job = session.get_one(Job, job_id, populate_existing=True)
        _lease_to(session, job, worker_id, lease_s, now)
        _log.info("job %s claimed (attempt %d)", job.id, job.attempts)
        return _info(job)


def heartbeat_job(
    db: NodeDatabase, job_id: str, worker_id: str, lease_s: float, *, now: datetime | None = None
) -> bool:
    """Extend a running job's lease; ``False`` if ``worker_id`` no longer holds it."""
    now = now or utcnow()
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING, Job.lease_owner == worker_id)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s))
    )
    with db.session() as session:
        return bool(affected(session, stmt))


def complete_job(
    db: NodeDatabase,
    job_id: str,
    worker_id: str,
    result: NewResult | None = None,
    *,
    reason: str | None = None,
    now: datetime | None = None,
) -> JobInfo:
    """Mark a running job done and store its result in the same transaction.

    ``reason`` is kept with a job done without a result: the analysis refused the CT
    (``refused: <reason>: <what was measured>``, see :data:`pancreas_contracts.status.
    REFUSED_PREFIX`); the refusal document is delivered like any result. It must not contain
    patient identifiers or values.

    Raises
    ------
    LookupError
        If there is no such job.
    LeaseLostError
        If ``worker_id`` no longer holds the lease.
    InvalidTransitionError
        If the job is not running.
    """
    now = now or utcnow()
    with db.session() as session:
        job = _lock(session, job_id)
        _check_lease(job, worker_id)
        _transition(session, job, JobState.DONE, actor=worker_id, now=now, reason=reason)
        job.failure_reason = None if reason is None else reason[:_MAX_REASON]
        row = None if result is None else result_row(job.id, result, now)
        if row is not None:
            session.add(row)
        _log.info("job %s done", job.id)
        newer = _newer_job(session, job)
        if row is not None and newer is None:
            auto_add_cases(session, job, row, now)
        if newer is not None:
            # The series grew while this job ran: its result is kept but never delivered.
            why = f"series grew: version {newer.series_version} is job {newer.id}"
            _transition(session, job, JobState.SUPERSEDED, actor=worker_id, now=now, reason=why)
            job.superseded_by = newer.id
            _log.info("job %s superseded by job %s", job.id, newer.id)
        else:
            notify_job_done(session, job, row, reason, now)
        return _info(job)


def fail_job(
    db: NodeDatabase,
    job_id: str,
    reason: str,
    *,
    retry_at: datetime | None = None,
    worker_id: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> JobInfo:
    """Mark a job failed; with ``retry_at`` it is re-queued by a claim at or after that time.

    ``reason`` is stored and audited; it must not contain patient identifiers or values. A
    running job can only be failed by the worker holding its lease.

    Raises
    ------
    LookupError, LeaseLostError, InvalidTransitionError
        As for :func:`complete_job`.
    """
    now = now or utcnow()
    with db.session() as session:
        job = _lock(session, job_id)
        if job.state is JobState.RUNNING:
            _check_lease(job, worker_id or "")
        _transition(
            session,
            job,
            JobState.FAILED,
            actor=actor or worker_id or "system",
            now=now,
            reason=reason,
        )
        job.failure_reason = reason[:_MAX_REASON]
        job.next_attempt_at = retry_at
        _log.info("job %s failed (retry %s)", job.id, "scheduled" if retry_at else "none")
        if retry_at is None:
            notify_job_failed(session, job, now)
        return _info(job)


def retry_job(db: NodeDatabase, job_id: str, *, actor: str, origin: str | None = None) -> JobInfo:
    """Re-queue a failed job now (an operator's decision).

    Raises
    ------
    ValueError
        If the job failed at series assembly: the routing rules never decided on its series,
        so it is not analysed as it is; :func:`reopen_series` runs assembly and the rules again.
    """
    now = utcnow()
    with db.session() as session:
        job = _lock(session, job_id)
        if failed_stage(job.failure_reason) == ASSEMBLY_STAGE:
            raise ValueError("the job failed at series assembly: re-open its series instead")
        _transition(
            session, job, JobState.QUEUED, actor=actor, origin=origin, now=now, reason="manual"
        )
        job.next_attempt_at = None
        return _info(job)


def mark_delivered(db: NodeDatabase, job_id: str, *, actor: str = "system") -> JobInfo:
    """Mark a done job delivered (all its result objects reached their destinations)."""
    now = utcnow()
    with db.session() as session:
        job = _lock(session, job_id)
        _transition(session, job, JobState.DELIVERED, actor=actor, now=now)
        return _info(job)


def get_job(db: NodeDatabase, job_id: str) -> JobInfo | None:
    """One job, or ``None``."""
    with db.session() as session:
        job = session.get(Job, job_id)
        return None if job is None else _info(job)


def list_recent_jobs(
    db: NodeDatabase, *, limit: int = 50, states: Iterable[JobState] | None = None
) -> list[JobInfo]:
    """The most recently changed jobs first, optionally only in ``states``."""
    stmt = select(Job).order_by(Job.updated_at.desc(), Job.id).limit(limit)
    if states is not None:
        stmt = stmt.where(Job.state.in_(list(states)))
    with db.session() as session:
        return [_info(job) for job in session.scalars(stmt)]


def queue_counts(db: NodeDatabase) -> dict[JobState, int]:
    """How many jobs are in each state (every state present, zeros included)."""
    stmt = select(Job.state, func.count()).group_by(Job.state)
    counts = dict.fromkeys(JobState, 0)
    with db.session() as session:
        for state, count in session.execute(stmt):
            counts[JobState(state)] = int(count)
    return counts
