"""bench-scale's CPU accounting against a process tree of known CPU use (Linux /proc)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._cpu_accounting import CpuAccount, Proc

# A parent that runs three children one after another, each busy for BUSY_S of CPU, reaps
# each (so their time moves into its cutime) and then waits for stdin to close.
BUSY_S = 0.4
_TREE = f"""
import subprocess, sys
for _ in range(3):
    subprocess.run([sys.executable, "-c", '''
import time
end = time.process_time() + {BUSY_S}
while time.process_time() < end:
    pass
'''], check=True)
print("done", flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_reaped_children_count_once_in_their_parents_component() -> None:
    tree = subprocess.Popen(
        [sys.executable, "-c", _TREE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:

        def roots(_: dict[int, Proc]) -> list[int]:
            return [tree.pid]

        account = CpuAccount({"tree": roots})
        account.start(time.monotonic())
        assert tree.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            account.sample()  # sees some children alive: they must not count twice
            if tree.poll() is not None:
                break
            line = tree.stdout.readline() if _ready(tree) else ""
            if line.startswith("done"):
                break
        usage = account.stop(time.monotonic(), {"extra": 1.5})
    finally:
        if tree.stdin is not None:
            tree.stdin.close()
        tree.wait(timeout=30)
    # Three children of BUSY_S each, plus the interpreters' start-up (about 0.1 s): counting a
    # reaped child both in its parent's cutime and on its own would pass 2 * 3 * BUSY_S.
    assert 3 * BUSY_S <= usage.components["tree"] < 3 * BUSY_S + 0.6
    assert usage.components["extra"] == 1.5
    assert usage.components["benchmark"] >= 0.0
    assert usage.machine_busy_s >= usage.components["tree"] - 0.1


def _ready(process: subprocess.Popen[str]) -> bool:
    import select

    assert process.stdout is not None
    return bool(select.select([process.stdout], [], [], 0.05)[0])
