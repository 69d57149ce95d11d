"""``pancreas-node demo`` stops Orthanc and the node on SIGTERM, and keeps the node's log.

SIGTERM is sent to the demo process alone (as ``kill -TERM PID`` does) during the run, once
Orthanc and the node listen; the test then polls, with a deadline, until the process has exited
and its three ports can be bound again. A kept demo stopped by a signal is
``test_demo.py::test_demo_keep_prints_live_urls_until_ctrl_c``: SIGINT and SIGTERM raise the
same ``KeyboardInterrupt`` in both phases (``_cli_demo._stop_signals_as_ctrl_c``), so one
signal in each phase covers both.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import require_executable
from tests.pancreas_node._demo_process import (
    assert_stopped_cleanly,
    demo_ports,
    orthanc_child,
    port_args,
    read_lines,
    read_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigterm_during_the_run_stops_orthanc_and_the_node_and_the_node_log_is_kept(
    tmp_path: Path,
) -> None:
    require_executable("storescu")
    require_executable("/usr/sbin/Orthanc")
    ports = demo_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env["COLUMNS"] = "250"
    argv = [sys.executable, "-m", "pancreas_node", "demo", "--workdir", str(tmp_path)]
    demo = subprocess.Popen(
        [*argv, *port_args(ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert demo.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=read_lines, args=(demo.stdout, lines), daemon=True).start()
    orthanc_pid: int | None = None
    try:
        # Both servers listen once the study is being sent.
        out = read_until(lines, "4/5", timeout_s=300)
        orthanc_pid = orthanc_child(demo.pid)
        assert orthanc_pid is not None, "no Orthanc process under the demo"
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(timeout=120)
        while (line := lines.get(timeout=30)) is not None:
            out += line
        assert status == 130, out
        assert_stopped_cleanly(ports, orthanc_pid, tmp_path, out)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
        if orthanc_pid is not None and Path(f"/proc/{orthanc_pid}").exists():
            os.kill(orthanc_pid, signal.SIGKILL)
