"""The running node: SCP, series assembly and worker built from one :class:`Settings`.

``pancreas-node serve`` builds a :class:`Node` in ``main()`` and passes the settings down; no
component reads configuration on its own.

Identity (issue 22, D9). A node names the leases it holds ``<host>/<node id>/<incarnation>/``:
the node id is made once and kept in ``<data_dir>/node-id``, the incarnation is new for every
start. A node that starts takes back at once what its previous incarnation still held (a
``kill -9`` leaves a running job leased for up to ``job_lease_s``), see
:func:`db.reclaim_node_leases`.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy.exc import SQLAlchemyError

from db import JobInfo, NodeDatabase, reclaim_node_leases
from dicom_node.dispatch import Dispatcher, NotDeliverableError
from dicom_node.job_queue import JobPublisher
from dicom_node.metrics import MetricsServer, NodeMetrics, start_metrics_server
from dicom_node.notify import Notifier
from dicom_node.routing import load_rules
from dicom_node.scp import StorageSCP
from dicom_node.series_assembly import PhaseEstimator, SeriesAssembler
from dicom_node.worker import JobOutcome, JobRunner, Worker
from pancreas_contracts import Settings
from pancreas_contracts.bundle_identity import bundle_sha256

__all__ = ["Node", "node_id"]

_log = logging.getLogger(__name__)
_NODE_ID_FILE = "node-id"


def node_id(data_dir: Path) -> str:
    """This node's persistent id, made on first use and kept in ``<data_dir>/node-id``."""
    path = data_dir / _NODE_ID_FILE
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    made = uuid.uuid4().hex
    partial = path.with_name(f"{_NODE_ID_FILE}.new")
    partial.write_text(made + "\n", encoding="ascii")
    partial.replace(path)  # atomic: a crash never leaves an empty id behind
    return made


class Node:
    """All long-running parts of the node.

    Parameters
    ----------
    settings
        The node's settings.
    runner
        Runs analysis jobs; ``None`` leaves jobs queued (they run once a bundle is deployed and
        the node restarted: no job is lost). Not used with ``worker_mode = "celery"``: the node
        then publishes its jobs to the broker for ``pancreas-node worker`` processes
        (:mod:`dicom_node.job_queue`) and runs no analysis itself.
    phase_estimator
        Measures a series' contrast phase for the routing rules that ask for it; ``None``
        makes the phase ``unknown`` (see :data:`dicom_node.series_assembly.PhaseEstimator`).
    metrics
        The node's Prometheus metrics (issue 27), shared with whoever else records (``serve``
        passes the one its analysis runner counts registry lookups in); default: new ones.
        Served at ``/metrics`` when ``settings.metrics_port`` is set.
    """

    def __init__(
        self,
        settings: Settings,
        runner: JobRunner | None = None,
        phase_estimator: PhaseEstimator | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = NodeDatabase(settings.resolved_database_url)
        self.database.upgrade()
        # Lease owners: "<host>/<node id>/" is this node, the random part this start of it.
        self.lease_prefix = f"{socket.gethostname()[:40]}/{node_id(settings.data_dir)}/"
        self.incarnation = f"{self.lease_prefix}{uuid.uuid4().hex[:12]}/"
        # --- metrics (issue 27): one NodeMetrics for every part; the job gauge reads this db.
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self.metrics.watch_queue(self.database)
        self._metrics_server: MetricsServer | None = None
        # --- end metrics
        self.scp = StorageSCP(settings, self.database, self.metrics)
        self.assembler = SeriesAssembler(
            self.database,
            load_rules(settings.routing_rules),
            settings.quiet_period_s,
            bundle_sha256(settings.bundle_path),
            phase_estimator,
            metrics=self.metrics,
        )
        self.dispatcher = Dispatcher(
            settings,
            self.database,
            lease_owner=f"{self.incarnation}dispatch",
            metrics=self.metrics,
        )
        distributed = settings.worker_mode == "celery"
        self.worker = (
            Worker(
                self.database,
                runner,
                on_done=self._deliver_now,
                lease_s=settings.job_lease_s,
                worker_id=f"{self.incarnation}worker",
                metrics=self.metrics,
            )
            if runner is not None and not distributed
            else None
        )
        self.publisher = JobPublisher(settings, self.database) if distributed else None
        self._stop = threading.Event()
        self._delivery_thread: threading.Thread | None = None
        # Notifications (issue 26): the outbox rows the database writes, sent to e-mail/webhooks.
        self.notifier = Notifier(settings, self.database)

    def start(self) -> None:
        """Take back the previous run's leases, start the SCP, assembly, worker and delivery.

        Raises
        ------
        OSError
            If the DICOM port or the metrics port cannot be bound.
        """
        self._serve_metrics()  # first: a port it cannot bind leaves nothing else running
        self.scp.start()
        # After the SCP holds the port: a second process started on the same data folder by
        # mistake fails to bind before it could take the running node's leases.
        reclaim_node_leases(self.database, self.lease_prefix, self.incarnation)
        self.assembler.start(interval_s=min(1.0, max(self.settings.quiet_period_s / 4, 0.1)))
        if self.publisher is not None:
            self.publisher.start()
        elif self.worker is None:
            _log.warning("no model bundle configured: series are queued but not analysed")
        else:
            self.worker.start()
        self._stop.clear()
        self._delivery_thread = threading.Thread(
            target=self._delivery_loop, name="dispatch", daemon=True
        )
        self._delivery_thread.start()
        self.notifier.start()

    def stop(self) -> None:
        """Stop accepting associations, then stop the background threads."""
        self.scp.stop()
        self.assembler.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.publisher is not None:
            self.publisher.stop()
        self._stop.set()
        if self._delivery_thread is not None:
            self._delivery_thread.join(timeout=60)
            self._delivery_thread = None
        self.notifier.stop()
        if self._metrics_server is not None:
            self._metrics_server.stop()
            self._metrics_server = None
        self.database.dispose()

    @property
    def metrics_port(self) -> int | None:
        """The port ``/metrics`` is served on, ``None`` when not served."""
        return None if self._metrics_server is None else self._metrics_server.port

    def _serve_metrics(self) -> None:
        s = self.settings
        if not s.metrics_port or self._metrics_server is not None:
            return  # None or 0: not served
        self._metrics_server = start_metrics_server(
            self.metrics, s.metrics_bind_address, s.metrics_port
        )

    def _deliver_now(self, job: JobInfo, outcome: JobOutcome) -> None:
        # First attempt right after the analysis; retries come from the delivery loop.
        self.dispatcher.deliver_first(job.id, outcome.files)

    def _delivery_loop(self, interval_s: float = 5.0) -> None:
        """Retry due deliveries (exponential backoff, up to ``dispatch_max_age_h``).

        ``deliver_due`` fails a job whose delivery raises alone; this loop outlives the rest.
        """
        while not self._stop.wait(interval_s):
            try:
                self.dispatcher.deliver_due()
            except (NotDeliverableError, LookupError, SQLAlchemyError) as exc:
                _log.error("delivery loop: %s", type(exc).__name__)
            # Supervision boundary: no error of one pass ends the delivery loop.
            except Exception as exc:  # noqa: BLE001
                _log.error("delivery loop: %s", type(exc).__name__)
                _log.debug("delivery loop traceback", exc_info=exc)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
