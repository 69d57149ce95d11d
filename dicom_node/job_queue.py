"""The distributed job queue (issue 27): Celery over RabbitMQ, the database the record of truth.

With ``worker_mode = "celery"`` the node runs no analysis itself. Its :class:`JobPublisher`
sends one ``analyse(job_id)`` message per job a worker could claim; ``pancreas-node worker``
processes (one per GPU or CPU slot, on this machine or others) consume them. A message only
names a job: what it means when it arrives is decided by :func:`db.claim_job`, so a message
that is duplicated, early or late does no harm and the broker need not be exactly-once.

The publisher does not hook into series assembly: it sweeps the database (a small indexed
query, twice a second) for due queued jobs, due retries and running jobs whose lease is long
stale, and publishes each once per attempt. A node that crashes between the job's commit and
the publish therefore loses nothing (the next start publishes what is queued), a scheduled
retry is published when it is due, and a message the broker lost is replaced.

Delivery guarantees come from the Celery settings of :func:`celery_app`: a message is
acknowledged after the task returns (``acks_late``), a worker holds one message at a time
(prefetch 1), so a worker killed mid-job returns its message to the queue at once (its
connection closes) and another worker takes the job over as its lease expires.

This module does not import the analysis: the task body is bound by ``pancreas_node``.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from celery import Celery
from kombu.exceptions import KombuError

from db import NodeDatabase, publishable_jobs
from pancreas_contracts import Settings

__all__ = ["ANALYSE_TASK", "JobPublisher", "celery_app"]

#: The task a message names; its one argument is the job id.
ANALYSE_TASK = "pancreas_ai.analyse"

_log = logging.getLogger(__name__)


def celery_app(settings: Settings) -> Celery:
    """A Celery application for ``settings``' broker and queue (no result backend).

    Raises
    ------
    ValueError
        If ``settings.broker_url`` is not set.
    """
    if settings.broker_url is None:
        raise ValueError("the distributed mode needs broker_url (PANCREAS_AI_BROKER_URL)")
    app = Celery("pancreas_ai", broker=settings.broker_url.get_secret_value(), set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        # Acknowledge when the task has returned, not when it starts: a worker that dies
        # mid-job leaves its message unacknowledged, and the broker hands it to another.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # The task records its own failures in the database (retry schedule included); a
        # message whose task raised anyway is dropped rather than looping, and the node's
        # sweep publishes the job again when a retry is due.
        task_acks_on_failure_or_timeout=True,
        # One message at a time per worker: a busy worker never sits on a job another could run.
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # The analysis blocks a solo worker's only thread for minutes, so it could not answer
        # AMQP heartbeats; a dead worker's connection is closed by its kernel (kill -9) or its
        # lease expires (a machine that vanished): the database lease covers what heartbeats would.
        broker_heartbeat=0,
        broker_connection_retry_on_startup=True,
        # Publisher confirms: send_task returns once the broker has the message.
        broker_transport_options={"confirm_publish": True},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        enable_utc=True,
    )
    return app


class JobPublisher:
    """Publishes ``analyse(job_id)`` for every job a worker could claim, once per attempt.

    Parameters
    ----------
    settings
        The node's settings (broker, queue, ``job_lease_s``).
    database
        The node database.
    app
        The Celery application (default: :func:`celery_app` of ``settings``).
    """

    def __init__(
        self, settings: Settings, database: NodeDatabase, *, app: Celery | None = None
    ) -> None:
        self._db = database
        self._app = app if app is not None else celery_app(settings)
        self._queue = settings.celery_queue
        # A running job's own message is redelivered when its worker dies; the sweep only
        # replaces it once the lease has been expired for a whole lease more.
        self._stale_after_s = settings.job_lease_s
        self._published: dict[str, int] = {}  # job id -> its attempts when last published
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, job_id: str) -> None:
        """Send one ``analyse(job_id)`` message (persistent, confirmed by the broker).

        Raises
        ------
        kombu.exceptions.KombuError, OSError
            If the broker cannot be reached.
        """
        self._app.send_task(ANALYSE_TASK, args=[job_id], queue=self._queue)

    def sweep(self, now: datetime | None = None) -> int:
        """Publish the claimable jobs not yet published at their current attempt; count them.

        Stops at the first publish that fails (the broker is down): the jobs stay in the
        database and the next sweep tries again.
        """
        jobs = publishable_jobs(self._db, stale_after_s=self._stale_after_s, now=now)
        # Only jobs still claimable are remembered, so the memory stays as small as the queue.
        remembered: dict[str, int] = {}
        sent = 0
        for index, job in enumerate(jobs):
            if self._published.get(job.job_id) == job.attempts:
                remembered[job.job_id] = job.attempts
                continue
            try:
                self.publish(job.job_id)
            except (KombuError, OSError) as exc:
                _log.error("job %s: publish failed (%s)", job.job_id, type(exc).__name__)
                for later in jobs[index:]:  # keep what was known of the rest
                    if later.job_id in self._published:
                        remembered[later.job_id] = self._published[later.job_id]
                break
            remembered[job.job_id] = job.attempts
            sent += 1
            _log.info("job %s published (attempt %d next)", job.job_id, job.attempts + 1)
        self._published = remembered
        return sent

    def start(self, interval_s: float = 0.5) -> None:
        """Sweep every ``interval_s`` seconds in a background thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="job-publisher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the sweep and close the broker connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        self._app.close()

    def _run(self, interval_s: float) -> None:
        while True:
            try:
                self.sweep()
            # Supervision boundary: a database or broker outage must not end the sweep.
            except Exception as exc:  # noqa: BLE001
                _log.error("job publisher: %s", type(exc).__name__)
                _log.debug("job publisher traceback", exc_info=exc)
            if self._stop.wait(interval_s):
                return
