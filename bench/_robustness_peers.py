"""The real processes of the robustness campaign: the node, a DCMTK storescp destination,
a pynetdicom sender and a C-ECHO probe (``make bench-robustness``; issue 22, item 6).

Everything runs on loopback ports; nothing is mocked. The node is ``pancreas-node serve`` as
a child process, so that ``kill -9`` is a real crash and its memory is its own.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

#: Routing rules of the campaign's node: every CT series of 10 slices or more is analysed.
CAMPAIGN_RULES = """
default_action = "ignore"
[[rules]]
name = "campaign CT"
action = "analyze"
[rules.when]
modality = ["CT"]
min_slices = 10
max_slice_thickness_mm = 5.0
"""

#: Largest instance the campaign's node accepts, in MB (the bombs and oversize instances
#: are several times larger).
CAMPAIGN_MAX_INSTANCE_MB = 64


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until it holds; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def echo_seconds(port: int, timeout_s: float = 5.0) -> float | None:
    """Seconds until the node at ``port`` answered a C-ECHO with Success, or ``None``."""
    ae = AE(ae_title="PROBE")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = timeout_s
    ae.add_requested_context(Verification)
    start = time.monotonic()
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    elapsed = time.monotonic() - start
    if not status or int(status.Status) != 0 or elapsed > timeout_s:
        return None
    return elapsed


def send_files(port: int, files: Iterable[Path], timeout_s: float = 30.0) -> set[str]:
    """C-STORE ``files`` over one association; the SOPInstanceUIDs acknowledged with Success.

    A file the node refuses, an abort or a node killed mid-association simply ends the set
    there: what was acknowledged is what the node owes.
    """
    ae = AE(ae_title="CAMPAIGN")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = timeout_s
    ae.add_requested_context(CTImageStorage)
    acknowledged: set[str] = set()
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    if not assoc.is_established:
        return acknowledged
    try:
        for path in files:
            # Sent from the file as it is, undecoded: the node must judge what the bytes say.
            meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            status = assoc.send_c_store(path)
            if not assoc.is_established or not status:
                break
            if int(status.Status) == 0:
                acknowledged.add(str(meta.file_meta.MediaStorageSOPInstanceUID))
    finally:
        if assoc.is_established:
            assoc.release()
    return acknowledged


@dataclass
class NodeUnderTest:
    """``pancreas-node serve`` in ``workdir`` on a free port, delivering to ``destination_port``.

    Every start appends to ``workdir/node.log`` (stdout and stderr), so a crash's traceback
    stays readable after the campaign.
    """

    workdir: Path
    destination_port: int
    bundle: Path | None
    extra_settings: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        """The node's data directory (spool, database, results)."""
        return self.workdir / "data"

    @property
    def database_url(self) -> str:
        """The node's SQLite database."""
        return f"sqlite:///{(self.data_dir / 'node.db').resolve()}"

    def write_config(self) -> Path:
        """The node's settings TOML."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules = self.workdir / "rules.toml"
        rules.write_text(CAMPAIGN_RULES, encoding="utf-8")
        bundle = f'bundle_path = "{self.bundle}"\ndevice = "cpu"\n' if self.bundle else ""
        config = self.workdir / "node.toml"
        config.write_text(
            f'data_dir = "{self.data_dir}"\nport = {self.port}\nquiet_period_s = 2.0\n'
            f'routing_rules = "{rules}"\nmax_instance_mb = {CAMPAIGN_MAX_INSTANCE_MB}\n'
            f"job_lease_s = 30.0\n{bundle}{self.extra_settings}\n"
            f'[[destinations]]\nae_title = "STORESCP"\nhost = "127.0.0.1"\n'
            f"port = {self.destination_port}\n",
            encoding="utf-8",
        )
        return config

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the node and wait until it answers C-ECHO."""
        config = self.write_config()
        log = (self.workdir / "node.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pancreas_node", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"pancreas-node serve exited with {process.returncode}")
            return echo_seconds(self.port, timeout_s=2.0) is not None

        wait_for(ready, timeout_s, "the node to answer C-ECHO")

    def alive(self) -> bool:
        """Whether the node process is running."""
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """``kill -9`` the node and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()

    def memory_mb(self, key: str = "VmHWM") -> float:
        """``VmHWM`` (peak resident) or ``VmRSS`` of the node process, in MB (0 if gone)."""
        if self.process is None:
            return 0.0
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        except OSError:
            return 0.0
        for line in text.splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def storescp(folder: Path, port: int) -> Iterator[Path]:
    """A real DCMTK storescp writing every object it receives into ``folder``, uniquely named
    (``--unique-filenames``), so that a second delivery of an object is a second file."""
    binary = shutil.which("storescp")
    if binary is None:
        raise RuntimeError("storescp not found (DCMTK: make system-deps)")
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder.parent / "storescp.log").open("wb")
    process = subprocess.Popen(
        [binary, "--output-directory", str(folder), "--unique-filenames", "--aetitle",
         "STORESCP", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"storescp exited with {process.returncode}")
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 30.0, "storescp to listen")
        yield folder
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        log.close()
