"""Job states shared by the queue, the worker, the plugin routes and the UI.

``received -> queued -> running -> done | failed -> delivered`` (ARCHITECTURE.md).

A CT the analysis checks refuse (e.g. ``not-localised``) is an outcome, not a failure: the
job becomes ``done`` without a result row, its reason starting with
:data:`pancreas_contracts.status.REFUSED_PREFIX`, and its refusal document is delivered like
any result (``done -> delivered``); its study status is ``ai-refused``. ``failed`` is kept for
runs that did not complete (its reason names the stage and the attempts).
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
