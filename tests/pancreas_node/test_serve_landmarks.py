"""A real `pancreas-node serve`: the worker localises with the node's phase-check landmarks.

The node runs with ``parallel_writing``: its SEG is written by the helper process the analyzer
spawned, and that helper ends with the node.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from db import NodeDatabase, list_recent_jobs
from inference.landmark_store import series_key
from tests.conftest import free_port, require_executable
from tests.dicom_node.conftest import make_series
from tests.dicom_node.test_crash import echo_ok
from tests.dicom_node.test_scp import storescu, wait_for

#: The default rule's contrast-phase condition, on the small test phantom's geometry.
PHASE_RULES = """
default_action = "ignore"
[[rules]]
name = "portal-venous CT"
action = "analyze"
[rules.when]
modality = ["CT"]
min_slices = 10
max_slice_thickness_mm = 5.0
contrast_phase = ["portal-venous"]
"""


def test_the_worker_reuses_the_landmarks_of_the_routing_phase_check(tmp_path: Path) -> None:
    from training.structure_bundle import build_test_bundle

    require_executable("storescu")
    series = make_series(
        tmp_path / "phantom", seed=3, fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0,
        slice_thickness=4.0,
    )  # fmt: skip
    bundle = build_test_bundle(tmp_path / "bundle", members=1)
    data, rules, config = tmp_path / "data", tmp_path / "rules.toml", tmp_path / "node.toml"
    rules.write_text(PHASE_RULES)
    port = free_port()
    config.write_text(
        f'data_dir = "{data}"\nport = {port}\nquiet_period_s = 1.0\nrouting_rules = "{rules}"\n'
        f'bundle_path = "{bundle}"\ndevice = "cpu"\ndestinations = []\n'
        "parallel_writing = true\n"
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "pancreas_node", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    database = NodeDatabase(f"sqlite:///{data / 'node.db'}")
    try:
        wait_for(lambda: node.poll() is None and echo_ok(port), timeout_s=60)
        assert storescu(port, *series.files).returncode == 0

        def state() -> str | None:
            jobs = list_recent_jobs(database)
            return jobs[0].state.value if jobs else None

        wait_for(lambda: state() in ("done", "delivered", "failed"), timeout_s=240)
        (job,) = list_recent_jobs(database)
        assert job.state.value in ("done", "delivered"), job.state
        spooled = sorted((data / "spool").rglob("*.dcm"))
        assert len(spooled) == len(series.files)
        entries = sorted((data / "cache" / "landmarks").glob("*.json"))
        assert [p.stem for p in entries] == [series_key(spooled)]
        log = (data / "logs" / "node.log").read_text(encoding="utf-8")
        assert f"job {job.id}: localising with the landmarks of the node's phase check" in log
        (result,) = (data / "results").rglob("result.json")
        assert '"write_wait"' in result.read_text(encoding="utf-8")  # the helper wrote the SEG
        helpers = _children(node.pid)
        assert helpers, "no SEG writer process"
    finally:
        database.dispose()
        node.terminate()
        node.wait(timeout=60)
    wait_for(lambda: not any(_running(pid) for pid in helpers), timeout_s=30)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``)."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:  # the process ended while we read
            continue
        if fields.get("PPid", "").strip() == str(pid):
            children.append(int(status.parent.name))
    return children
