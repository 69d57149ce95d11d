"""A distributed analysis worker (issue 27): the ``analyse`` task bound to a job runner.

``pancreas-node worker`` runs one :func:`run_worker` process per GPU or CPU slot, each taking
one message at a time from the broker (:mod:`dicom_node.job_queue`). The task runs the job with
the same :class:`dicom_node.worker.Worker` machinery as the embedded mode (lease, heartbeat,
retry schedule, first delivery), through :meth:`~dicom_node.worker.Worker.run_job`, which
decides with :func:`db.claim_job` whether the message's job is this worker's to run.

Delivery: the worker that stored a result sends it at once, under the job's delivery lease
(:func:`db.claim_delivery`), exactly as the embedded worker does; the node's delivery loop
retries what failed. The lease is what keeps a result from being sent twice, whoever sends it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence

from celery import Celery

from db import JobInfo, NodeDatabase
from dicom_node import NodeMetrics, start_metrics_server
from dicom_node.dispatch import Dispatcher
from dicom_node.job_queue import ANALYSE_TASK, celery_app
from dicom_node.worker import JobOutcome, JobRunner, Worker
from pancreas_contracts import Settings

__all__ = ["default_worker_id", "run_worker", "worker_app"]

_log = logging.getLogger(__name__)


def default_worker_id() -> str:
    """``<host>/worker/<pid>/<random>``: names this process in the leases it holds."""
    return f"{socket.gethostname()[:40]}/worker/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def worker_app(
    settings: Settings,
    runner: JobRunner,
    database: NodeDatabase,
    *,
    worker_id: str | None = None,
    deliver: bool = True,
    metrics: NodeMetrics | None = None,
) -> tuple[Celery, Worker]:
    """The Celery application with its ``analyse(job_id)`` task, and the worker it runs jobs on.

    Parameters
    ----------
    settings
        Broker, queue, ``job_lease_s`` and the destinations.
    runner
        Runs one job (the analysis).
    database
        The node database (the record of truth; PostgreSQL when workers run on several
        machines).
    worker_id
        Lease owner name (default: :func:`default_worker_id`).
    deliver
        Whether a stored result is sent to the destinations at once (else the node's delivery
        loop sends it).
    metrics
        This process' metrics (issue 27): job outcomes, stage timings and delivery attempts.
    """
    owner = worker_id or default_worker_id()
    dispatcher = (
        Dispatcher(settings, database, lease_owner=f"{owner}/dispatch", metrics=metrics)
        if deliver
        else None
    )

    def deliver_now(job: JobInfo, outcome: JobOutcome) -> None:
        if dispatcher is not None:
            dispatcher.deliver_first(job.id, outcome.files)

    worker = Worker(
        database,
        runner,
        on_done=deliver_now,
        lease_s=settings.job_lease_s,
        worker_id=owner,
        metrics=metrics,
    )
    app = celery_app(settings)

    @app.task(name=ANALYSE_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def analyse(job_id: str) -> str:
        """Run job ``job_id`` if it is this worker's to run; the message is acked on return."""
        return str(worker.run_job(job_id).value)

    del analyse  # registered with the application; reached through the broker only
    return app, worker


def worker_argv(settings: Settings, name: str) -> Sequence[str]:
    """The ``celery worker`` arguments: one process, one job at a time, no chatter.

    The solo pool runs the task in the worker's own process, so ``kill -9`` of that process
    ends the job and closes its broker connection at once (the message goes back to the
    queue); gossip, mingle and events are cluster chatter this queue does not use.
    """
    return [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        f"--queues={settings.celery_queue}",
        f"--hostname={name}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--loglevel={settings.log_level}",
    ]


def run_worker(
    settings: Settings,
    runner: JobRunner,
    database: NodeDatabase,
    *,
    name: str | None = None,
    deliver: bool = True,
    metrics: NodeMetrics | None = None,
) -> None:
    """Consume ``analyse`` messages until the process is told to stop (SIGTERM: warm shutdown).

    Parameters
    ----------
    settings, runner, database, deliver, metrics
        As for :func:`worker_app`; ``metrics`` is served on ``settings.metrics_port`` (each
        worker process needs its own port) when that is set.
    name
        The Celery node name (default ``pancreas@<host>-<pid>``).
    """
    worker_id = default_worker_id()
    app, _ = worker_app(
        settings, runner, database, worker_id=worker_id, deliver=deliver, metrics=metrics
    )
    node_name = name or f"pancreas@{socket.gethostname()[:40]}-{os.getpid()}"
    server = (
        start_metrics_server(metrics, settings.metrics_bind_address, settings.metrics_port)
        if metrics is not None and settings.metrics_port
        else None
    )
    _log.info("worker %s consuming queue %s", worker_id, settings.celery_queue)
    try:
        app.worker_main(list(worker_argv(settings, node_name)))
    finally:
        if server is not None:
            server.stop()
