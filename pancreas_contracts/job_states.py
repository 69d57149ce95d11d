"""Job states shared by the queue, the worker, the plugin routes and the UI.

``received -> queued -> running -> done | failed -> delivered`` (ARCHITECTURE.md).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TRANSITIONS", "JobState"]


class JobState(StrEnum):
    """Lifecycle state of one analysis job."""

    RECEIVED = "received"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DELIVERED = "delivered"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVED: frozenset({JobState.QUEUED, JobState.FAILED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED}),
    # A running job that crashed is re-queued on restart.
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.QUEUED}),
    JobState.DONE: frozenset({JobState.DELIVERED, JobState.FAILED}),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.DELIVERED: frozenset(),
}
