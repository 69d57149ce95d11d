"""Prometheus metrics of the node (issue 27): what came in, what was decided, how long it took.

One :class:`NodeMetrics` owns its own :class:`prometheus_client.CollectorRegistry` (never the
library's process-wide default registry): ``main()`` or :class:`dicom_node.node.Node` builds it
and passes it down to the parts that record (the C-STORE handler, series assembly, dispatch,
the analysis runner, the job completion). Every part takes ``metrics=None`` to mean "record
nothing", so a part built on its own (tests, tools) needs none.

Labels never carry UIDs, AE titles, host names or patient data: each label value is one of a
small fixed set (a status name, a routing action, a job state, a stage name from the code), so
the number of time series stays bounded and a scrape never leaks identifiers.

The queue depth (``pancreas_ai_jobs{state}``) is not counted by this process: a collector reads
:func:`db.queue_counts` at scrape time, so it is right whichever process (the node, a Celery
worker) changed the jobs. The counters and histograms are this process's own since its start;
in the distributed mode each worker process serves its own ``/metrics`` (see docs/metrics.md)
and Prometheus adds them up.

:func:`start_metrics_server` serves a registry over HTTP (``GET /metrics``) in a daemon thread.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Final, Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from db import DeliveryProtocol, NodeDatabase, RegistryLookupStatus, queue_counts
from dicom_node.routing import RuleAction
from dicom_node.statuses import StoreStatus
from pancreas_contracts.job_states import JobState

__all__ = [
    "ANALYSIS_BUCKETS_S",
    "ASSEMBLY_FAILED",
    "JobOutcomeLabel",
    "MetricsServer",
    "NodeMetrics",
    "start_metrics_server",
]

_log = logging.getLogger(__name__)

#: Histogram buckets (seconds) for analysis stages and whole analyses: a stage takes from tens
#: of milliseconds (writing an SR) to minutes (inference on CPU); roughly x2 steps.
ANALYSIS_BUCKETS_S: Final[tuple[float, ...]] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

#: How a finished job ended, for ``pancreas_ai_jobs_finished_total{outcome}``: ``done`` (a
#: result stored), ``refused`` (the pipeline refused the CT; a refusal document is delivered),
#: ``failed`` (a final failure), ``retry`` (a failure with a retry scheduled).
JobOutcomeLabel = Literal["done", "refused", "failed", "retry"]

# Stage names come from the code (inference.timing), never from data; this guards the label
# set against an unexpected key all the same (bounded cardinality, no odd characters).
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_OTHER = "other"
#: The whole analysis' key in ``result.timings_s``: observed in pancreas_ai_analysis_seconds.
_TOTAL_STAGE = "total"
_JOB_OUTCOMES: frozenset[str] = frozenset({"done", "refused", "failed", "retry"})
#: The routing decision recorded for a series whose assembly raised (see series_assembly).
ASSEMBLY_FAILED: Final = "assembly_failed"


def _package_version() -> str:
    try:
        return version("pancreas-ai-node")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _label(value: str) -> str:
    """``value`` if it is a short, lower-case code name; ``other`` otherwise."""
    return value if _STAGE_NAME.match(value) else _OTHER


def _state_name(value: object) -> str:
    """A job state's or routing action's label value (``JobState.DONE`` -> ``done``)."""
    text = str(getattr(value, "value", value))
    return text if re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", text) else _OTHER


class _QueueCollector(Collector):
    """``pancreas_ai_jobs{state}`` and ``pancreas_ai_database_up``, read at scrape time.

    Reading the database at scrape time makes the gauge right across processes (a Celery
    worker's job changes show in the node's scrape) and after restarts. A database that cannot
    be read gives ``pancreas_ai_database_up 0`` and no job gauge rather than a failed scrape.
    """

    def __init__(self) -> None:
        self._database: NodeDatabase | None = None

    def watch(self, database: NodeDatabase | None) -> None:
        # One reference swap, atomic under the GIL: a scrape sees the old or the new database.
        self._database = database

    def describe(self) -> Iterable[Metric]:
        # Describing without querying: registering the collector must not touch the database.
        yield GaugeMetricFamily("pancreas_ai_jobs", _JOBS_HELP, labels=["state"])
        yield GaugeMetricFamily("pancreas_ai_database_up", _UP_HELP)

    def collect(self) -> Iterable[Metric]:
        database = self._database
        if database is None:
            return
        up = GaugeMetricFamily("pancreas_ai_database_up", _UP_HELP)
        try:
            counts = queue_counts(database)
        except SQLAlchemyError as exc:
            _log.warning("metrics: job queue not readable (%s)", type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        jobs = GaugeMetricFamily("pancreas_ai_jobs", _JOBS_HELP, labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], float(counts.get(state, 0)))
        up.add_metric([], 1.0)
        yield jobs
        yield up


_JOBS_HELP = "Jobs in the node database by state (read at scrape time)."
_UP_HELP = "1 if the node database answered the job-queue query of this scrape, else 0."


class NodeMetrics:
    """The node's metrics, in a registry of their own.

    Parameters
    ----------
    database
        The node database whose job queue ``pancreas_ai_jobs{state}`` reports; ``None`` leaves
        the queue gauge out until :meth:`watch_queue` names one.
    build_version
        The ``version`` label of ``pancreas_ai_build_info`` (default: the installed package's
        version).

    Notes
    -----
    Recording methods are thread-safe (prometheus_client's metrics lock) and cheap; callers
    record after the fact they count is durable (an instance is counted once its status is
    decided, a delivery attempt once it is recorded).
    """

    def __init__(
        self, database: NodeDatabase | None = None, *, build_version: str | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._build = Gauge(
            "pancreas_ai_build_info",
            "Always 1; the version label names the running pancreas-ai-node.",
            ["version"],
            registry=r,
        )
        self._build.labels(version=build_version or _package_version()).set(1)
        self._received = Counter(
            "pancreas_ai_instances_received",
            "C-STORE requests answered by the SCP (accepted or not).",
            registry=r,
        )
        self._rejected = Counter(
            "pancreas_ai_instances_rejected",
            "C-STORE requests answered with a failure status, by status name.",
            ["reason"],
            registry=r,
        )
        self._routed = Counter(
            "pancreas_ai_series_routed",
            "Series versions closed by series assembly, by routing decision.",
            ["decision"],
            registry=r,
        )
        self._stage = Histogram(
            "pancreas_ai_analysis_stage_seconds",
            "Wall-clock seconds of each analysis stage (result timings_s).",
            ["stage"],
            buckets=ANALYSIS_BUCKETS_S,
            registry=r,
        )
        self._analysis = Histogram(
            "pancreas_ai_analysis_seconds",
            "Wall-clock seconds of whole analyses (result timings_s total).",
            buckets=ANALYSIS_BUCKETS_S,
            registry=r,
        )
        self._finished = Counter(
            "pancreas_ai_jobs_finished",
            "Analysis jobs finished by this process, by outcome.",
            ["outcome"],
            registry=r,
        )
        self._attempts = Counter(
            "pancreas_ai_delivery_attempts",
            "Delivery attempts of result objects to one destination, by destination kind.",
            ["destination_kind"],
            registry=r,
        )
        self._failures = Counter(
            "pancreas_ai_delivery_failures",
            "Failed delivery attempts, by destination kind and attempt status.",
            ["destination_kind", "reason"],
            registry=r,
        )
        self._lookups = Counter(
            "pancreas_ai_registry_lookups",
            "Clinical registry lookups, by lookup status.",
            ["outcome"],
            registry=r,
        )
        self._queue = _QueueCollector()
        self._queue.watch(database)
        r.register(self._queue)
        # Zero series for the fixed label sets: a rate() over a series that appears only at
        # the first event misses that event, and dashboards show 0 instead of "no data".
        for status in StoreStatus:
            if status is not StoreStatus.SUCCESS:
                self._rejected.labels(reason=_status_label(status))
        for outcome in sorted(_JOB_OUTCOMES):
            self._finished.labels(outcome=outcome)
        for action in (*RuleAction, ASSEMBLY_FAILED):
            self._routed.labels(decision=_state_name(action))
        for protocol in DeliveryProtocol:
            self._attempts.labels(destination_kind=protocol.value)
        for lookup in RegistryLookupStatus:
            self._lookups.labels(outcome=lookup.value)

    def watch_queue(self, database: NodeDatabase | None) -> None:
        """Report the job queue of ``database`` from now on (``None``: stop reporting it)."""
        self._queue.watch(database)

    def instance_received(self, status: StoreStatus) -> None:
        """Count one answered C-STORE request; a failure status also counts as rejected."""
        self._received.inc()
        if status is not StoreStatus.SUCCESS:
            self._rejected.labels(reason=_status_label(status)).inc()

    def series_routed(self, decision: object) -> None:
        """Count one closed series version with its routing decision (a ``RuleAction``)."""
        self._routed.labels(decision=_state_name(decision)).inc()

    def job_finished(self, outcome: JobOutcomeLabel, timings_s: Mapping[str, float]) -> None:
        """Count one finished job and observe its stage timings.

        Parameters
        ----------
        outcome
            How the job ended (:data:`JobOutcomeLabel`).
        timings_s
            The result's ``timings_s`` (stage name to seconds; ``total`` is the whole
            analysis); empty for a job without a result.
        """
        label = outcome if outcome in _JOB_OUTCOMES else _OTHER
        self._finished.labels(outcome=label).inc()
        for stage, seconds in timings_s.items():
            if not isinstance(seconds, (int, float)) or seconds < 0:
                continue  # a malformed timing is not worth failing a job's completion
            if stage == _TOTAL_STAGE:
                self._analysis.observe(float(seconds))
            else:
                self._stage.labels(stage=_label(stage)).observe(float(seconds))

    def delivery_attempt(self, destination_kind: object, failure: object | None = None) -> None:
        """Count one delivery attempt at one destination.

        Parameters
        ----------
        destination_kind
            The destination's protocol (``db.DeliveryProtocol``: ``c-store`` or ``stow-rs``).
        failure
            ``None`` for a success; otherwise the attempt's status (an ``AttemptStatus`` or
            ``internal-error``), counted in ``pancreas_ai_delivery_failures_total``.
        """
        kind = _state_name(destination_kind)
        self._attempts.labels(destination_kind=kind).inc()
        if failure is not None:
            self._failures.labels(destination_kind=kind, reason=_state_name(failure)).inc()

    def registry_lookup(self, outcome: object) -> None:
        """Count one registry lookup with its status (a ``db.RegistryLookupStatus``)."""
        self._lookups.labels(outcome=_state_name(outcome)).inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format, as ``GET /metrics`` answers it."""
        return generate_latest(self.registry)

    def family_names(self) -> frozenset[str]:
        """The series names a query can use: ``..._total`` of a counter, ``..._bucket`` etc."""
        names: set[str] = set()
        # Described, not collected: a labelled family without a child yet has no sample, and
        # the queue gauge has none while no database is watched.
        for family in [*self.registry.collect(), *self._queue.describe()]:
            suffixes = _SUFFIXES.get(family.type, ("",))
            names.update(f"{family.name}{suffix}" for suffix in suffixes)
        return frozenset(names)


_SUFFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def _status_label(status: StoreStatus) -> str:
    """``StoreStatus.CANNOT_PARSE`` -> ``cannot_parse``."""
    return status.name.lower()


@dataclass(frozen=True)
class MetricsServer:
    """A running ``/metrics`` HTTP server; :meth:`stop` ends it.

    Parameters
    ----------
    server
        prometheus_client's WSGI server.
    thread
        The thread serving it.
    """

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return int(self.server.server_address[1])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving, close the socket and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=timeout_s)


def start_metrics_server(metrics: NodeMetrics, host: str, port: int) -> MetricsServer:
    """Serve ``metrics`` at ``http://host:port/metrics`` in a daemon thread.

    Parameters
    ----------
    metrics
        What to serve (its own registry, never the process-wide default one).
    host
        The address to bind (``Settings.metrics_bind_address``, loopback by default).
    port
        The port (``Settings.metrics_port``; 0 picks a free one, see :attr:`MetricsServer.port`).

    Returns
    -------
    MetricsServer
        The running server.

    Raises
    ------
    OSError
        If the address cannot be bound; the message names the metrics address and the setting
        (no errno: a caller's translation of bind errors for its DICOM port must not claim it).
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise OSError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or type(exc).__name__}): "
            "choose another port with PANCREAS_AI_METRICS_PORT, `metrics_port` in the --config "
            "file or `pancreas-node worker --metrics-port`"
        ) from exc
    thread.name = "metrics-http"
    _log.info("metrics served on http://%s:%d/metrics", host, int(server.server_address[1]))
    return MetricsServer(server, thread)
