"""The worker loop: completion, retries with backoff, final failure, crash recovery by lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from db import JobInfo, NodeDatabase, claim_next_job, enqueue_job, get_job, get_result
from dicom_node.worker import JobFailedError, JobOutcome, Worker
from pancreas_contracts import JobState
from tests.dicom_node.fake_results import fake_outcome
from tests.dicom_node.test_scp import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> NodeDatabase:
    db = NodeDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    db.upgrade()
    return db


def outcome(tmp_path: Path) -> JobOutcome:
    return fake_outcome(tmp_path / "result.json", "bundle-a")


def test_successful_job_is_done_with_its_result(tmp_path: Path, database: NodeDatabase) -> None:
    job_id = enqueue_job(database, "1.2.3", 1, "bundle-a").job.id
    delivered: list[str] = []
    worker = Worker(
        database, lambda job: outcome(tmp_path), on_done=lambda job, out: delivered.append(job.id)
    )
    done = worker.run_once()
    assert done is not None and done.state is JobState.DONE
    assert delivered == [job_id]
    result = get_result(database, job_id, actor="test")
    assert result is not None and result.category == 1
    assert worker.run_once() is None


def test_retryable_failure_backs_off_then_gives_up(tmp_path: Path, database: NodeDatabase) -> None:
    job_id = enqueue_job(database, "1.2.3", 1, "bundle-a").job.id
    clock = Clock()

    def failing(job: JobInfo) -> JobOutcome:
        raise JobFailedError("registry timeout", stage="registry")

    worker = Worker(database, failing, max_attempts=2, clock=clock)
    first = worker.run_once()
    assert (
        first is not None and first.state is JobState.FAILED and first.next_attempt_at is not None
    )
    assert first.failure_reason == (
        "failed at registry (attempt 1 of 2, retry scheduled): registry timeout"
    )
    assert worker.run_once() is None  # not due yet
    clock.now = first.next_attempt_at + timedelta(seconds=1)
    second = worker.run_once()
    assert second is not None and second.attempts == 2 and second.next_attempt_at is None
    assert second.failure_reason == "failed at registry after 2 attempts: registry timeout"
    clock.now += timedelta(days=1)
    assert worker.run_once() is None
    final = get_job(database, job_id)
    assert final is not None and final.state is JobState.FAILED


def test_unexpected_error_does_not_kill_the_loop(tmp_path: Path, database: NodeDatabase) -> None:
    enqueue_job(database, "1.2.3", 1, "bundle-a")

    def broken(job: JobInfo) -> JobOutcome:
        raise RuntimeError("boom")

    failed = Worker(database, broken).run_once()
    assert failed is not None
    assert failed.failure_reason == (
        "failed at analysis (attempt 1 of 3, retry scheduled): analysis error: RuntimeError"
    )


def test_refused_job_is_done_with_its_reason_and_delivers_the_document(
    tmp_path: Path, database: NodeDatabase
) -> None:
    job_id = enqueue_job(database, "1.2.3", 1, "bundle-a").job.id
    document = tmp_path / "outcome.dcm"
    reason = "refused: not-localised: confidence 0.11, localisers_apart_mm 148"
    delivered: list[tuple[str, tuple[Path, ...]]] = []
    worker = Worker(
        database,
        lambda job: JobOutcome(None, (document,), refusal=reason),
        on_done=lambda job, out: delivered.append((job.id, out.files)),
    )
    done = worker.run_once()
    assert done is not None and done.state is JobState.DONE
    assert done.failure_reason == reason
    assert delivered == [(job_id, (document,))]
    assert get_result(database, job_id, actor="test") is None


def test_final_failure_names_stage_and_attempts(tmp_path: Path, database: NodeDatabase) -> None:
    enqueue_job(database, "1.2.3", 1, "bundle-a")

    def missing(job: JobInfo) -> JobOutcome:
        raise JobFailedError("no stored instances", retryable=False, stage="series")

    failed = Worker(database, missing).run_once()
    assert failed is not None and failed.next_attempt_at is None
    assert failed.failure_reason == "failed at series after 1 attempt: no stored instances"


def test_job_of_a_dead_worker_is_requeued_after_its_lease(
    tmp_path: Path, database: NodeDatabase
) -> None:
    job_id = enqueue_job(database, "1.2.3", 1, "bundle-a").job.id
    clock = Clock()
    # A worker that claimed the job and died (kill -9) without finishing it.
    assert claim_next_job(database, "dead-worker", lease_s=60, now=clock.now) is not None
    survivor = Worker(database, lambda job: outcome(tmp_path), clock=clock)
    assert survivor.run_once() is None  # lease still valid
    clock.now += timedelta(seconds=61)
    done = survivor.run_once()
    assert done is not None and done.id == job_id and done.state is JobState.DONE


def test_any_error_of_one_job_fails_it_alone_and_the_loop_lives_on(
    tmp_path: Path, database: NodeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """A TypeError (not among the expected failures) used to end the worker thread."""
    bad = enqueue_job(database, "1.2.3", 1, "bundle-a").job.id
    good = enqueue_job(database, "1.2.4", 1, "bundle-a").job.id

    def runner(job: JobInfo) -> JobOutcome:
        if job.id == bad:
            raise TypeError("float() argument must be a string or a real number")
        return outcome(tmp_path)

    def broken_delivery(job: JobInfo, out: JobOutcome) -> None:
        raise KeyError("destination")

    worker = Worker(database, runner, on_done=broken_delivery, clock=Clock())
    worker.start(poll_s=0.05)
    try:

        def good_done() -> bool:
            state = get_job(database, good)
            return state is not None and state.state is JobState.DONE

        wait_for(good_done, timeout_s=30)
    finally:
        worker.stop()
    failed = get_job(database, bad)
    assert failed is not None and failed.state is JobState.FAILED
    assert (
        failed.failure_reason is not None and "analysis error: TypeError" in failed.failure_reason
    )
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any(bad in r.getMessage() for r in errors)
    assert all(r.exc_info is None for r in errors), "the traceback goes to DEBUG only"


def test_a_worker_can_be_named_after_its_node(database: NodeDatabase, tmp_path: Path) -> None:
    enqueue_job(database, "1.2.3", 1, "bundle-a")
    owners: list[str | None] = []

    def runner(job: JobInfo) -> JobOutcome:
        owners.append(job.lease_owner)
        return outcome(tmp_path)

    Worker(database, runner, worker_id="host/node/run/worker").run_once()
    assert owners == ["host/node/run/worker"]
