"""``kill -9`` of the node while a 300-slice series arrives loses no acknowledged instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from db import NodeDatabase, get_series, list_recent_jobs, series_instance_paths
from pancreas_contracts.job_states import JobState
from tests.conftest import free_port, require_executable
from tests.dicom_node.conftest import TEST_RULES, PhantomSeries, make_series
from tests.dicom_node.test_scp import storescu, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def long_series(tmp_path_factory: pytest.TempPathFactory) -> PhantomSeries:
    """A 300-slice phantom series (small in-plane field of view keeps it quick)."""
    return make_series(
        tmp_path_factory.mktemp("long"), seed=5, fov_mm=(100.0, 100.0, 300.0), slice_thickness=1.0
    )


def echo_ok(port: int) -> bool:
    ae = AE(ae_title="PROBE")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and int(status.Status) == 0


class NodeProcess:
    """``pancreas-node serve`` as a real child process."""

    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.port = free_port()
        self.data_dir = tmp_path / "data"
        rules = tmp_path / "rules.toml"
        rules.write_text(TEST_RULES)
        self.config = tmp_path / "node.toml"
        self.config.write_text(
            f'data_dir = "{self.data_dir}"\nport = {self.port}\nquiet_period_s = 3.0\n'
            f'routing_rules = "{rules}"\n{extra}'
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pancreas_node", "serve", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"pancreas-node serve exited with {process.returncode}")
            return echo_ok(self.port)

        wait_for(ready, timeout_s=60)

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture
def node_process(tmp_path: Path) -> Iterator[NodeProcess]:
    proc = NodeProcess(tmp_path)
    yield proc
    proc.stop()


def send_until_failure(port: int, files: tuple[Path, ...], acked: list[str]) -> None:
    ae = AE(ae_title="CRASH_SCU")
    ae.add_requested_context(
        dcmread(files[0], stop_before_pixels=True).SOPClassUID, ExplicitVRLittleEndian
    )
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    assert assoc.is_established
    for path in files:
        if not assoc.is_established:
            return
        ds = dcmread(path)
        status = assoc.send_c_store(ds)
        if not status or int(status.Status) != 0:
            return
        acked.append(str(ds.SOPInstanceUID))
    assoc.release()


def test_kill_9_during_intake_loses_no_acknowledged_instance(
    node_process: NodeProcess, long_series: PhantomSeries
) -> None:
    require_executable("storescu")
    assert len(long_series.files) == 300
    node_process.start()
    acked: list[str] = []
    sender = threading.Thread(
        target=send_until_failure, args=(node_process.port, long_series.files, acked)
    )
    sender.start()
    wait_for(lambda: len(acked) >= 100, timeout_s=120)
    node_process.kill9()
    sender.join(timeout=60)
    assert 100 <= len(acked) < 300, "the kill must land mid-series"

    node_process.start()
    database = NodeDatabase(f"sqlite:///{node_process.data_dir / 'node.db'}")
    try:
        stored = {
            Path(p).stem: Path(p)
            for p in series_instance_paths(database, long_series.SeriesInstanceUID)
        }
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged instances lost"
        for uid in acked:
            assert dcmread(stored[uid]).pixel_array.shape == (111, 111)
        assert not list(node_process.data_dir.rglob("*.tmp")), "partial files must be cleaned up"

        # The sender retries later than quiet_period_s (issue 22, D8): the truncated series
        # went quiet and got its job; then it re-sends the whole series.
        def truncated_queued() -> bool:
            return bool(list_recent_jobs(database))

        wait_for(truncated_queued, timeout_s=60)
        (truncated,) = list_recent_jobs(database)
        assert truncated.series_version == 1 and truncated.instance_count == len(stored)
        assert storescu(node_process.port, *long_series.files).returncode == 0

        def queued() -> bool:
            info = get_series(database, long_series.SeriesInstanceUID)
            return (
                info is not None
                and info.status.value == "complete"
                and bool(list_recent_jobs(database))
            )

        wait_for(lambda: queued() and len(list_recent_jobs(database)) == 2, timeout_s=60)
        info = get_series(database, long_series.SeriesInstanceUID)
        assert info is not None and info.instance_count == 300 and info.version == 2
        # The full series' job cancels the truncated one, which never runs.
        jobs = {job.series_version: job for job in list_recent_jobs(database)}
        assert jobs[2].state is JobState.QUEUED and jobs[2].instance_count == 300
        assert jobs[1].state is JobState.CANCELLED and jobs[1].superseded_by == jobs[2].id
    finally:
        database.dispose()


def test_kill_9_during_a_running_job_resumes_the_job(tmp_path: Path) -> None:
    """The analysis job of a killed node is re-run at once by the restarted node, and finishes.

    The lease (300 s, the default) outlasts the wait: the restarted node must take back its
    previous run's lease at start-up instead of waiting it out (issue 22, D9).
    """
    from training.structure_bundle import build_test_bundle

    require_executable("storescu")
    series = make_series(
        tmp_path / "phantom", seed=3, fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0,
        slice_thickness=4.0,
    )  # fmt: skip
    bundle = build_test_bundle(tmp_path / "bundle", members=1)
    extra = f'bundle_path = "{bundle}"\ndevice = "cpu"\njob_lease_s = 300.0\ndestinations = []\n'
    (tmp_path / "node").mkdir()
    node = NodeProcess(tmp_path / "node", extra)
    node.start()
    database = NodeDatabase(f"sqlite:///{node.data_dir / 'node.db'}")
    try:
        assert storescu(node.port, *series.files).returncode == 0

        def state() -> str | None:
            jobs = list_recent_jobs(database)
            return jobs[0].state.value if jobs else None

        wait_for(lambda: state() == "running", timeout_s=60)
        node.kill9()
        assert state() == "running"
        node.start()
        wait_for(lambda: state() in ("done", "delivered"), timeout_s=240)
        (job,) = list_recent_jobs(database)
        assert job.attempts == 2, "the job ran again after the crash"
        assert (node.data_dir / "results" / job.id / "result.json").is_file()
    finally:
        database.dispose()
        node.stop()
