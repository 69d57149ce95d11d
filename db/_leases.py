"""Leases: crash recovery of running jobs and the delivery lease of done jobs.

A running job is leased to one worker (``lease_owner``, taken in :func:`db.claim_next_job`);
an expired lease puts the job back in the queue (:func:`requeue_expired_leases`). A done job's
delivery is leased to one dispatcher (``delivery_owner``, :func:`claim_delivery`), so two
delivery paths never send the same objects twice (issue 22, D4). A restarted node takes back
its previous incarnation's leases at once (:func:`reclaim_node_leases`, issue 22, D9) instead of
waiting for them to expire.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, not_, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from db._audit import affected
from db._database import NodeDatabase
from db._jobs import _transition
from db._models import Job
from db._types import utcnow
from pancreas_contracts.job_states import JobState

__all__ = [
    "claim_delivery",
    "reclaim_node_leases",
    "release_delivery",
    "requeue_expired_leases",
]

_log = logging.getLogger(__name__)


def requeue_expired_leases(db: NodeDatabase, *, now: datetime | None = None) -> list[str]:
    """Put running jobs whose lease has expired back in the queue (crash recovery).

    Returns
    -------
    list of str
        The ids of the re-queued jobs.
    """
    now = now or utcnow()
    stmt = (
        select(Job)
        .where(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
        .order_by(Job.lease_expires_at)
        .with_for_update(skip_locked=True)
    )
    with db.session() as session:
        requeued = []
        for job in session.scalars(stmt):
            _transition(
                session, job, JobState.QUEUED, actor="system", now=now, reason="lease expired"
            )
            requeued.append(job.id)
    if requeued:
        _log.warning("re-queued %d job(s) with an expired lease", len(requeued))
    return requeued


def reclaim_node_leases(
    db: NodeDatabase, node_prefix: str, current_prefix: str, *, now: datetime | None = None
) -> list[str]:
    """Take back, at once, the leases a previous incarnation of this node still holds.

    A lease owner names its node and its process (``<node_prefix><incarnation>/...``). At
    start-up the leases held under ``node_prefix`` by another incarnation than
    ``current_prefix`` belong to a process that is dead (one node, one process): its running
    jobs are re-queued and its delivery leases released now, instead of after
    ``job_lease_s``. Leases of other nodes sharing the database are left alone.

    Returns
    -------
    list of str
        The ids of the re-queued jobs.
    """
    if not current_prefix.startswith(node_prefix) or current_prefix == node_prefix:
        raise ValueError("current_prefix must extend node_prefix")
    now = now or utcnow()

    def previous(column: InstrumentedAttribute[str | None]) -> ColumnElement[bool]:
        return and_(
            column.startswith(node_prefix, autoescape=True),
            not_(column.startswith(current_prefix, autoescape=True)),
        )

    running = (
        select(Job)
        .where(Job.state == JobState.RUNNING, previous(Job.lease_owner))
        .order_by(Job.created_at, Job.id)
        .with_for_update(skip_locked=True)
    )
    with db.session() as session:
        requeued = []
        for job in session.scalars(running):
            why = "lease of a previous run of this node reclaimed at start-up"
            _transition(session, job, JobState.QUEUED, actor="system", now=now, reason=why)
            requeued.append(job.id)
        session.execute(
            update(Job)
            .where(previous(Job.delivery_owner))
            .values(delivery_owner=None, delivery_lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
    if requeued:
        _log.warning("re-queued %d job(s) of this node's previous run", len(requeued))
    return requeued


def claim_delivery(
    db: NodeDatabase, job_id: str, owner: str, lease_s: float, *, now: datetime | None = None
) -> bool:
    """Lease a ``done`` job's delivery to ``owner``; ``False`` if someone else holds it.

    One guarded ``UPDATE ... WHERE state = 'done' AND (no lease OR lease expired)``: of two
    dispatchers racing for the same job exactly one gets it, so each destination gets the
    objects once. A holder that died loses the lease after ``lease_s``, or at once when the
    same node restarts (:func:`reclaim_node_leases`).
    """
    now = now or utcnow()
    stmt = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.state == JobState.DONE,
            or_(Job.delivery_owner.is_(None), Job.delivery_lease_expires_at < now),
        )
        .values(delivery_owner=owner, delivery_lease_expires_at=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        return bool(affected(session, stmt))


def release_delivery(db: NodeDatabase, job_id: str, owner: str) -> None:
    """Give back a delivery lease ``owner`` holds (nothing happens if it does not)."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.delivery_owner == owner)
        .values(delivery_owner=None, delivery_lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        session.execute(stmt)
