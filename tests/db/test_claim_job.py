"""Claiming one named job (issue 27): what a broker message for a job means when it arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import (
    ClaimStatus,
    LeaseLostError,
    NodeDatabase,
    claim_job,
    complete_job,
    enqueue_job,
    fail_job,
    get_job,
    publishable_jobs,
)
from pancreas_contracts import JobState

SHA = "b" * 64
T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def _job(db: NodeDatabase, uid: str = "1.2.3") -> str:
    return enqueue_job(db, uid, 1, SHA).job.id


def test_a_queued_job_is_claimed_once(node_db: NodeDatabase) -> None:
    job_id = _job(node_db)
    first = claim_job(node_db, job_id, "w1", 10, now=T0)
    assert first.status is ClaimStatus.CLAIMED
    assert first.job is not None
    assert first.job.state is JobState.RUNNING
    assert first.job.lease_owner == "w1"
    assert first.job.attempts == 1
    second = claim_job(node_db, job_id, "w2", 10, now=T0 + timedelta(seconds=5))
    assert second.status is ClaimStatus.BUSY
    assert second.job is not None and second.job.lease_owner == "w1"


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_complete(
    node_db: NodeDatabase,
) -> None:
    job_id = _job(node_db)
    assert claim_job(node_db, job_id, "w1", 10, now=T0).status is ClaimStatus.CLAIMED
    taken = claim_job(node_db, job_id, "w2", 10, now=T0 + timedelta(seconds=11))
    assert taken.status is ClaimStatus.CLAIMED
    assert taken.job is not None
    assert taken.job.lease_owner == "w2"
    assert taken.job.attempts == 2
    with pytest.raises(LeaseLostError):
        complete_job(node_db, job_id, "w1", now=T0 + timedelta(seconds=12))
    done = complete_job(node_db, job_id, "w2", now=T0 + timedelta(seconds=13))
    assert done.state is JobState.DONE
    late = claim_job(node_db, job_id, "w3", 10, now=T0 + timedelta(seconds=14))
    assert late.status is ClaimStatus.FINISHED


def test_retries_are_claimed_when_due_and_final_failures_never(node_db: NodeDatabase) -> None:
    job_id = _job(node_db)
    assert claim_job(node_db, job_id, "w1", 10, now=T0).status is ClaimStatus.CLAIMED
    retry_at = T0 + timedelta(seconds=30)
    fail_job(node_db, job_id, "boom", retry_at=retry_at, worker_id="w1", now=T0)
    early = claim_job(node_db, job_id, "w2", 10, now=T0 + timedelta(seconds=29))
    assert early.status is ClaimStatus.NOT_DUE
    due = claim_job(node_db, job_id, "w2", 10, now=retry_at)
    assert due.status is ClaimStatus.CLAIMED
    assert due.job is not None and due.job.attempts == 2
    fail_job(node_db, job_id, "boom again", worker_id="w2", now=retry_at)
    final = claim_job(node_db, job_id, "w3", 10, now=retry_at + timedelta(hours=1))
    assert final.status is ClaimStatus.FINISHED
    stored = get_job(node_db, job_id)
    assert stored is not None and stored.state is JobState.FAILED


def test_an_unknown_job_is_missing(node_db: NodeDatabase) -> None:
    assert claim_job(node_db, "no-such-job", "w1", 10).status is ClaimStatus.MISSING


def test_publishable_jobs_lists_what_a_worker_could_claim(node_db: NodeDatabase) -> None:
    queued = _job(node_db, "1.1")
    running = _job(node_db, "1.2")
    retrying = _job(node_db, "1.3")
    assert claim_job(node_db, running, "w1", 10, now=T0).status is ClaimStatus.CLAIMED
    assert claim_job(node_db, retrying, "w1", 10, now=T0).status is ClaimStatus.CLAIMED
    fail_job(node_db, retrying, "x", retry_at=T0 + timedelta(seconds=60), worker_id="w1", now=T0)

    def listed(at: datetime) -> dict[str, int]:
        return {j.job_id: j.attempts for j in publishable_jobs(node_db, stale_after_s=10, now=at)}

    assert listed(T0 + timedelta(seconds=5)) == {queued: 0}
    # The running job's lease expired at +10 s; it is listed a whole lease later.
    assert listed(T0 + timedelta(seconds=15)) == {queued: 0}
    assert listed(T0 + timedelta(seconds=21)) == {queued: 0, running: 1}
    assert listed(T0 + timedelta(seconds=61)) == {queued: 0, running: 1, retrying: 1}
