"""A real Orthanc with the PancreasAI Python plugin, and a real node as its receiver.

Each test gets its own node (SQLite in ``tmp_path``, test routing rules, free DICOM port) and
its own Orthanc (free ports) whose ``pancreas_ai`` modality is that node; the plugin reads the
node's settings from a TOML file. Back-off and label refresh are shortened so that outage
tests finish in seconds. A test may change the node's settings by parametrising ``site``
indirectly with keyword overrides for :func:`tests.dicom_node.conftest.node_settings` (for
example ``{"routing_rules": None}``: the node's packaged default rules); the extra key
``"rules_toml"`` gives the text of the node's routing rules instead of the test rules.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from db import NodeDatabase
from dicom_node.node import Node
from pancreas_contracts import Settings
from pancreas_node.orthanc_server import (
    ORTHANC_BINARY,
    PYTHON_PLUGIN,
    OrthancConfig,
    OrthancError,
    OrthancServer,
    PythonPluginConfig,
)
from tests.conftest import free_port, require_executable, unavailable
from tests.dicom_node.conftest import PhantomSeries, make_series, node_settings

T = TypeVar("T")


def poll(probe: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition") -> T:
    """Call ``probe`` until it returns something other than ``None``/``False``; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s:.0f} s")
        time.sleep(0.1)


@dataclass
class PluginSite:
    """A node and an Orthanc with the plugin, wired together."""

    settings: Settings
    node: Node | None
    orthanc: OrthancServer
    database: NodeDatabase  # the test's own handle on the node's database

    def start_node(self) -> None:
        """Start (again) a node with the same settings, port and database."""
        assert self.node is None
        self.node = Node(self.settings)
        self.node.start()

    def stop_node(self) -> None:
        """Stop the node: its DICOM port closes (an outage, seen from Orthanc)."""
        assert self.node is not None
        self.node.stop()
        self.node = None

    def get(self, path: str, *, auth: bool = True) -> tuple[int, Any]:
        """GET ``path`` on Orthanc; JSON-decoded body."""
        status, body = self.orthanc.request(path, auth=auth)
        return status, json.loads(body) if body.strip().startswith((b"{", b"[")) else body

    def post(self, path: str, data: bytes = b"", **kwargs: Any) -> tuple[int, Any]:
        """POST to Orthanc; JSON-decoded body."""
        status, body = self.orthanc.request(path, method="POST", data=data, **kwargs)
        return status, json.loads(body) if body.strip().startswith((b"{", b"[")) else body

    def upload_rest(self, series: PhantomSeries) -> None:
        """Upload every file with ``POST /instances``."""
        for path in series.files:
            status, _ = self.orthanc.request(
                "/instances",
                method="POST",
                data=path.read_bytes(),
                content_type="application/dicom",
            )
            assert status == 200

    def study_id(self, study_uid: str) -> str:
        """Orthanc's identifier of a study (waits until Orthanc has it)."""

        def lookup() -> str | None:
            _, hits = self.post("/tools/lookup", study_uid.encode(), content_type="text/plain")
            return next((h["ID"] for h in hits if h["Type"] == "Study"), None)

        return poll(lookup, what="study in Orthanc")

    def metadata(self, study_id: str) -> dict[str, str]:
        """A study's metadata (where Orthanc 1.10 keeps the plugin's labels)."""
        status, body = self.get(f"/studies/{study_id}/metadata?expand")
        assert status == 200
        return dict(body)

    def log_tail(self) -> str:
        """The end of Orthanc's log, for assertion messages."""
        return self.orthanc.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], PhantomSeries]:
    """Small phantom series by seed (one study each), generated once per session."""
    cache: dict[int, PhantomSeries] = {}

    def get(seed: int) -> PhantomSeries:
        if seed not in cache:
            cache[seed] = make_series(tmp_path_factory.mktemp(f"phantom{seed}"), seed=seed)
        return cache[seed]

    return get


def write_node_toml(settings: Settings, path: Path) -> Path:
    """The node's settings as the TOML file the plugin reads (``PancreasAI.NodeConfig``).

    No routing rules: the plugin does not route (the node's series assembly does), so the
    plugin's copy of the settings needs the database and the model bundle only.
    """
    path.write_text(f'data_dir = "{settings.data_dir}"\nport = {settings.port}\n', encoding="utf-8")
    return path


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PluginSite]:
    """A running node and a running Orthanc with the plugin submitting to it."""
    require_executable(ORTHANC_BINARY)
    if not PYTHON_PLUGIN.exists():
        unavailable(f"{PYTHON_PLUGIN} is absent (install the Debian package orthanc-python)")
    overrides: dict[str, object] = dict(getattr(request, "param", {}))
    rules_toml = overrides.pop("rules_toml", None)
    if rules_toml is not None:
        rules = tmp_path / "site-rules.toml"
        rules.write_text(str(rules_toml), encoding="utf-8")
        overrides["routing_rules"] = rules
    settings = node_settings(tmp_path / "node", **overrides)
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=free_port(),
        node_port=settings.port,
        stable_age=1,
        python_plugin=PythonPluginConfig(
            node_config=write_node_toml(settings, tmp_path / "node.toml"),
            retry_base_s=0.3,
            retry_max_s=1.0,
            sync_interval_s=0.3,
        ),
    )
    node = Node(settings)
    node.start()
    orthanc = OrthancServer(config)
    try:
        orthanc.start()
    except OrthancError as exc:
        node.stop()
        unavailable(f"Orthanc with the Python plugin did not start: {exc}")
    running = PluginSite(settings, node, orthanc, NodeDatabase(settings.resolved_database_url))
    status, _ = running.get("/pancreas-ai/queue")
    if status != 200:
        orthanc.stop()
        node.stop()
        pytest.fail(f"the PancreasAI plugin did not load (HTTP {status}):\n{running.log_tail()}")
    try:
        yield running
    finally:
        # The storage is thrown away: SIGKILL spares Orthanc's graceful stop (2.5 s here, most
        # of it its HTTP and DICOM servers winding down). A graceful stop, the plugin's
        # included, is test_plugin.py::test_pending_submission_survives_orthanc_restart.
        if orthanc.pid is not None:
            os.kill(orthanc.pid, signal.SIGKILL)
        orthanc.stop()
        if running.node is not None:
            running.node.stop()
        running.database.dispose()
