"""Closing a series version: the routing decision, and the job it queues, in one transaction.

A series that went quiet is closed *complete* with the routing rules' decision; one routed to
analysis (or whose assembly failed) gets its job. Both are written in one transaction: were the
series committed first, a crash or a database error before the job's INSERT would leave a
complete series that no poll looks at again, and the study would never be analysed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from db._audit import affected, write_audit
from db._database import NodeDatabase
from db._jobs import JobInfo, JobRequest, enqueue_in
from db._models import RoutingDecision, Series, SeriesStatus
from db._types import utcnow

__all__ = ["SeriesClosed", "close_series"]

_MAX_REASON = 2000


@dataclass(frozen=True)
class SeriesClosed:
    """A series version closed by :func:`close_series`, and the job it queued (if asked)."""

    job: JobInfo | None


def close_series(
    db: NodeDatabase,
    series_instance_uid: str,
    *,
    version: int,
    decision: RoutingDecision,
    reason: str,
    quiet_since: datetime | None = None,
    job: JobRequest | None = None,
    actor: str = "system",
) -> SeriesClosed | None:
    """Close a series version with the routing rules' decision and, with ``job``, queue its job.

    Guarded: nothing changes (and ``None`` comes back) if the series was re-opened to another
    version, is no longer receiving, or, with ``quiet_since``, received an instance after it.
    If queueing the job fails, the series stays *receiving* and the next poll closes it again.
    """
    now = utcnow()
    conditions = [
        Series.series_instance_uid == series_instance_uid,
        Series.version == version,
        Series.status == SeriesStatus.RECEIVING,
    ]
    if quiet_since is not None:
        conditions.append(Series.last_received_at <= quiet_since)
    stmt = (
        update(Series)
        .where(*conditions)
        .values(
            status=SeriesStatus.COMPLETE,
            routing_decision=decision,
            routing_reason=reason[:_MAX_REASON],
            completed_at=now,
        )
    )
    with db.session() as session:
        if not affected(session, stmt):
            return None
        write_audit(
            session,
            actor=actor,
            action="series.complete",
            object_type="series",
            object_id=series_instance_uid,
            detail={"version": version, "decision": decision.value},
            now=now,
        )
        if job is None:
            return SeriesClosed(job=None)
        queued = enqueue_in(session, series_instance_uid, version, job, actor=actor)
        return SeriesClosed(job=queued.job)
