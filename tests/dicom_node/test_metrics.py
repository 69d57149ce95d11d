"""The node's Prometheus metrics (issue 27): NodeMetrics alone, then a real node scraped over HTTP.

The integration test starts a real :class:`Node` with ``metrics_port`` on a free loopback port,
sends a phantom CT series with DCMTK ``storescu`` and one undecodable instance, lets a job run
(a runner that returns a result with stage timings) and a delivery fail (nobody listens at the
destination), then reads ``http://127.0.0.1:<port>/metrics`` the way Prometheus does.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from db import JobInfo, NodeDatabase, enqueue_job, list_recent_jobs
from dicom_node import NodeMetrics, start_metrics_server
from dicom_node.metrics import ANALYSIS_BUCKETS_S
from dicom_node.node import Node
from dicom_node.routing import RuleAction
from dicom_node.statuses import StoreStatus
from dicom_node.worker import JobOutcome
from pancreas_contracts import JobState
from tests.conftest import free_port
from tests.dicom_node.conftest import PhantomSeries, node_settings
from tests.dicom_node.fake_results import fake_outcome
from tests.dicom_node.test_scp import read, storescu, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    """One sample's value; a missing sample fails with the names that do exist."""
    key = (name, frozenset(labels.items()))
    assert key in found, f"{name}{labels} not exposed; have {sorted({k[0] for k in found})}"
    return found[key]


def scrape(port: int) -> str:
    """``GET /metrics`` as Prometheus does."""
    # No proxy from the environment for a loopback address.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode("utf-8"))


# --- NodeMetrics on its own ---------------------------------------------------------------


def test_metrics_live_in_their_own_registry() -> None:
    metrics = NodeMetrics(build_version="9.9.9")
    metrics.instance_received(StoreStatus.SUCCESS)
    default = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not [name for name in default if name.startswith("pancreas_ai")]
    found = samples(metrics.exposition().decode())
    assert value(found, "pancreas_ai_build_info", version="9.9.9") == 1.0
    # Two instances side by side count apart (no shared global state).
    other = NodeMetrics()
    found_other = samples(other.exposition().decode())
    assert value(found_other, "pancreas_ai_instances_received_total") == 0.0


def test_intake_counts_every_answer_and_each_refusal_by_status_name() -> None:
    metrics = NodeMetrics()
    for status in (StoreStatus.SUCCESS, StoreStatus.CANNOT_PARSE, StoreStatus.CANNOT_PARSE):
        metrics.instance_received(status)
    metrics.instance_received(StoreStatus.DUPLICATE_SOP_INSTANCE)
    found = samples(metrics.exposition().decode())
    assert value(found, "pancreas_ai_instances_received_total") == 4.0
    assert value(found, "pancreas_ai_instances_rejected_total", reason="cannot_parse") == 2.0
    assert (
        value(found, "pancreas_ai_instances_rejected_total", reason="duplicate_sop_instance") == 1.0
    )
    # Every refusal reason is exposed from the start (zeros), success never is one.
    reasons = {
        dict(labels)["reason"]
        for name, labels in found
        if name == "pancreas_ai_instances_rejected_total"
    }
    assert reasons == {s.name.lower() for s in StoreStatus if s is not StoreStatus.SUCCESS}


def test_stage_timings_fill_histograms_and_total_goes_to_the_analysis_histogram() -> None:
    metrics = NodeMetrics()
    metrics.job_finished("done", {"read": 0.2, "inference": 3.0, "total": 4.0})
    metrics.job_finished("done", {"read": 0.4, "Odd Stage!": 1.0, "write_sr": -1.0})
    metrics.job_finished("failed", {})
    found = samples(metrics.exposition().decode())
    stage = "pancreas_ai_analysis_stage_seconds"
    assert value(found, f"{stage}_count", stage="read") == 2.0
    assert value(found, f"{stage}_sum", stage="read") == pytest.approx(0.6)
    assert value(found, f"{stage}_bucket", stage="read", le="0.25") == 1.0
    assert value(found, f"{stage}_bucket", stage="inference", le="2.5") == 0.0
    assert value(found, f"{stage}_bucket", stage="inference", le="5.0") == 1.0
    # A key that is no code name is filed as "other"; a negative timing is dropped.
    assert value(found, f"{stage}_count", stage="other") == 1.0
    assert ("pancreas_ai_analysis_stage_seconds_count", frozenset({("stage", "write_sr")})) not in (
        found
    )
    assert ("pancreas_ai_analysis_stage_seconds_count", frozenset({("stage", "total")})) not in (
        found
    )
    assert value(found, "pancreas_ai_analysis_seconds_count") == 1.0
    assert value(found, "pancreas_ai_analysis_seconds_sum") == 4.0
    assert value(found, "pancreas_ai_jobs_finished_total", outcome="done") == 2.0
    assert value(found, "pancreas_ai_jobs_finished_total", outcome="failed") == 1.0
    assert value(found, "pancreas_ai_jobs_finished_total", outcome="retry") == 0.0
    assert ANALYSIS_BUCKETS_S[0] == 0.05 and 120.0 in ANALYSIS_BUCKETS_S


