"""``pancreas-node demo`` stops Orthanc and the node on SIGTERM, and keeps the node's log.

SIGTERM is sent to the demo process alone (as ``kill -TERM PID`` does), once Orthanc and the
node listen; the test then polls, with a deadline, until the process has exited and its three
ports can be bound again.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import require_executable
from tests.pancreas_node.test_demo import _lines, _port_args, _ports, _read_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Patient identifiers of the demo phantom that must never reach the node's log.
_PHANTOM_IDENTIFIER_TAGS = ("PatientID", "PatientName")


def _port_free(port: int, address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
        return True


def _wait_ports_free(ports: dict[str, int], timeout_s: float) -> list[str]:
    """Poll until every port can be bound; return those still taken at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        taken = [
            option
            for option, port in ports.items()
            # Orthanc binds every interface, the node loopback.
            if not _port_free(port, "127.0.0.1" if option == "--node-port" else "0.0.0.0")
        ]
        if not taken or time.monotonic() > deadline:
            return taken
        time.sleep(0.2)


def _phantom_identifiers(workdir: Path) -> list[str]:
    from pydicom import dcmread

    first = next(iter(sorted(workdir.glob("phantom/*/dicom/*.dcm"))))
    ds = dcmread(first, stop_before_pixels=True)
    return [str(ds.get(tag)) for tag in _PHANTOM_IDENTIFIER_TAGS if str(ds.get(tag) or "")]


@pytest.mark.parametrize("keep", [False, True], ids=["during-the-run", "kept-running"])
def test_sigterm_stops_orthanc_and_the_node_and_the_node_log_is_kept(
    tmp_path: Path, keep: bool
) -> None:
    require_executable("storescu")
    require_executable("/usr/sbin/Orthanc")
    ports = _ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env["COLUMNS"] = "250"
    argv = [sys.executable, "-m", "pancreas_node", "demo", "--workdir", str(tmp_path)]
    if keep:
        argv.append("--keep")
    demo = subprocess.Popen(
        [*argv, *_port_args(ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert demo.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(demo.stdout, lines), daemon=True).start()
    orthanc_pid: int | None = None
    try:
        # Both servers listen once the study is being sent; kept, once the demo says so.
        marker = "press Ctrl-C to stop" if keep else "4/5"
        out = _read_until(lines, marker, timeout_s=900 if keep else 300)
        orthanc_pid = _orthanc_child(demo.pid)
        assert orthanc_pid is not None, "no Orthanc process under the demo"
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(timeout=120)
        while (line := lines.get(timeout=30)) is not None:
            out += line
        # Orthanc used to outlive the demo on its ports (SIGTERM killed Python outright).
        assert _wait_ports_free(ports, timeout_s=30) == [], out
        assert not Path(f"/proc/{orthanc_pid}").exists() or _zombie(orthanc_pid)
        assert status == (0 if keep else 130), out
        if keep:
            assert "Orthanc and the node have stopped" in out
        log = tmp_path / "node.log"
        assert log.is_file()
        text = log.read_text(encoding="utf-8")
        assert "SCP PANCREAS_AI listening" in text, text
        for identifier in _phantom_identifiers(tmp_path):
            assert identifier not in text
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
        if orthanc_pid is not None and Path(f"/proc/{orthanc_pid}").exists():
            os.kill(orthanc_pid, signal.SIGKILL)


def _orthanc_child(parent: int) -> int | None:
    """The pid of the Orthanc process the demo started (from /proc), or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"Orthanc" in cmdline:
            return int(entry.name)
    return None


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
