"""``make bench-intake``: C-STORE intake throughput of the node vs DCMTK storescp vs Orthanc.

The same 300-slice phantom series is sent with DCMTK ``storescu`` (one association) to each
receiver, all on this machine and all writing to the same disk, ``ROUNDS`` times in
interleaved order. The median MB/s of each receiver and the ratios to the node go to
``bench/results/local/intake.md``.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pynetdicom import AE

from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from phantom import PhantomOptions, generate_cohort

ROUNDS = 5
BARE = "pynetdicom, no save (reference)"
FLOOR = "pynetdicom, chunked receive + fsync + rename (durability floor)"
#: ``bench/results/local/`` (untracked) unless BENCH_RESULTS_DIR names another folder:
#: ``make bench-* PUBLISH=1`` sets it to ``bench/results/``, the committed reference results.
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "intake.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_echo(port: int, aet: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ae = AE(ae_title="BENCH")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title=aet)
        if assoc.is_established:
            assoc.release()
            return
        time.sleep(0.2)
    raise RuntimeError(f"{aet} on port {port} did not answer")


def send(port: int, aet: str, files: list[Path]) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["storescu", "-aet", "BENCH", "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> int:
    # DCMTK (storescu, storescp, and Orthanc, which embeds it) leaves Nagle's algorithm on
    # unless TCP_NODELAY is set; on loopback that costs ~40 ms per instance (delayed ACK), which
    # would measure the TCP stack, not the receivers. Every process of the run inherits this.
    os.environ["TCP_NODELAY"] = "1"
    for tool in ("storescu", "storescp", "/usr/sbin/Orthanc"):
        if shutil.which(tool) is None:
            print(f"bench-intake: {tool} is missing (run make system-deps)", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    try:
        return run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> int:
    options = PhantomOptions(fov_mm=(300.0, 300.0, 300.0), pixel_spacing=0.7, slice_thickness=1.0)
    generate_cohort(work / "phantom", 1, 3, options)
    files = sorted((work / "phantom").glob("*/dicom/*.dcm"))
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    node_port, scp_port, bare_port, floor_port = free_port(), free_port(), free_port(), free_port()
    (work / "node.toml").write_text(
        f'data_dir = "{work / "node"}"\nport = {node_port}\nquiet_period_s = 3600\n'
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "pancreas_node", "serve", "--config", str(work / "node.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (work / "storescp").mkdir()
    storescp = subprocess.Popen(
        [
            "storescp",
            "-aet",
            "STORESCP",
            "-pdu",
            "131072",
            "-od",
            str(work / "storescp"),
            str(scp_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reference = str(Path(__file__).with_name("_bare_pynetdicom_scp.py"))
    bare = subprocess.Popen(
        [sys.executable, reference, str(bare_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    floor = subprocess.Popen(
        [sys.executable, reference, str(floor_port), str(work / "floor")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    orthanc = OrthancServer(
        OrthancConfig(work_dir=work / "orthanc", http_port=free_port(), dicom_port=free_port())
    )
    orthanc.start()
    try:
        wait_echo(node_port, "PANCREAS_AI")
        wait_echo(scp_port, "STORESCP")
        wait_echo(bare_port, "BARE")
        wait_echo(floor_port, "BARE")
        receivers: dict[str, Callable[[], float]] = {
            "PancreasAI node": lambda: send(node_port, "PANCREAS_AI", files),
            "DCMTK storescp": lambda: send(scp_port, "STORESCP", files),
            "Orthanc": lambda: send(orthanc.config.dicom_port, "ORTHANC", files),
            BARE: lambda: send(bare_port, "BARE", files),
            FLOOR: lambda: send(floor_port, "BARE", files),
        }
        seconds: dict[str, list[float]] = {name: [] for name in receivers}
        for _ in range(ROUNDS):
            for name, do_send in receivers.items():
                seconds[name].append(do_send())
    finally:
        orthanc.stop()
        storescp.terminate()
        bare.terminate()
        floor.terminate()
        node.terminate()
        node.wait(timeout=60)
        storescp.wait(timeout=60)
    write_report(files, megabytes, seconds)
    print(RESULTS.read_text())
    return 0


def write_report(files: list[Path], megabytes: float, seconds: dict[str, list[float]]) -> None:
    median_mbps = {name: megabytes / statistics.median(times) for name, times in seconds.items()}
    node = median_mbps["PancreasAI node"]
    lines = [
        "# Intake throughput (make bench-intake)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.processor() or platform.machine()}), one run, {ROUNDS} interleaved rounds.",
        f"Series: {len(files)} CT slices, {megabytes:.1f} MB, explicit VR little endian, "
        "sent by DCMTK storescu over one association on loopback.",
        "The node writes each instance with fsync + atomic rename and commits a database row "
        "before answering; storescp and Orthanc do not fsync. storescp and Orthanc run with "
        "their largest receive PDU (131072 bytes); the node accepts PDUs of any size. "
        "TCP_NODELAY=1 for every DCMTK process (storescu, storescp, Orthanc).",
        "",
        "| receiver | median s | median MB/s | node / receiver |",
        "|---|---:|---:|---:|",
    ]
    for name, times in seconds.items():
        lines.append(
            f"| {name} | {statistics.median(times):.2f} | {median_mbps[name]:.1f} | "
            f"{node / median_mbps[name]:.2f}x |"
        )
    seconds_of = {name: statistics.median(times) for name, times in seconds.items()}
    node_s = seconds_of["PancreasAI node"]
    lines += [
        "",
        "Goals, with the ratios in this run:",
        f"- issue 3: node >= 0.7x storescp: {node / median_mbps['DCMTK storescp']:.2f}x",
        f"- issues 3 and 22: node >= 1.0x Orthanc: {node / median_mbps['Orthanc']:.2f}x",
        f"- issue 22: node time within 1.2x of bare pynetdicom: {node_s / seconds_of[BARE]:.2f}x",
        "",
        'What the rule "fsynced before acknowledged" costs by itself: the durability floor '
        "(pynetdicom receiving into a file, fsync, rename) takes "
        f"{seconds_of[FLOOR] / seconds_of[BARE]:.2f}x "
        f"the bare time; the node takes {node_s / seconds_of[FLOOR]:.2f}x the floor. On one "
        "association each C-STORE waits for its response, so the flush of every instance is on "
        "the critical path and the floor is the fastest any pynetdicom node that keeps the rule "
        "can be on this disk; storescp and Orthanc do not fsync.",
        "",
        "The reference rows are pynetdicom acknowledging each instance without writing it (the "
        "ceiling of any node built on pynetdicom's pure-Python DIMSE stack) and with only the "
        "durable write (the floor).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
