"""Claiming one named job, for workers fed by a message broker (issue 27).

The embedded worker takes the oldest due job (:func:`db.claim_next_job`). A distributed worker
gets a job id in a message instead, and a message may arrive twice (a redelivery after a
worker died, the node's sweep re-publishing), early (a retry not yet due) or late (the job was
done by someone else). :func:`claim_job` decides, in one locked transaction, what a message for
a job means now, so the broker never has to be exactly-once: the database is the record of
truth. :func:`publishable_jobs` lists what the node should (re-)publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, or_, select

from db._database import NodeDatabase
from db._jobs import JobInfo, _due, _info, _lease_to, _requeue_due_retry, _transition
from db._models import Job
from db._types import utcnow
from pancreas_contracts.job_states import JobState

__all__ = ["ClaimOutcome", "ClaimStatus", "PublishableJob", "claim_job", "publishable_jobs"]


class ClaimStatus(StrEnum):
    """What a message for one job means when it arrives."""

    #: The job is now running, leased to the caller.
    CLAIMED = "claimed"
    #: Another worker holds a lease that has not expired: it may still be running the job.
    BUSY = "busy"
    #: Queued or failed with a retry time still ahead (the node re-publishes it when due).
    NOT_DUE = "not-due"
    #: Nothing left to run: done, delivered, cancelled, superseded or failed for good.
    FINISHED = "finished"
    #: No such job (a message from another database, or a job deleted since).
    MISSING = "missing"


@dataclass(frozen=True)
class ClaimOutcome:
    """The answer of :func:`claim_job`: the status and the job as it is after the call."""

    status: ClaimStatus
    job: JobInfo | None


@dataclass(frozen=True)
class PublishableJob:
    """A job the node should have a message for: its id and its attempts so far."""

    job_id: str
    attempts: int


def claim_job(
    db: NodeDatabase,
    job_id: str,
    worker_id: str,
    lease_s: float,
    *,
    now: datetime | None = None,
) -> ClaimOutcome:
    """Take job ``job_id`` for ``worker_id`` if it is due, else say why not.

    A queued job that is due, a failed job whose retry time has come and a running job whose
    lease has expired (its worker died) become ``running``, leased to ``worker_id`` for
    ``lease_s`` seconds, with ``attempts`` incremented; each state change is audited as
    usual. The row is locked (``FOR UPDATE`` on PostgreSQL, the write lock of ``BEGIN
    IMMEDIATE`` on SQLite), so of two workers given the same job exactly one claims it.

    Returns
    -------
    ClaimOutcome
        ``CLAIMED`` with the running job, or why the caller must not run it.
    """
    now = now or utcnow()
    with db.session() as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
        if job is None:
            return ClaimOutcome(ClaimStatus.MISSING, None)
        if job.state is JobState.FAILED:
            if job.next_attempt_at is None:
                return ClaimOutcome(ClaimStatus.FINISHED, _info(job))
            if job.next_attempt_at > now:
                return ClaimOutcome(ClaimStatus.NOT_DUE, _info(job))
            _requeue_due_retry(session, job, worker_id, now)
        elif job.state is JobState.RUNNING:
            if job.lease_expires_at is not None and job.lease_expires_at >= now:
                return ClaimOutcome(ClaimStatus.BUSY, _info(job))
            # The holder stopped renewing: it died or lost the database. Its late completion
            # is refused (LeaseLostError), so the job is stored once.
            _transition(
                session, job, JobState.QUEUED, actor=worker_id, now=now, reason="lease expired"
            )
        if job.state is JobState.RECEIVED:
            return ClaimOutcome(ClaimStatus.NOT_DUE, _info(job))  # queued in the same commit
        if job.state is not JobState.QUEUED:
            return ClaimOutcome(ClaimStatus.FINISHED, _info(job))
        if job.next_attempt_at is not None and job.next_attempt_at > now:
            return ClaimOutcome(ClaimStatus.NOT_DUE, _info(job))
        job.attempts += 1
        _lease_to(session, job, worker_id, lease_s, now)
        return ClaimOutcome(ClaimStatus.CLAIMED, _info(job))


def publishable_jobs(
    db: NodeDatabase, *, stale_after_s: float, now: datetime | None = None, limit: int = 500
) -> list[PublishableJob]:
    """Jobs a worker could claim now: due queued jobs, due retries, stale running jobs.

    A running job counts once its lease has been expired for ``stale_after_s`` seconds: its
    worker's own message is normally redelivered by the broker before that; this catches a
    message the broker lost. Oldest first, at most ``limit``.
    """
    now = now or utcnow()
    stmt = (
        select(Job.id, Job.attempts)
        .where(
            or_(
                and_(Job.state == JobState.QUEUED, _due(now)),
                and_(Job.state == JobState.FAILED, Job.next_attempt_at <= now),
                and_(
                    Job.state == JobState.RUNNING,
                    Job.lease_expires_at < now - timedelta(seconds=stale_after_s),
                ),
            )
        )
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    )
    with db.session() as session:
        return [PublishableJob(str(row[0]), int(row[1])) for row in session.execute(stmt)]
