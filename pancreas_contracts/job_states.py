"""Job states shared by the queue, the worker, the plugin routes and the UI.

``received -> queued -> running -> done | failed -> delivered`` (ARCHITECTURE.md).

A CT the analysis checks refuse (e.g. ``not-localised``) is an outcome, not a failure: the
job becomes ``done`` without a result row, its reason starting with
:data:`pancreas_contracts.status.REFUSED_PREFIX`, and its refusal document is delivered like
any result (``done -> delivered``); its study status is ``ai-refused``. ``failed`` is kept for
runs that did not complete (its reason names the stage and the attempts:
:func:`failure_reason`, read back with :func:`failed_stage`). A job failed at stage
:data:`ASSEMBLY_STAGE` never ran the routing rules: it is not re-queued as it is, its series is
re-opened so that assembly and the rules run again.

A series that grows after its job was made gets a new job for the new version, which
supersedes the older ones (issue 22): a job not yet run (``received``, ``queued``, ``failed``)
becomes ``cancelled``; a ``done`` job not yet delivered becomes ``superseded`` and is never
delivered. Both are final. A ``delivered`` job stays delivered (what was sent was sent); the
database marks it superseded beside its state.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

__all__ = ["ASSEMBLY_STAGE", "TRANSITIONS", "JobState", "failed_stage", "failure_reason"]

#: The stage of a job recorded by a series assembly that raised (issue 22, D1).
ASSEMBLY_STAGE: Final = "assembly"
_STAGE = re.compile(r"^failed at ([a-z_-]+)\b")


class JobState(StrEnum):
    """Lifecycle state of one analysis job."""

    RECEIVED = "received"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVED: frozenset({JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    # A running job that crashed is re-queued on restart.
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.QUEUED}),
    JobState.DONE: frozenset({JobState.DELIVERED, JobState.FAILED, JobState.SUPERSEDED}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.DELIVERED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.SUPERSEDED: frozenset(),
}


def failure_reason(stage: str, attempts: int, reason: str) -> str:
    """A failed job's stored reason: ``failed at <stage> after N attempt(s): <reason>``."""
    plural = "attempt" if attempts == 1 else "attempts"
    return f"failed at {stage} after {attempts} {plural}: {reason}"


def failed_stage(reason: str | None) -> str | None:
    """The stage a failure reason names (``analysis``, ``assembly``, ...), or ``None``."""
    match = _STAGE.match(reason or "")
    return match.group(1) if match else None
