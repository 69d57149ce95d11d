"""Job records and worklist entries for the plugin's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from db import JobInfo
from db import WorklistEntry as Entry
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


def entry(uid: str, state: JobState | None, **values: Any) -> Entry:
    defaults: dict[str, Any] = {
        "study_instance_uid": uid,
        "accession_number": None,
        "study_date": None,
        "study_created_at": T0,
        "job": None if state is None else job(state, minutes=int(uid)),
        "category": None,
        "category_label": None,
        "probabilities": (),
        "board_id": None,
        "board_date": None,
        "board_title": None,
        "decision_category": None,
        "decided_at": None,
        "review_verdict": None,
        "reviewer": None,
        "review_category": None,
        "series_routing": (),
    }
    defaults.update(values)
    return Entry(**defaults)
