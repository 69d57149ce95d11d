"""Commands that do not analyse never import torch or MONAI (issue 19).

``--help``, ``status`` and ``serve`` without a bundle must not pay torch's import time and
memory. Each runs in a fresh interpreter (this test process may have imported torch already)
that reports which ``torch``/``monai`` modules it has loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from db import NodeDatabase
from tests.conftest import free_port

_HEAVY = "{'torch', 'monai'}"
#: Prints, as JSON, the torch/monai modules loaded so far.
_REPORT = f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {_HEAVY})))"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANCREAS_AI_")}
    env["PANCREAS_AI_DATA_DIR"] = str(data_dir)
    return env


def _heavy_modules_after(argv: list[str], tmp_path: Path) -> list[str]:
    """Run ``main(argv)`` in a fresh interpreter; the torch/monai modules it loaded."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from pancreas_node.cli import main
        main({argv!r})
        {_REPORT}
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_env(tmp_path / "data"),
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_help_imports_no_torch(tmp_path: Path) -> None:
    assert _heavy_modules_after(["--help"], tmp_path) == []


def test_status_imports_no_torch(tmp_path: Path) -> None:
    database = NodeDatabase(f"sqlite:///{tmp_path / 'data' / 'node.db'}")
    database.upgrade()
    database.dispose()
    assert _heavy_modules_after(["status"], tmp_path) == []


#: Runs ``serve`` in the main thread (it installs signal handlers); a watcher thread waits until
#: the port accepts connections, reports the modules, then ends serve with SIGTERM.
_SERVE = textwrap.dedent(
    f"""
    import json, os, signal, socket, sys, threading, time
    from pancreas_node.cli import main

    port = int(sys.argv[1])

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            print("NOT LISTENING", flush=True)
        {_REPORT}
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    sys.exit(main(["serve", "--port", str(port)]))
    """
)


def test_serve_without_a_bundle_imports_no_torch(tmp_path: Path) -> None:
    port = free_port()
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _SERVE, str(port)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_env(tmp_path / "data"),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "NOT LISTENING" not in lines, done.stderr
    assert json.loads(lines[-1]) == []
    assert f"listening on 127.0.0.1:{port}" in done.stderr
    assert time.monotonic() - start < 60


def test_the_watcher_would_see_torch(tmp_path: Path) -> None:
    # The check itself: a process that does import torch is reported as such.
    code = f"import json, sys\nimport torch\n{_REPORT}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "torch" in json.loads(done.stdout.strip().splitlines()[-1])
