"""Job records for the plugin's unit tests (status words and the worklist)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db import JobInfo
from pancreas_contracts import JobState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(
    state: JobState,
    *,
    minutes: int = 0,
    retry: bool = False,
    version: int = 1,
    reason: str | None = None,
) -> JobInfo:
    at = T0 + timedelta(minutes=minutes)
    return JobInfo(
        id=f"job-{minutes}",
        series_instance_uid="1.2.s1",
        series_version=version,
        bundle_sha256="none",
        state=state,
        attempts=1,
        next_attempt_at=at if retry else None,
        failure_reason=reason,
        lease_owner=None,
        lease_expires_at=None,
        heartbeat_at=None,
        created_at=at,
        updated_at=at,
    )
