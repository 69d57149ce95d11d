"""The job queue on both backends: idempotency, claims, leases, transitions, audit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from db import (
    InvalidTransitionError,
    LeaseLostError,
    NewResult,
    NodeDatabase,
    backoff_delay,
    claim_next_job,
    complete_job,
    enqueue_job,
    fail_job,
    get_job,
    get_result,
    heartbeat_job,
    list_audit_events,
    list_recent_jobs,
    mark_delivered,
    queue_counts,
    requeue_expired_leases,
    retry_job,
)
from db._jobs import _transition
from db._models import Job
from pancreas_contracts.job_states import TRANSITIONS, JobState

SHA = "b" * 64
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def _states(db: NodeDatabase, job_id: str) -> list[tuple[str, str]]:
    return [
        (str(e.detail["from"]), str(e.detail["to"]))
        for e in list_audit_events(db, object_type="job", object_id=job_id)
        if e.action == "job.state" and e.detail is not None
    ]


def test_enqueue_is_idempotent_by_series_version_and_bundle(node_db: NodeDatabase) -> None:
    first = enqueue_job(node_db, "1.2.3", 1, SHA)
    again = enqueue_job(node_db, "1.2.3", 1, SHA)
    assert first.created and not again.created
    assert again.job.id == first.job.id
    assert first.job.state is JobState.QUEUED
    assert enqueue_job(node_db, "1.2.3", 1, "c" * 64).created  # another bundle: a new job
    assert _states(node_db, first.job.id) == [("received", "queued")]
    assert queue_counts(node_db)[JobState.QUEUED] == 2
    # A re-opened series: a new job, which cancels the older version's jobs not yet run.
    newest = enqueue_job(node_db, "1.2.3", 2, SHA, instance_count=21)
    assert newest.created and newest.job.instance_count == 21
    assert _states(node_db, first.job.id) == [("received", "queued"), ("queued", "cancelled")]
    assert queue_counts(node_db)[JobState.QUEUED] == 1
    assert queue_counts(node_db)[JobState.CANCELLED] == 2


def test_full_lifecycle_writes_one_audit_event_per_transition(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    claimed = claim_next_job(node_db, "w1", 60)
    assert claimed is not None
    assert claimed.id == job_id
    assert claimed.state is JobState.RUNNING
    assert claimed.attempts == 1
    assert claimed.lease_owner == "w1"
    result = NewResult(
        result_json_path="/data/results/x/result.json",
        bundle_name="demo",
        bundle_version="1",
        bundle_sha256=SHA,
        category=1,
        category_label="borderline resectable",
        probabilities=(0.2, 0.7, 0.1),
        measurements={"tumor_volume_ml": 12.5},
        timings_s={"inference": 3.2},
        clinical_used=("age",),
        clinical_missing=("cea",),
        clinical_imputed=("cea",),
        registry_status="partial",
    )
    done = complete_job(node_db, job_id, "w1", result)
    assert done.state is JobState.DONE
    assert done.lease_owner is None
    assert mark_delivered(node_db, job_id).state is JobState.DELIVERED
    assert _states(node_db, job_id) == [
        ("received", "queued"),
        ("queued", "running"),
        ("running", "done"),
        ("done", "delivered"),
    ]
    stored = get_result(node_db, job_id, actor="dr-who", origin="10.0.0.7")
    assert stored is not None
    assert stored.category == 1
    assert list(stored.probabilities) == [0.2, 0.7, 0.1]
    assert stored.measurements == {"tumor_volume_ml": 12.5}
    assert stored.clinical_missing == ("cea",)
    reads = [e for e in list_audit_events(node_db) if e.action == "result.read"]
    assert [(e.actor, e.origin) for e in reads] == [("dr-who", "10.0.0.7")]
    assert get_result(node_db, "no-such-job", actor="x") is None


def test_invalid_transitions_are_rejected_without_side_effects(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    with pytest.raises(InvalidTransitionError, match="queued -> done"):
        complete_job(node_db, job_id, "w1")
    with pytest.raises(InvalidTransitionError):
        mark_delivered(node_db, job_id)
    job = get_job(node_db, job_id)
    assert job is not None
    assert job.state is JobState.QUEUED
    assert _states(node_db, job_id) == [("received", "queued")]
    with pytest.raises(LookupError):
        complete_job(node_db, "nope", "w1")


def test_every_transition_follows_the_contract(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    for source in JobState:
        for target in JobState:
            with node_db.session() as session:
                session.execute(update(Job).where(Job.id == job_id).values(state=source))
            allowed = target in TRANSITIONS[source]
            try:
                with node_db.session() as session:
                    job = session.get_one(Job, job_id)
                    _transition(session, job, target, actor="t", now=T0)
            except InvalidTransitionError:
                assert not allowed, (source, target)
            else:
                assert allowed, (source, target)


def test_two_concurrent_claimers_never_get_the_same_job(node_db: NodeDatabase) -> None:
    total = 30
    for i in range(total):
        enqueue_job(node_db, f"1.2.{i}", 1, SHA)
    claimed: dict[str, list[str]] = {"w1": [], "w2": [], "w3": []}
    start = threading.Barrier(len(claimed))

    def work(worker: str) -> None:
        start.wait()
        while (job := claim_next_job(node_db, worker, 60)) is not None:
            claimed[worker].append(job.id)

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = [job_id for jobs in claimed.values() for job_id in jobs]
    assert len(ids) == total
    assert len(set(ids)) == total
    assert queue_counts(node_db)[JobState.RUNNING] == total


def test_expired_lease_is_requeued_and_the_old_worker_loses_it(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    assert claim_next_job(node_db, "crashed", 60, now=T0) is not None
    assert heartbeat_job(node_db, job_id, "crashed", 60, now=T0 + timedelta(seconds=30))
    assert requeue_expired_leases(node_db, now=T0 + timedelta(seconds=80)) == []
    assert requeue_expired_leases(node_db, now=T0 + timedelta(seconds=91)) == [job_id]
    job = get_job(node_db, job_id)
    assert job is not None
    assert job.state is JobState.QUEUED
    assert job.lease_owner is None
    again = claim_next_job(node_db, "healthy", 60, now=T0 + timedelta(seconds=92))
    assert again is not None
    assert again.id == job_id
    assert again.attempts == 2
    with pytest.raises(LeaseLostError):
        complete_job(node_db, job_id, "crashed")
    assert not heartbeat_job(node_db, job_id, "crashed", 60)
    assert complete_job(node_db, job_id, "healthy").state is JobState.DONE
    lease_events = [
        e
        for e in list_audit_events(node_db, object_id=job_id)
        if e.detail and e.detail.get("reason")
    ]
    assert [e.detail["reason"] for e in lease_events if e.detail] == ["lease expired"]


def test_failed_job_is_retried_when_due(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    claim_next_job(node_db, "w1", 60, now=T0)
    retry_at = T0 + backoff_delay(1, base_s=30)
    failed = fail_job(node_db, job_id, "inference crashed", retry_at=retry_at, worker_id="w1")
    assert failed.state is JobState.FAILED
    assert failed.failure_reason == "inference crashed"
    assert claim_next_job(node_db, "w1", 60, now=T0 + timedelta(seconds=10)) is None
    retried = claim_next_job(node_db, "w1", 60, now=T0 + timedelta(seconds=31))
    assert retried is not None
    assert retried.id == job_id
    assert retried.attempts == 2
    fail_job(node_db, job_id, "again", worker_id="w1")  # no retry_at: stays failed
    assert claim_next_job(node_db, "w1", 60, now=T0 + timedelta(days=1)) is None
    assert retry_job(node_db, job_id, actor="admin").state is JobState.QUEUED
    assert _states(node_db, job_id) == [
        ("received", "queued"),
        ("queued", "running"),
        ("running", "failed"),
        ("failed", "queued"),
        ("queued", "running"),
        ("running", "failed"),
        ("failed", "queued"),
    ]


def test_only_the_lease_holder_fails_a_running_job(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    claim_next_job(node_db, "w1", 60)
    with pytest.raises(LeaseLostError):
        fail_job(node_db, job_id, "x", worker_id="w2")
    queued = enqueue_job(node_db, "1.2.4", 1, SHA).job.id
    assert fail_job(node_db, queued, "series rejected").state is JobState.FAILED


def test_backoff_doubles_up_to_the_cap() -> None:
    assert backoff_delay(1) == timedelta(seconds=30)
    assert backoff_delay(2) == timedelta(seconds=60)
    assert backoff_delay(3, base_s=10) == timedelta(seconds=40)
    assert backoff_delay(50) == timedelta(hours=1)
    assert backoff_delay(0) == timedelta(seconds=30)


def test_recent_jobs_and_counts(node_db: NodeDatabase) -> None:
    ids = [enqueue_job(node_db, f"1.2.{i}", 1, SHA).job.id for i in range(3)]
    claim_next_job(node_db, "w1", 60)
    recent = list_recent_jobs(node_db, limit=2)
    assert len(recent) == 2
    assert recent[0].id == ids[0]  # the claim made it the most recently changed
    assert [j.id for j in list_recent_jobs(node_db, states=[JobState.RUNNING])] == [ids[0]]
    counts = queue_counts(node_db)
    assert set(counts) == set(JobState)
    assert counts[JobState.QUEUED] == 2
    assert counts[JobState.RUNNING] == 1
    assert counts[JobState.DONE] == 0
