"""The worker loop: take a queued job, run it, record the outcome.

The worker is the only place that holds all rooms together (ARCHITECTURE.md): it takes a job
from ``db``, hands it to a :class:`JobRunner` (the analysis, which asks the registry and calls
``inference``), and stores the result through ``db``. It never runs on an association thread.
A running job's lease is renewed by a heartbeat; a job whose worker died (``kill -9``) is
re-queued when its lease expires, so no job is lost (or at once when the same node restarts:
the node names its workers after itself, see :func:`db.reclaim_node_leases`).

The loop is supervised: an unexpected error in one job fails that job alone (its reason names
the error), an error after the job was stored (the first delivery) is logged, and the loop goes
on; each is one log line with the job id, the traceback only at DEBUG.

Two ways in (issue 27): the embedded node's thread polls for the oldest due job
(:meth:`Worker.run_once`); a distributed worker is handed a job id by a broker message
(:meth:`Worker.run_job`, see :mod:`dicom_node.job_queue`). Both run the claimed job the same
way (:meth:`Worker.run_claimed`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from db import (
    ClaimStatus,
    JobInfo,
    LeaseLostError,
    NewResult,
    NodeDatabase,
    backoff_delay,
    claim_job,
    claim_next_job,
    complete_job,
    fail_job,
    heartbeat_job,
    requeue_expired_leases,
)
from dicom_node.metrics import NodeMetrics
from pancreas_contracts.job_states import failure_reason

__all__ = ["JobFailedError", "JobOutcome", "JobRunner", "Worker"]

_log = logging.getLogger(__name__)


class JobFailedError(Exception):
    """A job could not be run; ``retryable`` says whether trying again may help.

    The message is stored with the job: it must not contain patient identifiers or values.
    ``stage`` names where it failed (``series``, ``registry``, ``bundle``, ``analysis``,
    ``output``); the stored reason reads ``failed at <stage> after N attempt(s): <reason>``.
    """

    def __init__(self, reason: str, *, retryable: bool = True, stage: str = "analysis") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.stage = stage


@dataclass(frozen=True)
class JobOutcome:
    """What a completed run produced: the stored result and the DICOM files to deliver.

    A refused CT has no ``result``: ``refusal`` holds the job's reason (``refused: ...``,
    :data:`pancreas_contracts.status.REFUSED_PREFIX`) and ``files`` the refusal document; the
    job is done (and delivered) all the same.
    """

    result: NewResult | None
    files: tuple[Path, ...] = field(default_factory=tuple)
    refusal: str | None = None


class JobRunner(Protocol):
    """Runs one job (the analysis); raises :class:`JobFailedError` on an expected failure."""

    def __call__(self, job: JobInfo) -> JobOutcome: ...


class Worker:
    """Claims and runs jobs one at a time.

    Parameters
    ----------
    database
        The node database.
    runner
        Runs a claimed job.
    on_done
        Called with the job and its outcome after the job is stored as done (e.g. dispatch).
    lease_s
        Lease length; the heartbeat renews it every third of that.
    max_attempts
        Attempts before a retryable failure becomes final.
    clock
        Returns the current UTC time (injectable for tests).
    worker_id
        Names the worker in the leases it holds; default: ``worker-`` and a random suffix.
    metrics
        Counts each stored outcome and observes the result's stage timings (issue 27);
        ``None``: no counting.
    """

    def __init__(
        self,
        database: NodeDatabase,
        runner: JobRunner,
        *,
        on_done: Callable[[JobInfo, JobOutcome], None] | None = None,
        lease_s: float = 300.0,
        max_attempts: int = 3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        worker_id: str | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._db = database
        self._runner = runner
        self._on_done = on_done
        self._lease_s = lease_s
        self._max_attempts = max_attempts
        self._clock = clock
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> JobInfo | None:
        """Re-queue expired leases, then claim and run at most one job; return it."""
        requeue_expired_leases(self._db, now=self._clock())
        job = claim_next_job(self._db, self.worker_id, self._lease_s, now=self._clock())
        if job is None:
            return None
        return self.run_claimed(job)

    def run_job(self, job_id: str) -> ClaimStatus:
        """Claim job ``job_id`` (a broker message named it) and run it if it is due.

        The message may be a duplicate, early or late (:func:`db.claim_job`). When another
        worker holds the job's lease, this waits while the lease runs out: a holder that renews
        it is alive (``BUSY`` is returned at its first heartbeat, its own message covers the
        job), a holder that does not is dead and the job is taken over as its lease expires.

        Returns
        -------
        ClaimStatus
            ``CLAIMED`` when this worker ran the job (whatever the run's outcome), else why not.
        """
        interval = max(self._lease_s / 3.0, 0.05)
        give_up = time.monotonic() + self._lease_s + 2 * interval
        seen_beat: datetime | None = None
        while True:
            claim = claim_job(self._db, job_id, self.worker_id, self._lease_s, now=self._clock())
            if claim.status is ClaimStatus.CLAIMED and claim.job is not None:
                self.run_claimed(claim.job)
                return claim.status
            if claim.status is not ClaimStatus.BUSY or claim.job is None:
                _log.info("job %s not run here: %s", job_id, claim.status.value)
                return claim.status
            beat = claim.job.heartbeat_at
            if (seen_beat is not None and beat != seen_beat) or time.monotonic() > give_up:
                _log.info("job %s is running on a live worker", job_id)
                return claim.status
            seen_beat = beat
            expires = claim.job.lease_expires_at
            until_expiry = (
                interval if expires is None else (expires - self._clock()).total_seconds()
            )
            if self._stop.wait(min(interval, max(until_expiry, 0.0) + 0.05)):
                return claim.status

    def run_claimed(self, job: JobInfo) -> JobInfo | None:
        """Run a job this worker has claimed, with its heartbeat, and store the outcome.

        Returns
        -------
        JobInfo or None
            The job as stored (done, or failed with or without a retry), ``None`` when the
            lease was lost before the outcome could be stored (the new holder redoes it).
        """
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, beat_stop), daemon=True)
        beat.start()
        try:
            outcome = self._runner(job)
        except JobFailedError as exc:
            return self._fail(job, exc.reason, exc.retryable, exc.stage)
        # Supervision boundary: whatever the analysis raises fails this job alone.
        except Exception as exc:  # noqa: BLE001
            _log.error("job %s crashed: %s", job.id, type(exc).__name__)
            _log.debug("job %s traceback", job.id, exc_info=exc)
            return self._fail(
                job, f"analysis error: {type(exc).__name__}", retryable=True, stage="analysis"
            )
        finally:
            beat_stop.set()
            beat.join(timeout=10)
        try:
            done = complete_job(
                self._db,
                job.id,
                self.worker_id,
                outcome.result,
                reason=outcome.refusal,
                now=self._clock(),
            )
        except LeaseLostError:
            _log.warning(
                "job %s: lease lost before completion; another worker will redo it", job.id
            )
            return None
        if self._metrics is not None:
            timings = {} if outcome.result is None else outcome.result.timings_s
            self._metrics.job_finished("refused" if outcome.refusal else "done", timings)
        if self._on_done is not None:
            try:
                self._on_done(done, outcome)
            # Supervision boundary: the job is stored; the delivery loop retries what failed.
            except Exception as exc:  # noqa: BLE001
                _log.error("job %s: after-completion step failed: %s", job.id, type(exc).__name__)
                _log.debug("job %s traceback", job.id, exc_info=exc)
        return done

    def _fail(self, job: JobInfo, reason: str, retryable: bool, stage: str) -> JobInfo | None:
        retry_at = None
        if retryable and job.attempts < self._max_attempts:
            retry_at = self._clock() + backoff_delay(job.attempts)
        if retry_at is None:
            stored = failure_reason(stage, job.attempts, reason)
        else:
            stored = (
                f"failed at {stage} (attempt {job.attempts} of {self._max_attempts}, "
                f"retry scheduled): {reason}"
            )
        try:
            failed = fail_job(
                self._db,
                job.id,
                stored,
                retry_at=retry_at,
                worker_id=self.worker_id,
                now=self._clock(),
            )
        except LeaseLostError:
            _log.warning("job %s: lease lost before recording the failure", job.id)
            return None
        if self._metrics is not None:
            self._metrics.job_finished("failed" if retry_at is None else "retry", {})
        return failed

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        interval = max(self._lease_s / 3.0, 0.05)
        while not stop.wait(interval):
            try:
                if not heartbeat_job(
                    self._db, job_id, self.worker_id, self._lease_s, now=self._clock()
                ):
                    return
            except SQLAlchemyError as exc:
                _log.warning("job %s heartbeat failed (%s)", job_id, type(exc).__name__)

    def start(self, poll_s: float = 1.0) -> None:
        """Run jobs in a background thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(poll_s,), name=self.worker_id, daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the loop to stop after the current job and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self, poll_s: float) -> None:
        while not self._stop.is_set():
            try:
                job = self.run_once()
            except SQLAlchemyError as exc:
                _log.error("worker poll failed: database error (%s)", type(exc).__name__)
                job = None
            # Supervision boundary: the loop outlives any one poll's unexpected error.
            except Exception as exc:  # noqa: BLE001
                _log.error("worker poll failed: %s", type(exc).__name__)
                _log.debug("worker poll traceback", exc_info=exc)
                job = None
            if job is None:
                self._stop.wait(poll_s)
