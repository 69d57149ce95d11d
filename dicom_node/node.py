"""The running node: SCP, series assembly and worker built from one :class:`Settings`.

``pancreas-node serve`` builds a :class:`Node` in ``main()`` and passes the settings down; no
component reads configuration on its own.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from types import TracebackType
from typing import Self

from db import NodeDatabase
from dicom_node.routing import load_rules
from dicom_node.scp import StorageSCP
from dicom_node.series_assembly import SeriesAssembler
from dicom_node.worker import JobRunner, Worker
from pancreas_contracts import Settings

__all__ = ["NO_BUNDLE", "Node", "bundle_sha256"]

_log = logging.getLogger(__name__)

#: Bundle hash recorded for jobs queued while no model bundle is configured.
NO_BUNDLE = "none"


def bundle_sha256(bundle_path: Path | None) -> str:
    """SHA-256 of a bundle's ``bundle.json`` (the bundle's identity), or :data:`NO_BUNDLE`."""
    if bundle_path is None:
        return NO_BUNDLE
    manifest = bundle_path / "bundle.json" if bundle_path.is_dir() else bundle_path
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


class Node:
    """All long-running parts of the node.

    Parameters
    ----------
    settings
        The node's settings.
    runner
        Runs analysis jobs; ``None`` leaves jobs queued (they run once a bundle is deployed and
        the node restarted: no job is lost).
    """

    def __init__(self, settings: Settings, runner: JobRunner | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = NodeDatabase(settings.resolved_database_url)
        self.database.upgrade()
        self.scp = StorageSCP(settings, self.database)
        self.assembler = SeriesAssembler(
            self.database,
            load_rules(settings.routing_rules),
            settings.quiet_period_s,
            bundle_sha256(settings.bundle_path),
        )
        self.worker = Worker(self.database, runner) if runner is not None else None

    def start(self) -> None:
        """Start the SCP, the series assembly and (with a runner) the worker."""
        self.scp.start()
        self.assembler.start(interval_s=min(1.0, max(self.settings.quiet_period_s / 4, 0.1)))
        if self.worker is None:
            _log.warning("no model bundle configured: series are queued but not analysed")
        else:
            self.worker.start()

    def stop(self) -> None:
        """Stop accepting associations, then stop the background threads."""
        self.scp.stop()
        self.assembler.stop()
        if self.worker is not None:
            self.worker.stop()
        self.database.dispose()

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
