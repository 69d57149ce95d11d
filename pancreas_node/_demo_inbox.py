"""The demo's webhook inbox: a local HTTP receiver the demo node notifies (issue 26).

``make demo`` configures one notification channel, an apprise ``json://`` webhook to this
inbox on a loopback port, so the demo shows notifications arriving (result ready, and with
``KEEP=1`` disagreement and board packet ready as the user acts) without any mail server. Each
message is printed as it arrives and appended to ``<workdir>/notifications.jsonl``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["DemoInbox", "demo_inbox"]

_MAX_BODY = 1_000_000


class DemoInbox:
    """Messages the inbox received, in arrival order (thread-safe)."""

    def __init__(self, log_path: Path, announce: Callable[[dict[str, Any]], None]) -> None:
        self._log_path = log_path
        self._announce = announce
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self.url = ""

    def receive(self, message: dict[str, Any]) -> None:
        """Record one message (called by the HTTP handler)."""
        with self._lock:
            self._messages.append(message)
            with self._log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(message) + "\n")
        self._announce(message)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A copy of what arrived so far."""
        with self._lock:
            return list(self._messages)


def _handler(inbox: DemoInbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0") or 0), _MAX_BODY)
            try:
                message = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self.send_response(400)
                self.end_headers()
                return
            inbox.receive(message if isinstance(message, dict) else {"body": message})
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # the inbox announces messages itself; no access log on the console

    return Handler


@contextmanager
def demo_inbox(log_path: Path, announce: Callable[[dict[str, Any]], None]) -> Iterator[DemoInbox]:
    """Run the inbox on a free loopback port; ``inbox.url`` is its apprise URL."""
    inbox = DemoInbox(log_path, announce)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(inbox))
    inbox.url = f"json://127.0.0.1:{server.server_address[1]}/pancreas-ai-demo"
    thread = threading.Thread(target=server.serve_forever, name="demo-inbox", daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
