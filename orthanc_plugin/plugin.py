"""The Orthanc Python plugin: a thin callback layer over testable parts.

Loaded by ``orthanc_plugin/_entry.py`` inside Orthanc's embedded Python (orthanc-python 4.0,
Debian's CPython 3.11). One :class:`PancreasAiPlugin` object holds all state; Orthanc calls
its bound methods:

* ``on_change``: a STABLE_SERIES change is put on a queue and nothing else (no REST call in
  the callback); ORTHANC_STARTED starts the worker thread, ORTHANC_STOPPED stops it.
* ``on_rest``: ``/pancreas-ai/...`` requests, answered by :class:`orthanc_plugin._routes.
  Routes` as JSON.

The worker thread records stable series and forwards the CT ones to the node by C-STORE
with persistent retries (:mod:`orthanc_plugin._submit`); it does not route them (the node's
series assembly does, once) and keeps the studies' labels in step with the node's routing
decisions and jobs (:mod:`orthanc_plugin._labels`). Errors are logged to Orthanc's log and
never escape a callback or end the thread; the plugin is never unloaded. Neither torch nor
the node's own package is imported here.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from db import list_study_jobs
from orthanc_plugin._boards import board_routes
from orthanc_plugin._config import PluginConfig, plugin_config
from orthanc_plugin._labels import apply_labels, supports_labels_api
from orthanc_plugin._node import NodeContext, open_node
from orthanc_plugin._orthanc_api import (
    EmbeddedRestApi,
    OrthancCallError,
    RestApi,
    RestOutput,
    get_json,
    send_bytes,
    send_json,
)
from orthanc_plugin._routes import Request, Response, Routes
from orthanc_plugin._status import study_labels
from orthanc_plugin._store import SubmissionStore
from orthanc_plugin._submit import Submitter
from pancreas_contracts.bundle_identity import bundle_sha256

__all__ = ["OrthancLogHandler", "PancreasAiPlugin", "install"]

_log = logging.getLogger(__name__)
#: Errors the worker and the routes expect at their boundaries.
_EXPECTED = (OrthancCallError, SQLAlchemyError, sqlite3.Error, OSError, ValueError)
_ROUTE = "/pancreas-ai/(.*)"


class OrthancLogHandler(logging.Handler):
    """Send Python log records to Orthanc's log (``LogInfo`` / ``LogWarning`` / ``LogError``).

    Parameters
    ----------
    orthanc
        The ``orthanc`` module.
    """

    def __init__(self, orthanc: Any) -> None:
        super().__init__()
        self._orthanc = orthanc

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record."""
        try:
            text = f"[{record.name}] {self.format(record)}"
            if record.levelno >= logging.ERROR:
                self._orthanc.LogError(text)
            elif record.levelno >= logging.WARNING:
                self._orthanc.LogWarning(text)
            else:
                self._orthanc.LogInfo(text)
        except (TypeError, ValueError, UnicodeError):
            self.handleError(record)


