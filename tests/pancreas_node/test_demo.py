"""``pancreas-node demo`` end to end on free ports: routed, analysed, delivered to Orthanc."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from pancreas_node.cli import main
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

_REPO = Path(__file__).resolve().parents[2]


def test_demo_reaches_orthanc_and_the_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_executable("storescu")
    require_executable("/usr/sbin/Orthanc")
    ports = demo_ports()
    assert main(["demo", "--workdir", str(tmp_path), *port_args(ports)]) == 0
    out = capsys.readouterr().out
    # The node listens on --node-port (it used to be 11112 whatever the option said).
    assert f"starting the node PANCREAS_AI on DICOM {ports['--node-port']}" in out
    assert "Study stored in Orthanc" in out
    assert "analyze by rule 'portal-venous abdominal CT'" in out
    # The job's state when the table is printed: the worker may already have claimed it.
    assert re.search(r"[0-9a-f]{8} (queued|running|done|delivered)", out)
    assert "Orthanc lists the study over DICOMweb" in out
    assert "plugin route, HTTP 200" in out
    assert "Clinical registry" in out and "of 17 variables found" in out
    # The shipped demo bundle analyses the series; SEG, SR and PDF reach Orthanc.
    assert "Model bundle:" in out and "NCCN category (network):" in out
    # The demo bundle has one model: there is no spread between models to report.
    assert "no ensemble spread (single model)" in out and "spread 0.000" not in out
    assert "Timings (s):" in out and "sent to Orthanc" in out
    for modality in ("SEG", "SR", "DOC"):
        assert f"│ {modality} " in out
    # The node's result notification reached the demo's webhook inbox (issue 26), naming no
    # patient: the phantom's PatientID starts with PHANTOM.
    assert "notification received (demo webhook inbox): PancreasAI: result ready" in out
    received = (tmp_path / "notifications.jsonl").read_text(encoding="utf-8")
    assert "result ready" in received and "PHANTOM" not in received
    # Not kept: no URLs of servers that are gone, but how to keep them.
    assert "http://127.0.0.1:" not in out
    assert "Orthanc and the node have stopped" in out and "make demo KEEP=1" in out


def _board_loop(work_dir: Path, orthanc_url: str) -> None:
    """``scripts/board_demo.sh`` on the running demo: the tumor board's loop (issue 26)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")},
        "DEMO_DIR": str(work_dir),
        "BIN": str(Path(sys.executable).parent),
        "ORTHANC_URL": orthanc_url,
    }
    run = subprocess.run(
        ["bash", str(_REPO / "scripts" / "board_demo.sh")],
        cwd=_REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    board = re.search(r"^Board (\d+): study ", run.stdout, re.MULTILINE)
    assert board is not None, run.stdout
    # The override went through the plugin's API and disagrees with the AI category.
    assert "override to metastatic by orthanc:admin (disagrees with the AI: True)" in run.stdout
    packet = work_dir / "node" / "boards" / board.group(1) / "packet.pdf"
    assert packet.read_bytes().startswith(b"%PDF")
    rows = (work_dir / f"board-{board.group(1)}-decisions.csv").read_text().splitlines()
    assert len(rows) == 2 and ",borderline," in rows[1] and ",override," in rows[1]
    # The notifier delivered the disagreement and the packet to the demo's webhook inbox.
    inbox = (work_dir / "notifications.jsonl").read_text(encoding="utf-8")
    assert "review disagrees" in inbox and "packet ready" in inbox
    assert "Demo: liver lesion" not in inbox  # free text never leaves in a notification
    # The reviewed case is exported for training, the board's decision as its label.
    exported = work_dir / "reviewed-cases"
    truth = (exported / "truth.csv").read_text(encoding="utf-8").splitlines()
    assert len(truth) == 2 and ",1,1,board,ai-reviewed,override,borderline," in truth[1]
    case = truth[1].split(",")[0]
    assert (exported / case / "label.nii.gz").is_file()
    assert (exported / case / "image.nii.gz").is_file()


def test_demo_keep_prints_live_urls_until_ctrl_c(tmp_path: Path) -> None:
    require_executable("storescu")
    require_executable("/usr/sbin/Orthanc")
    ports = demo_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env["COLUMNS"] = "250"  # rich wraps at the terminal width; one URL per line here
    argv = [sys.executable, "-m", "pancreas_node", "demo", "--keep", "--workdir", str(tmp_path)]
    # Started as a shell starts a background job (`make demo KEEP=1 &`): with SIGINT ignored,
    # which Python inherits and then installs no KeyboardInterrupt handler. Ctrl-C must still
    # stop it (a clean-clone `make test` run in the background once failed here).
    command = shlex.join([*argv, *port_args(ports)])
    demo = subprocess.Popen(
        ["bash", "-c", f"trap '' INT; exec {command}"],
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
        out = read_until(lines, "press Ctrl-C to stop", timeout_s=900)
        dicomweb = re.search(r"DICOMweb: (\S+)", out)
        password = re.search(r"Orthanc admin password: (\S+)\)", out)
        assert dicomweb and password, out
        assert dicomweb.group(1).startswith(f"http://127.0.0.1:{ports['--http-port']}/")
        assert "Viewer:   http://127.0.0.1:" in out and "Results:  http://127.0.0.1:" in out
        # The URL answers while the demo is kept running.
        request = urllib.request.Request(dicomweb.group(1))
        token = base64.b64encode(f"admin:{password.group(1)}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())  # the study's series
        _board_loop(tmp_path, f"http://127.0.0.1:{ports['--http-port']}")
        orthanc_pid = orthanc_child(demo.pid)
        assert orthanc_pid is not None, "no Orthanc process under the demo"
        demo.send_signal(signal.SIGINT)
        out += read_until(lines, "Orthanc and the node have stopped", timeout_s=120)
        assert demo.wait(timeout=120) == 0
        assert "make demo KEEP=1" not in out
        assert_stopped_cleanly(ports, orthanc_pid, tmp_path, out)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
        if orthanc_pid is not None and Path(f"/proc/{orthanc_pid}").exists():
            os.kill(orthanc_pid, signal.SIGKILL)
