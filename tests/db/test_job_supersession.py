"""A series that grows supersedes its older jobs (issue 22, item 4), on both backends."""

from __future__ import annotations

from db import (
    NodeDatabase,
    claim_next_job,
    complete_job,
    enqueue_job,
    fail_job,
    get_job,
    mark_delivered,
)
from pancreas_contracts.job_states import JobState

SHA = "b" * 64
UID = "1.2.826.0.1.3680043.8.498.1"


def _state(db: NodeDatabase, job_id: str) -> JobState:
    job = get_job(db, job_id)
    assert job is not None
    return job.state


def test_a_job_not_yet_run_is_cancelled_with_the_newer_version_named(
    node_db: NodeDatabase,
) -> None:
    old = enqueue_job(node_db, UID, 1, SHA, instance_count=153).job
    new = enqueue_job(node_db, UID, 2, SHA, instance_count=300).job
    cancelled = get_job(node_db, old.id)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    assert cancelled.superseded_by == new.id
    assert cancelled.failure_reason is not None
    assert "version 2 (300 instances)" in cancelled.failure_reason
    assert _state(node_db, new.id) is JobState.QUEUED
    # Only the newest runs.
    claimed = claim_next_job(node_db, "w1", 60)
    assert claimed is not None and claimed.id == new.id
    assert claim_next_job(node_db, "w1", 60) is None


def test_a_failed_job_awaiting_retry_is_cancelled(node_db: NodeDatabase) -> None:
    old = enqueue_job(node_db, UID, 1, SHA).job
    assert claim_next_job(node_db, "w1", 60) is not None
    fail_job(node_db, old.id, "failed at analysis", worker_id="w1")
    enqueue_job(node_db, UID, 2, SHA)
    assert _state(node_db, old.id) is JobState.CANCELLED


def test_a_done_result_is_superseded_and_a_delivered_one_is_marked(
    node_db: NodeDatabase,
) -> None:
    delivered = enqueue_job(node_db, UID, 1, SHA).job
    assert claim_next_job(node_db, "w1", 60) is not None
    complete_job(node_db, delivered.id, "w1")
    mark_delivered(node_db, delivered.id)
    done = enqueue_job(node_db, UID, 2, SHA).job
    assert claim_next_job(node_db, "w1", 60) is not None
    complete_job(node_db, done.id, "w1")

    newest = enqueue_job(node_db, UID, 3, SHA).job
    first, second = get_job(node_db, delivered.id), get_job(node_db, done.id)
    assert first is not None and second is not None
    # What was sent was sent: delivered stays delivered, and says by whom it was superseded.
    assert first.state is JobState.DELIVERED and first.superseded_by == done.id
    assert second.state is JobState.SUPERSEDED and second.superseded_by == newest.id


def test_a_job_running_when_the_series_grew_is_superseded_as_it_completes(
    node_db: NodeDatabase,
) -> None:
    running = enqueue_job(node_db, UID, 1, SHA).job
    assert claim_next_job(node_db, "w1", 60) is not None
    newest = enqueue_job(node_db, UID, 2, SHA).job
    assert _state(node_db, running.id) is JobState.RUNNING  # never cut off mid-run
    finished = complete_job(node_db, running.id, "w1")
    assert finished.state is JobState.SUPERSEDED and finished.superseded_by == newest.id


def test_a_job_made_late_for_an_outgrown_version_is_cancelled(node_db: NodeDatabase) -> None:
    newest = enqueue_job(node_db, UID, 2, SHA).job
    late = enqueue_job(node_db, UID, 1, "c" * 64)
    assert late.created
    assert late.job.state is JobState.CANCELLED and late.job.superseded_by == newest.id
