"""Start and stop a real Orthanc server from the project's configuration.

Used by ``make demo`` and by the integration tests; the configuration template is
``deploy/orthanc/orthanc.json.in``. This module is never imported inside Orthanc's process.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import TracebackType
from typing import Any, Self

from orthanc_plugin import ENTRY_SCRIPT

__all__ = [
    "ORTHANC_BINARY",
    "PYTHON_PLUGIN",
    "SERVE_FOLDERS_PLUGIN",
    "OrthancConfig",
    "OrthancError",
    "OrthancServer",
    "PythonPluginConfig",
]

ORTHANC_BINARY = "/usr/sbin/Orthanc"
#: Debian's orthanc-python plugin (embeds the system CPython 3.11).
PYTHON_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancPython.so")
_DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: Debian's ServeFolders plugin (static folders served by Orthanc's HTTP server, e.g. OHIF).
SERVE_FOLDERS_PLUGIN = Path("/usr/share/orthanc/plugins/libServeFolders.so")
#: MIME types ServeFolders does not know by itself; files without an extension are the
#: viewer's route entry pages (see ohif-extension/scripts/prepare-viewer.mjs).
_SERVE_FOLDERS_MIME = {
    "": "text/html",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".map": "application/json",
    ".woff2": "font/woff2",
}
_REPO = Path(__file__).resolve().parents[1]
_TEMPLATE = _REPO / "deploy" / "orthanc" / "orthanc.json.in"


def _default_venv() -> Path:
    """The virtual environment running this launcher, else ``<repository>/.venv``."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return _REPO / ".venv"


class OrthancError(RuntimeError):
    """Orthanc could not be started or answered with an error."""


@dataclass(frozen=True)
class PythonPluginConfig:
    """The PancreasAI Python plugin in Orthanc (section ``PancreasAI``, see the deploy README).

    Parameters
    ----------
    node_config
        The node's TOML settings (database URL, routing rules, bundle); ``None`` leaves them
        to ``PANCREAS_AI_*`` environment variables of the Orthanc process.
    venv
        The virtual environment whose ``site-packages`` the embedded Python imports from.
    submit
        Whether stable series are sent to the node.
    retry_base_s, retry_max_s, give_up_h
        Back-off and give-up time for sending series to the node.
    sync_interval_s
        How often labels of studies waiting for a result are refreshed.
    """

    node_config: Path | None = None
    venv: Path = field(default_factory=_default_venv)
    submit: bool = True
    retry_base_s: float = 30.0
    retry_max_s: float = 900.0
    give_up_h: float = 24.0
    sync_interval_s: float = 5.0

    def section(self, storage_dir: Path) -> dict[str, Any]:
        """The ``PancreasAI`` section of Orthanc's configuration."""
        return {
            "VirtualEnv": str(self.venv),
            "NodeConfig": str(self.node_config.resolve()) if self.node_config else "",
            "NodeModality": "pancreas_ai",
            "StateFile": str(storage_dir / "pancreas-ai-plugin.sqlite"),
            "SubmitStableSeries": self.submit,
            "RetryBaseSeconds": self.retry_base_s,
            "RetryMaxSeconds": self.retry_max_s,
            "GiveUpHours": self.give_up_h,
            "SyncIntervalSeconds": self.sync_interval_s,
            "WriteUsers": ["admin"],
        }


@dataclass(frozen=True)
class OrthancConfig:
    """Values for the configuration template (see ``deploy/orthanc/README.md``)."""

    work_dir: Path
    http_port: int = 8042
    dicom_port: int = 4242
    dicom_aet: str = "ORTHANC"
    node_aet: str = "PANCREAS_AI"
    node_port: int = 11112
    stable_age: int = 5
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    viewer_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    extra_plugins: tuple[Path, ...] = ()
    python_plugin: PythonPluginConfig | None = None
    #: Static folders served same-origin by URI prefix, e.g. ``{"/ohif": build/ohif}`` for the
    #: prebuilt OHIF viewer (``make viewer``); loads the ServeFolders plugin when not empty.
    serve_folders: Mapping[str, Path] = field(default_factory=dict)

    def serve_folders_section(self) -> dict[str, Any]:
        """The ``ServeFolders`` section of Orthanc's configuration."""
        if not self.serve_folders:
            return {}
        return {
            "Folders": {uri: str(path.resolve()) for uri, path in self.serve_folders.items()},
            "Extensions": dict(_SERVE_FOLDERS_MIME),
            "AllowCache": False,
            "GenerateETag": True,
        }

    def render(self) -> str:
        """Return the filled-in JSON configuration."""
        plugins = [str(_DICOMWEB_PLUGIN), *(str(p) for p in self.extra_plugins)]
        if self.serve_folders:
            plugins.append(str(SERVE_FOLDERS_PLUGIN))
        storage_dir = (self.work_dir / "storage").resolve()
        script = ""
        section: dict[str, Any] = {}
        if self.python_plugin is not None:
            plugins.append(str(PYTHON_PLUGIN))
            script = str(ENTRY_SCRIPT)
            section = self.python_plugin.section(storage_dir)
        text = Template(_TEMPLATE.read_text(encoding="utf-8")).substitute(
            storage_dir=str(storage_dir),
            http_port=self.http_port,
            dicom_port=self.dicom_port,
            dicom_aet=self.dicom_aet,
            node_aet=self.node_aet,
            node_port=self.node_port,
            stable_age=self.stable_age,
            admin_password=self.admin_password,
            viewer_password=self.viewer_password,
            plugins=json.dumps(plugins),
            python_script=json.dumps(script),
            pancreas_ai=json.dumps(section, indent=4),
            serve_folders=json.dumps(self.serve_folders_section(), indent=4),
        )
        json.loads(text)  # fail here, not inside Orthanc, if the template is broken
        return text


