"""A ``pancreas-node worker`` with a fake analysis, for the distributed-queue tests (issue 27).

Run as ``python -m tests.pancreas_node.celery_fake_worker`` with the node's ``PANCREAS_AI_*``
settings and ``FAKE_MARKS`` (a folder) and ``FAKE_HOLD_S``. Each run writes
``<job id>.<attempt>.<pid>`` into ``FAKE_MARKS`` as it starts, then holds its first attempt of
a job ``FAKE_HOLD_S`` seconds (long enough to be killed mid-job) and any later attempt briefly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from db import JobInfo, NodeDatabase
from dicom_node.worker import JobOutcome
from pancreas_contracts import load_settings
from pancreas_node.celery_worker import run_worker
from tests.dicom_node.fake_results import fake_outcome


class HoldingRunner:
    """Marks each run's start, holds, returns a result."""

    def __init__(self, marks: Path, hold_s: float) -> None:
        self._marks = marks
        self._hold_s = hold_s

    def __call__(self, job: JobInfo) -> JobOutcome:
        (self._marks / f"{job.id}.{job.attempts}.{os.getpid()}").write_text(
            f"{time.time():.3f}\n", encoding="ascii"
        )
        time.sleep(self._hold_s if job.attempts == 1 else 0.2)
        return fake_outcome(self._marks / f"{job.id}.json", job.bundle_sha256)


def main() -> None:
    """Run one worker until SIGTERM."""
    settings = load_settings()
    database = NodeDatabase(settings.resolved_database_url)
    runner = HoldingRunner(Path(os.environ["FAKE_MARKS"]), float(os.environ["FAKE_HOLD_S"]))
    run_worker(settings, runner, database, deliver=False)


if __name__ == "__main__":
    main()