class PancreasAiPlugin:
    """All state of the plugin: store, node handle, worker thread and queue.

    Parameters
    ----------
    orthanc
        The ``orthanc`` module (only ``ChangeType``, the ``RestApi*`` functions and the
        ``Register*`` functions are used).
    config
        The plugin's settings.
    node
        The node's settings and database.
    api
        Orthanc's REST API; defaults to the embedded one.
    """

    def __init__(
        self,
        orthanc: Any,
        config: PluginConfig,
        node: NodeContext,
        api: RestApi | None = None,
    ) -> None:
        self._orthanc = orthanc
        self.config = config
        self.node = node
        self._api: RestApi = api if api is not None else EmbeddedRestApi(orthanc)
        self.store = SubmissionStore(config.state_file)
        self._submitter = Submitter(self._api, self.store, config)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._use_labels_api = False
        self._routes = Routes(
            self._api,
            self.store,
            node,
            config,
            bundle_sha256=lambda: bundle_sha256(node.settings.bundle_path),
            wake=lambda: self._queue.put(None),
            push_series=self._queue.put,
        )
        self._routes.extend(board_routes(self._routes, node, self.store))
        self._change = orthanc.ChangeType

    @classmethod
    def from_orthanc(cls, orthanc: Any) -> PancreasAiPlugin:
        """Build the plugin from Orthanc's configuration (section ``PancreasAI``).

        Raises
        ------
        ValueError
            If the plugin's or the node's settings are invalid.
        """
        config = plugin_config(json.loads(orthanc.GetConfiguration()))
        return cls(orthanc, config, open_node(config.node_config))

    def register(self) -> None:
        """Register the OnChange and REST callbacks with Orthanc."""
        self._orthanc.RegisterOnChangeCallback(self.on_change)
        self._orthanc.RegisterRestCallback(_ROUTE, self.on_rest)

    # -- callbacks (called by Orthanc) -----------------------------------------------------

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """OnChange callback: queue stable series; start and stop the worker."""
        try:
            if change_type == self._change.STABLE_SERIES:
                if self.config.submit:
                    self._queue.put(resource_id)
            elif change_type == self._change.ORTHANC_STARTED:
                self.start()
            elif change_type == self._change.ORTHANC_STOPPED:
                self.stop()
        except Exception:  # noqa: BLE001 - a callback must never raise into Orthanc
            _log.exception("OnChange callback failed")

    def on_rest(self, output: RestOutput, uri: str, **request: Any) -> None:
        """REST callback for ``/pancreas-ai/...``."""
        try:
            body = request.get("body", b"")
            req = Request(
                method=str(request.get("method", "GET")).upper(),
                path=uri,
                query=dict(request.get("get", {})),
                headers={str(k).lower(): str(v) for k, v in request.get("headers", {}).items()},
                body=body.encode("utf-8") if isinstance(body, str) else bytes(body or b""),
            )
            response = self._answer(req)
            if response.status == 405 and response.allowed:
                output.SendMethodNotAllowed(response.allowed)
                return
            if isinstance(response.body, bytes):
                send_bytes(output, response.status, response.body, response.content_type)
            else:
                send_json(output, response.status, response.body)
        except Exception:  # noqa: BLE001 - a callback must never raise into Orthanc
            _log.exception("REST callback for %s failed", uri)

    def _answer(self, request: Request) -> Response:
        try:
            return self._routes.handle(request)
        except SQLAlchemyError as exc:
            _log.error("%s %s: node database error (%s)", request.method, request.path, exc)
            return Response(503, {"error": "the node database is unavailable"})
        except OrthancCallError as exc:
            _log.error("%s %s: %s", request.method, request.path, exc)
            return Response(502, {"error": f"Orthanc answered: {exc.message}"})
        except Exception:  # noqa: BLE001 - answer 500 and keep serving
            _log.exception("%s %s failed", request.method, request.path)
            return Response(500, {"error": "internal error; see Orthanc's log"})

    # -- worker thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Detect Orthanc's labels API and start the worker thread (once)."""
        if self._thread is not None:
            return
        try:
            version = str(get_json(self._api, "/system").get("Version", ""))
            self._use_labels_api = supports_labels_api(version)
            _log.warning(
                "PancreasAI plugin started (Orthanc %s, labels %s)",
                version,
                "API and metadata" if self._use_labels_api else "as metadata",
            )
        except _EXPECTED as exc:
            _log.error("cannot read Orthanc's version (%s); labels as metadata only", exc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pancreas-ai", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker thread and release the node database."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.node.close()
        _log.warning("PancreasAI plugin stopped")

    def _run(self) -> None:
        next_sync = 0.0
        while not self._stop.is_set():
            items = self._take(timeout=self._wait_s(next_sync))
            if self._stop.is_set():
                break
            self._guard("stable series", functools.partial(self._record, items))
            self._guard("submission", self._submitter.send_due)
            if items or time.time() >= next_sync:
                self._guard("label sync", self._sync_labels)
                next_sync = time.time() + self.config.sync_interval_s

    def _wait_s(self, next_sync: float) -> float:
        """Seconds until the next label refresh or the next due submission."""
        now = time.time()
        try:
            due = self.store.next_due_at()
        except sqlite3.Error as exc:
            _log.error("submission store: %s", exc)
            due = None
        return max(0.05, min(next_sync - now, (due - now) if due is not None else 1e9))

    def _take(self, timeout: float) -> list[str]:
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        items = [first]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [i for i in items if i is not None]

    def _guard(self, what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except _EXPECTED as exc:
            _log.error("%s: %s: %s", what, type(exc).__name__, exc)
        except Exception:  # noqa: BLE001 - the worker thread must outlive any bug
            _log.exception("%s failed", what)

    def _record(self, series_ids: list[str]) -> None:
        for series_id in dict.fromkeys(series_ids):
            try:
                recorded = self._submitter.on_stable_series(series_id)
            except _EXPECTED as exc:
                _log.error("stable series %s: %s: %s", series_id, type(exc).__name__, exc)
                continue
            if recorded is not None:
                self.store.track_study(recorded.orthanc_study_id, recorded.study_uid)

    def _sync_labels(self) -> None:
        for study in self.store.tracked_studies():
            rows = list_study_jobs(self.node.database, study.study_uid)
            labels = study_labels(rows, self.store.study_submissions(study.orthanc_study_id))
            status = labels.status.value
            if (status, labels.category) != (study.status, study.category):
                try:
                    apply_labels(
                        self._api,
                        study.orthanc_study_id,
                        labels,
                        use_labels_api=self._use_labels_api,
                    )
                except OrthancCallError as exc:
                    if not exc.not_found:
                        raise
                    self.store.set_study_labels(study.orthanc_study_id, None, None, final=True)
                    continue
                _log.info("study labels: %s", ", ".join(labels.labels) or "none")
            self.store.set_study_labels(
                study.orthanc_study_id, status, labels.category, final=labels.final
            )


def _unavailable(orthanc: Any, reason: str) -> None:
    """Answer every plugin route with 503 and ``reason`` (the plugin could not start)."""

    def on_rest(output: RestOutput, uri: str, **request: Any) -> None:
        send_json(output, 503, {"error": f"PancreasAI plugin not available: {reason}"})

    orthanc.RegisterRestCallback(_ROUTE, on_rest)


def install(orthanc: Any) -> PancreasAiPlugin | None:
    """Create the plugin from Orthanc's configuration and register its callbacks.

    Logs to Orthanc's log. If the configuration is invalid, the routes answer 503 with the
    reason and Orthanc itself keeps running.

    Returns
    -------
    PancreasAiPlugin or None
        The plugin (keep a reference for Orthanc's lifetime), or ``None`` if it could not be
        created.
    """
    handler = OrthancLogHandler(orthanc)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        plugin = PancreasAiPlugin.from_orthanc(orthanc)
    except (ValueError, OSError, sqlite3.Error) as exc:
        _log.error("PancreasAI plugin disabled: %s", exc)
        _unavailable(orthanc, str(exc))
        return None
    plugin.register()
    return plugin
