"""A real ``pancreas-node worker`` process serves its own /metrics (issue 27).

One worker process (:mod:`tests.pancreas_node.celery_metrics_worker`) on a private RabbitMQ and
an SQLite node database, with ``PANCREAS_AI_METRICS_PORT`` on a free port: a published job runs
there, and the worker's own scrape shows it; SIGTERM ends the process and its metrics server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
from pydantic import SecretStr

from db import NodeDatabase, enqueue_job
from dicom_node.job_queue import JobPublisher
from pancreas_contracts import Settings
from pancreas_node.rabbitmq_server import RabbitMQServer
from tests.conftest import REPO_ROOT, free_port
from tests.dicom_node.test_metrics import samples, scrape, value
from tests.dicom_node.test_scp import wait_for

pytestmark = pytest.mark.integration


def _scrape_or_empty(port: int) -> str:
    try:
        return scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return ""  # not serving yet


def test_worker_process_serves_its_metrics(rabbitmq: RabbitMQServer, tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'node.db'}",
        worker_mode="celery",
        broker_url=SecretStr(rabbitmq.url),
        celery_queue=f"metrics-{tmp_path.name[-20:]}".replace("_", "-"),
        metrics_port=port,
    )
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    env = {
        **os.environ,
        "PANCREAS_AI_DATA_DIR": str(settings.data_dir),
        "PANCREAS_AI_DATABASE_URL": str(settings.database_url),
        "PANCREAS_AI_WORKER_MODE": "celery",
        "PANCREAS_AI_BROKER_URL": rabbitmq.url,
        "PANCREAS_AI_CELERY_QUEUE": settings.celery_queue,
        "PANCREAS_AI_METRICS_PORT": str(port),
    }
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.pancreas_node.celery_metrics_worker"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    publisher = JobPublisher(settings, database)
    try:
        wait_for(lambda: bool(_scrape_or_empty(port)), timeout_s=60.0)
        job_id = enqueue_job(database, "1.2.3", 1, "e" * 64).job.id
        publisher.publish(job_id)

        def done() -> bool:
            found = samples(_scrape_or_empty(port))
            key = ("pancreas_ai_jobs_finished_total", frozenset({("outcome", "done")}))
            return found.get(key, 0.0) >= 1

        wait_for(done, timeout_s=60.0)
        found = samples(scrape(port))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        publisher.stop()
        database.dispose()
    stage = "pancreas_ai_analysis_stage_seconds"
    assert value(found, f"{stage}_bucket", stage="inference", le="10.0") == 1
    assert value(found, f"{stage}_bucket", stage="inference", le="5.0") == 0
    assert value(found, "pancreas_ai_analysis_seconds_sum") == pytest.approx(7.6)
    assert value(found, "pancreas_ai_instances_received_total") == 0  # no SCP in a worker
    assert worker.returncode is not None
    with pytest.raises(urllib.error.URLError):
        scrape(port)
