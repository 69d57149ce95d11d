"""``pancreas-node serve`` stops on SIGTERM (or Ctrl-C) whenever the signal arrives.

A signal that lands while the main thread is about to block in an unbounded wait is handled
only when something else wakes that thread, so serve must wait in bounded steps. Sending
SIGTERM the moment the node listens, many times over, hits that moment reliably.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: Runs serve ROUNDS times in one interpreter (serve installs its signal handlers in the main
#: thread); a watcher thread sends SIGTERM as soon as the port accepts a connection.
_ROUNDS_SCRIPT = textwrap.dedent(
    """
    import os, signal, socket, sys, threading, time
    from pancreas_node.cli import main

    def free_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def terminate_when_listening(port):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    for round in range(int(sys.argv[1])):
        port = free_port()
        threading.Thread(target=terminate_when_listening, args=(port,), daemon=True).start()
        start = time.monotonic()
        status = main(["serve", "--port", str(port)])
        print(f"round {round}: exit {status} after {time.monotonic() - start:.2f} s", flush=True)
        if status != 0:
            sys.exit(status)
    """
)
ROUNDS = 30


def test_serve_stops_on_sigterm_however_it_is_timed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env["PANCREAS_AI_DATA_DIR"] = str(tmp_path / "data")
    env["PANCREAS_AI_LOG_LEVEL"] = "WARNING"
    # About 0.1 s a round; a lost signal leaves serve waiting and the whole run times out.
    done = subprocess.run(
        [sys.executable, "-c", _ROUNDS_SCRIPT, str(ROUNDS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(": exit 0 after") == ROUNDS, done.stdout
