"""The browser tests' shared harness: a real Orthanc serving the viewer, and one e2e script.

Each browser test stores its study in an Orthanc (Debian) that serves the prebuilt OHIF viewer
at ``/ohif/`` (``make viewer``), writes what the script needs to ``study.json`` and runs one
``ohif-extension/e2e/*.mjs`` script, which drives Debian's chromium with playwright-core and
writes ``checks.json``, screenshots and the browser console to its artifact folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from tests.conftest import REPO_ROOT, free_port, require_executable, unavailable

EXTENSION = REPO_ROOT / "ohif-extension"
#: PANCREAS_AI_OHIF_VIEWER: another prepared viewer folder (e.g. one built from an older
#: extension, to see a test fail on it).
VIEWER = Path(os.environ.get("PANCREAS_AI_OHIF_VIEWER", REPO_ROOT / "build" / "ohif"))
CHROMIUM = "/usr/bin/chromium"


def require_browser() -> str:
    """Node.js, chromium, Orthanc, playwright-core and the built viewer; return ``node``."""
    node = require_executable("node")
    require_executable(CHROMIUM)
    require_executable("/usr/sbin/Orthanc")
    if not (EXTENSION / "node_modules" / "playwright-core").is_dir():
        unavailable("ohif-extension/node_modules is missing (run `make viewer`)")
    if not (VIEWER / "pancreas-ai-ext" / "extension.js").is_file():
        unavailable("build/ohif is missing (run `make viewer`)")
    return node


@dataclass(frozen=True)
class ViewerSite:
    """A running Orthanc that serves the viewer."""

    server: OrthancServer
    config: OrthancConfig

    def store(self, paths: Iterable[Path]) -> None:
        """Store DICOM files through Orthanc's REST API (each must be accepted)."""
        for path in paths:
            status, body = self.server.request(
                "/instances",
                method="POST",
                data=path.read_bytes(),
                content_type="application/dicom",
            )
            assert status == 200, f"{path.name}: {body!r}"

    def credentials(self) -> dict[str, str]:
        """The ``study.json`` keys every script reads to reach Orthanc."""
        return {
            "base_url": self.server.url,
            "username": "admin",
            "password": self.config.admin_password,
        }


@contextmanager
def viewer_site(work_dir: Path) -> Iterator[ViewerSite]:
    """An Orthanc on free loopback ports serving :data:`VIEWER` at ``/ohif``."""
    config = OrthancConfig(
        work_dir=work_dir,
        http_port=free_port(),
        dicom_port=free_port(),
        serve_folders={"/ohif": VIEWER},
    )
    with OrthancServer(config) as server:
        yield ViewerSite(server, config)


def run_script(
    node: str,
    script: str,
    description: Mapping[str, Any],
    artifacts: Path,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``ohif-extension/e2e/<script>`` on ``description``; return its checks.

    The artifact folder is emptied first. Fails the test (with the script's output) when the
    script exits non-zero.
    """
    shutil.rmtree(artifacts, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="pancreas-ai-e2e-") as folder:
        study_json = Path(folder) / "study.json"  # holds Orthanc's password: not an artifact
        study_json.write_text(json.dumps(dict(description), indent=2))
        run = subprocess.run(
            [node, f"e2e/{script}", str(study_json), str(artifacts)],
            cwd=EXTENSION,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, **(env or {})},
        )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nartifacts: {artifacts}"
    checks: list[dict[str, Any]] = json.loads((artifacts / "checks.json").read_text())
    return checks