class OrthancServer:
    """A running Orthanc process; use as a context manager.

    Parameters
    ----------
    config
        Template values; ``config.work_dir`` receives ``orthanc.json``, the storage and the log.
    startup_timeout_s
        How long to wait for the REST API to answer.
    """

    def __init__(self, config: OrthancConfig, startup_timeout_s: float = 30.0) -> None:
        self.config = config
        self._timeout = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"http://127.0.0.1:{self.config.http_port}"

    @property
    def pid(self) -> int | None:
        """The Orthanc process' id while it runs (started and not yet stopped), else ``None``."""
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        """Orthanc's log file."""
        return self.config.work_dir / "orthanc.log"

    def start(self) -> None:
        """Write the configuration, start Orthanc and wait until ``/system`` answers.

        Raises
        ------
        OrthancError
            If the binary is missing, the process exits, or it does not answer in time.
        """
        if shutil.which(ORTHANC_BINARY) is None:
            raise OrthancError(f"{ORTHANC_BINARY} not found: install the Debian package 'orthanc'")
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.config.work_dir / "orthanc.json"
        config_path.write_text(self.config.render(), encoding="utf-8")
        # The log is appended to: only this start's lines explain this start's failure.
        self._log_offset = self.log_path.stat().st_size if self.log_path.is_file() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [ORTHANC_BINARY, "--logfile=" + str(self.log_path), str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise OrthancError(self._exit_reason(self._process.returncode))
            try:
                # A short timeout: a stranger holding the HTTP port may accept and never answer,
                # and the exit of our Orthanc (it cannot bind) must be noticed meanwhile.
                status, _ = self.request("/system", timeout_s=2.0)
            except (OSError, http.client.HTTPException):  # not up yet, or not an HTTP server
                status = 0
            if status == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise OrthancError(
            f"Orthanc did not answer within {self._timeout:.0f} s; see {self.log_path}"
        )

    def _exit_reason(self, returncode: int) -> str:
        """Why Orthanc exited during start-up: a port it could not bind, named, or its log."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                log = handle.read().decode("utf-8", errors="replace")
        except OSError:
            log = ""
        ports = {"HTTP": self.config.http_port, "DICOM": self.config.dicom_port}
        for kind, port in ports.items():
            if f"TCP port of the {kind} server is privileged or already in use" in log:
                return (
                    f"Orthanc could not listen on its {kind} port {port} (already in use or "
                    "privileged; Debian's own orthanc service takes 8042 and 4242: "
                    f"`sudo systemctl disable --now orthanc`); see {self.log_path}"
                )
        return f"Orthanc exited with {returncode}; see {self.log_path}"

    def stop(self) -> None:
        """Terminate Orthanc (SIGTERM, then SIGKILL after 10 s)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        data: bytes | None = None,
        auth: bool = True,
        content_type: str = "application/json",
        timeout_s: float = 30.0,
    ) -> tuple[int, bytes]:
        """Send an HTTP request to Orthanc and return ``(status, body)``.

        HTTP error statuses are returned, not raised; connection failures and timeouts raise
        ``OSError``.
        """
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if auth:
            token = base64.b64encode(f"admin:{self.config.admin_password}".encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def get_json(self, path: str) -> Any:
        """GET ``path`` as admin and decode JSON.

        Raises
        ------
        OrthancError
            On a non-200 answer.
        """
        status, body = self.request(path)
        if status != 200:
            raise OrthancError(f"GET {path} answered HTTP {status}")
        return json.loads(body)

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