def test_routing_delivery_and_registry_counters() -> None:
    metrics = NodeMetrics()
    metrics.series_routed(RuleAction.ANALYZE)
    metrics.series_routed(RuleAction.IGNORE)
    metrics.series_routed(RuleAction.IGNORE)
    metrics.delivery_attempt("c-store")
    metrics.delivery_attempt("c-store", "connection-failed")
    metrics.delivery_attempt("stow-rs", "http-error")
    metrics.registry_lookup("unreachable")
    metrics.registry_lookup("1.2.840.99999.1 Patient^Name")  # never a label value
    found = samples(metrics.exposition().decode())
    assert value(found, "pancreas_ai_series_routed_total", decision="analyze") == 1.0
    assert value(found, "pancreas_ai_series_routed_total", decision="ignore") == 2.0
    assert value(found, "pancreas_ai_series_routed_total", decision="assembly_failed") == 0.0
    assert value(found, "pancreas_ai_delivery_attempts_total", destination_kind="c-store") == 2.0
    assert value(found, "pancreas_ai_delivery_attempts_total", destination_kind="stow-rs") == 1.0
    failures = "pancreas_ai_delivery_failures_total"
    assert value(found, failures, destination_kind="c-store", reason="connection-failed") == 1.0
    assert value(found, failures, destination_kind="stow-rs", reason="http-error") == 1.0
    assert value(found, "pancreas_ai_registry_lookups_total", outcome="unreachable") == 1.0
    assert value(found, "pancreas_ai_registry_lookups_total", outcome="other") == 1.0
    assert value(found, "pancreas_ai_registry_lookups_total", outcome="not_configured") == 0.0
    assert "1.2.840.99999" not in metrics.exposition().decode()


def test_job_gauge_reads_the_database_at_scrape_time(node_db: NodeDatabase) -> None:
    metrics = NodeMetrics()
    assert not [k for k in samples(metrics.exposition().decode()) if k[0] == "pancreas_ai_jobs"]
    metrics.watch_queue(node_db)
    found = samples(metrics.exposition().decode())
    assert {dict(k[1])["state"] for k in found if k[0] == "pancreas_ai_jobs"} == {
        s.value for s in JobState
    }
    assert value(found, "pancreas_ai_jobs", state="queued") == 0.0
    # A job queued by anyone (another process, here the test) shows at the next scrape.
    enqueue_job(node_db, "1.2.3", 1, "bundle-a")
    enqueue_job(node_db, "1.2.4", 1, "bundle-a")
    found = samples(metrics.exposition().decode())
    assert value(found, "pancreas_ai_jobs", state="queued") == 2.0
    assert value(found, "pancreas_ai_database_up") == 1.0


def test_unreadable_database_is_reported_not_a_failed_scrape(tmp_path: Path) -> None:
    empty = NodeDatabase(f"sqlite:///{tmp_path / 'no-tables.db'}")  # never migrated
    try:
        metrics = NodeMetrics(empty)
        found = samples(metrics.exposition().decode())
        assert value(found, "pancreas_ai_database_up") == 0.0
        assert not [k for k in found if k[0] == "pancreas_ai_jobs"]
    finally:
        empty.dispose()


def test_family_names_cover_every_exposed_series(node_db: NodeDatabase) -> None:
    metrics = NodeMetrics(node_db)
    metrics.job_finished("done", {"read": 1.0, "total": 1.0})
    metrics.delivery_attempt("c-store", "connection-failed")
    exposed = {name for name, _ in samples(metrics.exposition().decode())}
    assert exposed <= metrics.family_names()
    # Without a database the queue gauge is still a known name (the dashboard check uses it).
    assert "pancreas_ai_jobs" in NodeMetrics().family_names()
    assert "pancreas_ai_instances_received_total" in NodeMetrics().family_names()


