"""Distributed workers (issue 27): real worker processes, a private RabbitMQ and PostgreSQL.

The analysis is a fake runner (:mod:`tests.pancreas_node.celery_fake_worker`) that marks each
run's start and holds: the point is the queue, not the model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from db import NodeDatabase, enqueue_job, get_job
from dicom_node.job_queue import JobPublisher
from pancreas_contracts import JobState, Settings
from pancreas_node.celery_worker import worker_argv
from pancreas_node.cli import main
from pancreas_node.rabbitmq_server import RabbitMQServer
from tests.conftest import REPO_ROOT, unavailable
from tests.db.conftest import create_pg_database, drop_pg_database, new_pg_schema, pg_url

pytestmark = pytest.mark.integration

SHA = "d" * 64
LEASE_S = 3.0


class Cluster:
    """The database, the publisher and the worker processes of one test."""

    def __init__(self, url: str, broker: str, tmp_path: Path) -> None:
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        queue = f"test-{tmp_path.name[-20:]}".replace("_", "-")
        self.settings = Settings(
            data_dir=tmp_path / "data",
            database_url=url,
            worker_mode="celery",
            broker_url=broker,
            celery_queue=queue,
            job_lease_s=LEASE_S,
        )
        self.database = NodeDatabase(url)
        self.database.upgrade()
        self.publisher = JobPublisher(self.settings, self.database)
        self.workers: list[subprocess.Popen[bytes]] = []
        self._env = {
            **os.environ,
            "PANCREAS_AI_DATA_DIR": str(self.settings.data_dir),
            "PANCREAS_AI_DATABASE_URL": url,
            "PANCREAS_AI_WORKER_MODE": "celery",
            "PANCREAS_AI_BROKER_URL": broker,
            "PANCREAS_AI_CELERY_QUEUE": queue,
            "PANCREAS_AI_JOB_LEASE_S": str(LEASE_S),
            "FAKE_MARKS": str(self.marks),
        }
        self._logs = tmp_path

    def start_worker(self, hold_s: float) -> subprocess.Popen[bytes]:
        log = (self._logs / f"worker-{len(self.workers)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.pancreas_node.celery_fake_worker"],
            cwd=REPO_ROOT,
            env={**self._env, "FAKE_HOLD_S": str(hold_s)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process

    def runs(self, job_id: str) -> list[tuple[int, int, float]]:
        """(attempt, pid, start time) of each run of ``job_id``, in start order."""
        found = []
        for path in self.marks.glob(f"{job_id}.*.*"):
            if path.suffix == ".json":
                continue
            _, attempt, pid = path.name.rsplit(".", 2)
            found.append((int(attempt), int(pid), float(path.read_text(encoding="ascii"))))
        return sorted(found, key=lambda run: run[2])

    def result_rows(self, job_id: str) -> int:
        with self.database.session() as session:
            query = text("SELECT count(*) FROM results WHERE job_id = :job")
            return int(session.execute(query, {"job": job_id}).scalar_one())

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.publisher.stop()
        self.database.dispose()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """This module's own PostgreSQL database (the record of truth workers share)."""
    try:
        name = create_pg_database("pancreas_celery")
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL is not usable: {type(exc).__name__}")
        raise AssertionError("unreachable") from exc
    yield name
    drop_pg_database(name)


@pytest.fixture
def cluster(pg_database: str, rabbitmq: RabbitMQServer, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(pg_url(pg_database, new_pg_schema(pg_database)), rabbitmq.url, tmp_path)
    yield made
    made.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def _state(cluster: Cluster, job_id: str) -> JobState | None:
    job = get_job(cluster.database, job_id)
    return None if job is None else job.state


def test_the_worker_runs_one_process_one_job_at_a_time() -> None:
    settings = Settings(worker_mode="celery", broker_url="amqp://x//")
    argv = list(worker_argv(settings, "pancreas@test"))
    assert "--pool=solo" in argv and "--concurrency=1" in argv
    assert f"--queues={settings.celery_queue}" in argv


def test_two_workers_run_every_job_once_even_when_each_message_is_sent_twice(
    cluster: Cluster,
) -> None:
    cluster.start_worker(hold_s=0.3)
    cluster.start_worker(hold_s=0.3)
    jobs = [enqueue_job(cluster.database, f"2.{i}", 1, SHA).job.id for i in range(8)]
    assert cluster.publisher.sweep() == len(jobs)
    for job_id in jobs:  # a duplicate of each message (a sweep of a restarted node, say)
        cluster.publisher.publish(job_id)
    for job_id in jobs:
        wait_until(lambda j=job_id: _state(cluster, j) is JobState.DONE, 90, f"job {job_id}")
    # The duplicates are consumed too; give them time to (not) run.
    time.sleep(2 * LEASE_S)
    pids = set()
    for job_id in jobs:
        runs = cluster.runs(job_id)
        assert len(runs) == 1, runs
        pids.add(runs[0][1])
        assert cluster.result_rows(job_id) == 1
    assert pids == {w.pid for w in cluster.workers}  # both took part


def test_a_worker_killed_mid_job_hands_it_to_another_within_10_s(cluster: Cluster) -> None:
    first = cluster.start_worker(hold_s=120)
    second = cluster.start_worker(hold_s=120)
    job_id = enqueue_job(cluster.database, "3.1", 1, SHA).job.id
    assert cluster.publisher.sweep() == 1
    wait_until(lambda: len(cluster.runs(job_id)) == 1, 60, "the first run starts")
    _, holder, _ = cluster.runs(job_id)[0]
    assert holder in {first.pid, second.pid}
    os.kill(holder, signal.SIGKILL)
    killed_at = time.time()
    wait_until(lambda: len(cluster.runs(job_id)) == 2, 30, "another worker restarts the job")
    attempt, taker, restarted_at = cluster.runs(job_id)[1]
    assert taker != holder and attempt == 2
    assert restarted_at - killed_at < 10.0
    wait_until(lambda: _state(cluster, job_id) is JobState.DONE, 30, "the job is done")
    assert cluster.result_rows(job_id) == 1
    job = get_job(cluster.database, job_id)
    assert job is not None and job.attempts == 2


def test_the_distributed_mode_needs_a_broker() -> None:
    with pytest.raises(ValueError, match="broker_url"):
        Settings(worker_mode="celery")


def test_the_worker_command_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PANCREAS_AI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PANCREAS_AI_BROKER_URL", raising=False)
    assert main(["worker"]) == 1
    assert "PANCREAS_AI_BROKER_URL" in capsys.readouterr().err
    monkeypatch.setenv("PANCREAS_AI_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    monkeypatch.delenv("PANCREAS_AI_BUNDLE_PATH", raising=False)
    assert main(["worker"]) == 1
    assert "PANCREAS_AI_BUNDLE_PATH" in capsys.readouterr().err
