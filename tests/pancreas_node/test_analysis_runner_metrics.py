"""Registry lookups and job outcomes in the node's metrics (issue 27), as ``serve`` wires them.

One :class:`dicom_node.NodeMetrics` is shared by the analysis runner (registry lookups) and the
node (everything else), as ``serve`` does. The registry is a PostgreSQL URL on a port nobody
listens on (unreachable at once); the analyzer fails with an I/O error, so the job is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from db import NodeDatabase, RegistryBridge
from dicom_node import NodeMetrics
from dicom_node.node import Node
from inference.analysis import AnalysisOutput
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.result import BundleRef
from pancreas_node.analysis_runner import AnalysisRunner
from tests.conftest import free_port
from tests.db.registry_helpers import example_config
from tests.dicom_node.conftest import make_series, node_settings
from tests.dicom_node.test_metrics import samples, value
from tests.dicom_node.test_scp import storescu, wait_for

pytestmark = pytest.mark.integration


class _DiskFullAnalyzer:
    """An analyzer whose every run meets an I/O error (a retryable job failure)."""

    @property
    def bundle_ref(self) -> BundleRef:
        raise AssertionError("not reached: nothing is refused")

    def analyze(
        self,
        series: Path | Sequence[Path],
        clinical: ClinicalVariables | None,
        *,
        out_dir: Path,
        job_id: str | None = None,
        registry_status: str = "not_configured",
        warnings: Sequence[str] = (),
        series_version: int | None = None,
    ) -> AnalysisOutput:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        """Nothing to release."""


def test_registry_lookups_and_retries_are_counted(tmp_path: Path) -> None:
    series = make_series(tmp_path / "phantom", seed=5)
    settings = node_settings(tmp_path / "node")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/registry"
    registry = RegistryBridge(example_config(url, connect_timeout_s=2, retries=0))
    metrics = NodeMetrics()
    runner_db = NodeDatabase(settings.resolved_database_url)
    runner = AnalysisRunner(runner_db, _DiskFullAnalyzer(), settings, registry, metrics=metrics)
    try:
        with Node(settings, runner, metrics=metrics) as node:
            assert node.metrics is metrics
            assert storescu(node.scp.port, *series.files).returncode == 0

            def retried() -> bool:
                found = samples(metrics.exposition().decode())
                return value(found, "pancreas_ai_jobs_finished_total", outcome="retry") >= 1

            wait_for(retried, timeout_s=60.0)
            found = samples(metrics.exposition().decode())
    finally:
        runner.close()
        runner_db.dispose()
    lookups = "pancreas_ai_registry_lookups_total"
    assert value(found, lookups, outcome="unreachable") >= 1
    assert value(found, lookups, outcome="ok") == 0
    assert value(found, "pancreas_ai_jobs_finished_total", outcome="done") == 0
    # The job waits for its retry as "failed" with a next attempt (db.fail_job).
    assert value(found, "pancreas_ai_jobs", state="failed") == 1
