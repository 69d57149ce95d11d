"""A ``pancreas-node demo`` process under test: its ports, its output, its Orthanc child."""

from __future__ import annotations

import queue
import socket
import time
from pathlib import Path
from typing import IO

from pydicom import dcmread

from tests.conftest import free_port


def demo_ports() -> dict[str, int]:
    """Free loopback ports for the demo's Orthanc (HTTP, DICOM) and node, by option."""
    return {"--http-port": free_port(), "--dicom-port": free_port(), "--node-port": free_port()}


def port_args(ports: dict[str, int]) -> list[str]:
    """``ports`` as command-line arguments."""
    return [arg for option, port in ports.items() for arg in (option, str(port))]


def read_lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    """Put each line of ``stream`` on ``into``, then ``None`` at its end (a reader thread)."""
    for line in stream:
        into.put(line)
    into.put(None)


def read_until(lines: queue.Queue[str | None], marker: str, timeout_s: float) -> str:
    """Everything the demo printed up to the line with ``marker`` (polled with a deadline)."""
    text = ""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"the demo ended before {marker!r}:\n{text}")
        text += line
        if marker in line:
            return text
    raise AssertionError(f"no {marker!r} within {timeout_s:.0f} s:\n{text}")


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


def wait_ports_free(ports: dict[str, int], timeout_s: float) -> list[str]:
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


def phantom_identifiers(workdir: Path) -> list[str]:
    """The demo phantom's patient identifiers (they must never reach the node's log)."""
    first = next(iter(sorted(workdir.glob("phantom/*/dicom/*.dcm"))))
    ds = dcmread(first, stop_before_pixels=True)
    return [str(ds.get(tag)) for tag in _PHANTOM_IDENTIFIER_TAGS if str(ds.get(tag) or "")]


def orthanc_child(parent: int) -> int | None:
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


def zombie(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie not yet reaped)."""
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def assert_stopped_cleanly(
    ports: dict[str, int], orthanc_pid: int, workdir: Path, out: str
) -> None:
    """Orthanc is gone, the three ports are free, and the node's log is kept without identifiers.

    Orthanc used to outlive the demo on its ports when a signal killed Python outright.
    """
    assert wait_ports_free(ports, timeout_s=30) == [], out
    assert not Path(f"/proc/{orthanc_pid}").exists() or zombie(orthanc_pid)
    log = workdir / "node.log"
    assert log.is_file()
    text = log.read_text(encoding="utf-8")
    assert "SCP PANCREAS_AI listening" in text, text
    for identifier in phantom_identifiers(workdir):
        assert identifier not in text