def test_server_serves_metrics_and_stops() -> None:
    metrics = NodeMetrics()
    metrics.instance_received(StoreStatus.SUCCESS)
    server = start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        found = samples(scrape(server.port))
        assert value(found, "pancreas_ai_instances_received_total") == 1.0
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(server.port)


# --- a real node, scraped over HTTP -------------------------------------------------------


class _TimedRunner:
    """Completes every job with a result that carries stage timings and no files."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp = tmp_path

    def __call__(self, job: JobInfo) -> JobOutcome:
        timings = {"read": 0.12, "localise": 0.3, "inference": 1.5, "write_sr": 0.07, "total": 2.1}
        return fake_outcome(self._tmp / f"{job.id}.json", "bundle-a", timings)


def _undecodable(ct_series: PhantomSeries, out: Path) -> Path:
    ds = read(ct_series.files[0])
    del ds.BitsStored  # Image Pixel module incomplete: PIXEL_MODULE_INVALID
    path = out / "undecodable.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.integration
def test_node_serves_metrics_of_a_series_it_received(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    nobody = free_port()  # the destination: nobody listens there, so delivery fails
    settings = node_settings(
        tmp_path,
        metrics_port=free_port(),
        destinations=[{"ae_title": "NOBODY", "host": "127.0.0.1", "port": nobody}],
        acse_timeout_s=5.0,
    )
    bad = _undecodable(ct_series, tmp_path)
    with Node(settings, _TimedRunner(tmp_path)) as node:
        assert node.metrics_port == settings.metrics_port
        storescu(node.scp.port, bad)  # refused; storescu's exit status is not the point
        assert storescu(node.scp.port, *ct_series.files).returncode == 0

        def delivery_tried() -> bool:
            found = samples(scrape(settings.metrics_port or 0))
            attempts = "pancreas_ai_delivery_attempts_total"
            return value(found, attempts, destination_kind="c-store") >= 1.0

        wait_for(delivery_tried, timeout_s=60.0)
        text = scrape(settings.metrics_port or 0)
        found = samples(text)
        jobs = list_recent_jobs(node.database)
    n = len(ct_series.files)
    assert value(found, "pancreas_ai_instances_received_total") == n + 1
    assert value(found, "pancreas_ai_instances_rejected_total", reason="pixel_module_invalid") == 1
    assert value(found, "pancreas_ai_series_routed_total", decision="analyze") == 1
    assert value(found, "pancreas_ai_jobs_finished_total", outcome="done") == 1
    stage = "pancreas_ai_analysis_stage_seconds"
    assert value(found, f"{stage}_count", stage="inference") == 1
    assert value(found, f"{stage}_bucket", stage="inference", le="2.5") == 1
    assert value(found, f"{stage}_bucket", stage="inference", le="1.0") == 0
    assert value(found, "pancreas_ai_analysis_seconds_sum") == pytest.approx(2.1)
    failures = "pancreas_ai_delivery_failures_total"
    assert value(found, failures, destination_kind="c-store", reason="nothing-sendable") >= 1
    # The job gauge is the database's count at the scrape: one job, done (not delivered).
    assert [j.state for j in jobs] == [JobState.DONE]
    assert value(found, "pancreas_ai_jobs", state="done") == 1
    assert value(found, "pancreas_ai_jobs", state="queued") == 0
    assert value(found, "pancreas_ai_database_up") == 1
    # No identifier of what was received appears in any label or value.
    for uid in (
        ct_series.StudyInstanceUID,
        ct_series.SeriesInstanceUID,
        *ct_series.SOPInstanceUIDs,
    ):
        assert uid not in text
    # Stopped with the node.
    with pytest.raises(urllib.error.URLError):
        scrape(settings.metrics_port or 0)


def test_metrics_are_off_unless_a_port_is_set(tmp_path: Path) -> None:
    with Node(node_settings(tmp_path)) as node:
        assert node.metrics_port is None
    with Node(node_settings(tmp_path / "zero", metrics_port=0)) as node:
        assert node.metrics_port is None


def test_a_busy_metrics_port_is_named(tmp_path: Path) -> None:
    metrics = NodeMetrics()
    server = start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        node = Node(node_settings(tmp_path, metrics_port=server.port))
        try:
            with pytest.raises(OSError, match=f"metrics on 127.0.0.1:{server.port}"):
                node.start()
            # The SCP was never started: nothing answers on the DICOM port.
            with (
                pytest.raises(OSError),
                socket.create_connection(("127.0.0.1", node.settings.port), timeout=5),
            ):
                pass
        finally:
            node.stop()
    finally:
        server.stop()
