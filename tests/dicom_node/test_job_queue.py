"""The distributed queue (issue 27): the node's publisher on a real private RabbitMQ, and the
worker's handling of a message for a named job (duplicate, early, late, a dead holder's job).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from db import (
    ClaimStatus,
    JobInfo,
    NodeDatabase,
    claim_job,
    enqueue_job,
    fail_job,
    get_job,
)
from dicom_node.job_queue import ANALYSE_TASK, JobPublisher
from dicom_node.node import Node
from dicom_node.worker import JobOutcome, Worker
from pancreas_contracts import JobState, Settings
from pancreas_node.rabbitmq_server import RabbitMQServer
from tests.conftest import free_port
from tests.dicom_node.fake_results import fake_outcome
from tests.dicom_node.test_scp import wait_for

SHA = "c" * 64

pytestmark = pytest.mark.integration


@pytest.fixture
def database(tmp_path: Path) -> Iterator[NodeDatabase]:
    db = NodeDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    db.upgrade()
    yield db
    db.dispose()


def _settings(tmp_path: Path, broker: str, **values: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        worker_mode="celery",
        broker_url=broker,
        celery_queue=f"test-{uuid.uuid4().hex[:10]}",
        job_lease_s=3.0,
        **values,  # type: ignore[arg-type]
    )


def _drain(broker: str, queue_name: str, expected: int, timeout_s: float = 10.0) -> list[str]:
    """The job ids of the messages in ``queue_name`` (acknowledged: they leave the queue)."""
    queue = Queue(queue_name, Exchange(queue_name, type="direct"), routing_key=queue_name)
    ids: list[str] = []
    deadline = time.monotonic() + timeout_s
    with Connection(broker) as conn, conn.SimpleQueue(queue) as simple:
        while time.monotonic() < deadline:
            try:
                message = simple.get(timeout=0.3)
            except simple.Empty:
                if len(ids) >= expected:
                    break
                continue
            assert message.headers["task"] == ANALYSE_TASK
            body = message.body if isinstance(message.body, str) else message.body.decode()
            args, _kwargs, _embed = json.loads(body)
            ids.extend(args)
            message.ack()
    return ids


def test_the_sweep_publishes_each_claimable_job_once_per_attempt(
    tmp_path: Path, database: NodeDatabase, rabbitmq: RabbitMQServer
) -> None:
    settings = _settings(tmp_path, rabbitmq.url)
    first = enqueue_job(database, "1.1", 1, SHA).job.id
    second = enqueue_job(database, "1.2", 1, SHA).job.id
    publisher = JobPublisher(settings, database)
    try:
        assert publisher.sweep() == 2
        assert publisher.sweep() == 0  # still queued, already published
        assert sorted(_drain(rabbitmq.url, settings.celery_queue, 2)) == sorted([first, second])
        # Attempt 1 fails with a retry due now: its next attempt gets a message of its own.
        assert claim_job(database, first, "w", 3).status is ClaimStatus.CLAIMED
        fail_job(database, first, "x", retry_at=datetime.now(UTC), worker_id="w")
        assert publisher.sweep() == 1
        assert _drain(rabbitmq.url, settings.celery_queue, 1) == [first]
    finally:
        publisher.stop()


def test_a_broker_that_is_down_loses_no_job(tmp_path: Path, database: NodeDatabase) -> None:
    settings = _settings(tmp_path, f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    job_id = enqueue_job(database, "1.1", 1, SHA).job.id
    publisher = JobPublisher(settings, database)
    try:
        assert publisher.sweep() == 0  # logged; the job stays queued for the next sweep
    finally:
        publisher.stop()
    stored = get_job(database, job_id)
    assert stored is not None and stored.state is JobState.QUEUED


def test_a_node_in_the_distributed_mode_publishes_and_runs_nothing(
    tmp_path: Path, rabbitmq: RabbitMQServer
) -> None:
    settings = _settings(tmp_path, rabbitmq.url, port=free_port())
    node = Node(settings, runner=lambda job: JobOutcome(None))
    assert node.worker is None
    with node:
        job_id = enqueue_job(node.database, "1.1", 1, SHA).job.id
        assert _drain(rabbitmq.url, settings.celery_queue, 1) == [job_id]
        stored = get_job(node.database, job_id)
        assert stored is not None and stored.state is JobState.QUEUED


def _result(tmp_path: Path) -> JobOutcome:
    return fake_outcome(tmp_path / "result.json", SHA)


def test_run_job_takes_over_a_dead_holders_job_as_its_lease_expires(
    tmp_path: Path, database: NodeDatabase
) -> None:
    job_id = enqueue_job(database, "1.1", 1, SHA).job.id
    assert claim_job(database, job_id, "dead", 1.0).status is ClaimStatus.CLAIMED
    ran: list[JobInfo] = []

    def runner(job: JobInfo) -> JobOutcome:
        ran.append(job)
        return _result(tmp_path)

    worker = Worker(database, runner, lease_s=1.0, worker_id="alive")
    start = time.monotonic()
    assert worker.run_job(job_id) is ClaimStatus.CLAIMED
    assert time.monotonic() - start < 3.0
    assert [job.attempts for job in ran] == [2]
    stored = get_job(database, job_id)
    assert stored is not None and stored.state is JobState.DONE
    # The same message again (a duplicate): nothing runs twice.
    assert worker.run_job(job_id) is ClaimStatus.FINISHED
    assert len(ran) == 1


def test_run_job_leaves_a_live_holders_job_alone(tmp_path: Path, database: NodeDatabase) -> None:
    job_id = enqueue_job(database, "1.1", 1, SHA).job.id
    holder = threading.Event()
    release = threading.Event()

    def slow(job: JobInfo) -> JobOutcome:
        holder.set()
        release.wait(30)
        return _result(tmp_path)

    live = Worker(database, slow, lease_s=1.0, worker_id="live")
    thread = threading.Thread(target=live.run_job, args=(job_id,))
    thread.start()
    try:
        wait_for(holder.is_set)
        other = Worker(database, lambda job: _result(tmp_path), lease_s=1.0, worker_id="other")
        start = time.monotonic()
        assert other.run_job(job_id) is ClaimStatus.BUSY
        assert time.monotonic() - start < 2.0  # one heartbeat showed the holder alive
    finally:
        release.set()
        thread.join(30)
    stored = get_job(database, job_id)
    assert stored is not None and stored.state is JobState.DONE and stored.attempts == 1


def test_run_job_leaves_an_early_retry_for_later(tmp_path: Path, database: NodeDatabase) -> None:
    job_id = enqueue_job(database, "1.1", 1, SHA).job.id
    assert claim_job(database, job_id, "w", 3).status is ClaimStatus.CLAIMED
    fail_job(database, job_id, "x", retry_at=datetime.now(UTC) + timedelta(hours=1), worker_id="w")
    worker = Worker(database, lambda job: _result(tmp_path), lease_s=1.0)
    assert worker.run_job(job_id) is ClaimStatus.NOT_DUE
