"""A port that cannot be bound is named, with the setting that changes it (issue 19).

The port is held by a real listening socket, as another server would hold it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pancreas_node.cli import main
from tests.conftest import free_port


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another process listens on for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env.update(extra)
    return env


def test_serve_on_a_taken_port_names_address_port_and_setting(
    held_port: int, tmp_path: Path
) -> None:
    # A child process: serve installs signal handlers and logging for its whole process.
    done = subprocess.run(
        [sys.executable, "-m", "pancreas_node", "serve", "--port", str(held_port)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_clean_env(PANCREAS_AI_DATA_DIR=str(tmp_path / "data")),
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pancreas-node: error: cannot listen on the node's DICOM port")
    assert f"127.0.0.1:{held_port}" in last
    assert "already in use" in last
    assert "--port" in last and "PANCREAS_AI_PORT" in last
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("option", "what"),
    [
        ("--node-port", "the node's DICOM port 127.0.0.1"),
        ("--http-port", "Orthanc's HTTP port 0.0.0.0"),
        ("--dicom-port", "Orthanc's DICOM port 0.0.0.0"),
    ],
)
def test_demo_on_a_taken_port_fails_first_and_names_the_option(
    held_port: int,
    option: str,
    what: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ports = {"--node-port": free_port(), "--http-port": free_port(), "--dicom-port": free_port()}
    ports[option] = held_port
    args = ["demo", "--workdir", str(tmp_path / "demo")]
    for name, port in ports.items():
        args += [name, str(port)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot listen on {what}:{held_port}: the port is already in use" in err
    assert f"choose another with {option}" in err and f"DEMO_ARGS='{option} N'" in err
    # Checked before anything else: no phantom generated, no folder created.
    assert not (tmp_path / "demo").exists()
