"""A ``pancreas-node worker`` process with metrics and a fake analysis (issue 27 metrics tests).

Run as ``python -m tests.pancreas_node.celery_metrics_worker`` with the node's ``PANCREAS_AI_*``
settings (``PANCREAS_AI_METRICS_PORT`` among them). Each job completes at once with a result
whose stage timings are fixed, so a scrape can check them.
"""

from __future__ import annotations

from db import JobInfo, NodeDatabase
from dicom_node import NodeMetrics
from dicom_node.worker import JobOutcome
from pancreas_contracts import load_settings
from pancreas_node.celery_worker import run_worker
from tests.dicom_node.fake_results import fake_outcome

#: The stage timings every fake run reports.
TIMINGS_S = {"read": 0.3, "inference": 7.0, "write_seg": 0.2, "total": 7.6}


def _run(job: JobInfo) -> JobOutcome:
    return fake_outcome(f"/nonexistent/{job.id}.json", job.bundle_sha256, TIMINGS_S)


def main() -> None:
    """Run one worker, serving its metrics, until SIGTERM."""
    settings = load_settings()
    database = NodeDatabase(settings.resolved_database_url)
    try:
        run_worker(settings, _run, database, deliver=False, metrics=NodeMetrics())
    finally:
        database.dispose()


if __name__ == "__main__":
    main()
