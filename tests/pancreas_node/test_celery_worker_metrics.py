"""A distributed worker's own metrics (issue 27): what ``pancreas-node worker`` counts.

:func:`pancreas_node.celery_worker.worker_app` with a :class:`dicom_node.NodeMetrics` runs a job
named by a message (here called directly: the broker is never contacted) and its first delivery;
the process' metrics then hold the outcome, the stage timings and the delivery attempt.
"""

from __future__ import annotations

from pathlib import Path

from db import ClaimStatus, JobInfo, NodeDatabase, enqueue_job
from dicom_node import NodeMetrics
from dicom_node.worker import JobOutcome
from pancreas_node.celery_worker import worker_app
from tests.conftest import free_port
from tests.dicom_node.conftest import node_settings
from tests.dicom_node.fake_results import fake_outcome
from tests.dicom_node.test_metrics import samples, value


def _runner(job: JobInfo) -> JobOutcome:
    timings = {"read": 0.5, "inference": 12.0, "total": 13.0}
    return fake_outcome(f"/nonexistent/{job.id}.json", job.bundle_sha256, timings)


def test_worker_process_counts_its_jobs_stages_and_deliveries(tmp_path: Path) -> None:
    settings = node_settings(
        tmp_path,
        broker_url="amqp://guest:guest@127.0.0.1:1//",  # never contacted here
        destinations=[{"ae_title": "NOBODY", "host": "127.0.0.1", "port": free_port()}],
    )
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    metrics = NodeMetrics()
    try:
        _, worker = worker_app(settings, _runner, database, metrics=metrics)
        job_id = enqueue_job(database, "1.2.3", 1, "bundle-a").job.id
        assert worker.run_job(job_id) is ClaimStatus.CLAIMED
    finally:
        database.dispose()
    found = samples(metrics.exposition().decode())
    assert value(found, "pancreas_ai_jobs_finished_total", outcome="done") == 1
    stage = "pancreas_ai_analysis_stage_seconds"
    assert value(found, f"{stage}_bucket", stage="inference", le="20.0") == 1
    assert value(found, f"{stage}_bucket", stage="inference", le="10.0") == 0
    assert value(found, "pancreas_ai_analysis_seconds_count") == 1
    assert value(found, "pancreas_ai_delivery_attempts_total", destination_kind="c-store") == 1
    # The queue gauge is the node's: a worker process does not read the queue.
    assert not [k for k in found if k[0] == "pancreas_ai_jobs"]
