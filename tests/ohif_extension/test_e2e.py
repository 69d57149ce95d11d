"""The OHIF extension in a real browser against a real Orthanc (issue 8).

Orthanc (Debian) serves the prebuilt OHIF 3.13 viewer with the extension at ``/ohif/``
(ServeFolders, prepared by ``make viewer``) and holds a processed phantom study: CT, the SEG
and the TID 1500 SR written by the node's writers. ``ohif-extension/e2e/run.mjs`` drives
Debian's chromium with playwright-core and checks the panel against ``result.json``, the SEG
overlay at the tumor, a vessel row's segment highlight and the worklist; screenshots and the
browser console go to ``test-artifacts/ohif-e2e/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from tests.conftest import REPO_ROOT, free_port, require_executable, unavailable
from tests.ohif_extension.processed_study import make_processed_study

EXTENSION = REPO_ROOT / "ohif-extension"
VIEWER = REPO_ROOT / "build" / "ohif"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_labels_json_matches_the_contracts(tmp_path: Path) -> None:
    """The panel legend's JSON is what scripts/export_ohif_labels.py writes today."""
    out = tmp_path / "labels.json"
    script = REPO_ROOT / "scripts" / "export_ohif_labels.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, cwd=REPO_ROOT)
    committed = EXTENSION / "src" / "generated" / "labels.json"
    assert json.loads(out.read_text()) == json.loads(committed.read_text()), (
        "run `npm run labels` in ohif-extension/"
    )


def test_viewer_panel_overlay_and_worklist(tmp_path: Path) -> None:
    node = require_executable("node")
    require_executable(CHROMIUM)
    require_executable("/usr/sbin/Orthanc")
    if not (EXTENSION / "node_modules" / "playwright-core").is_dir():
        unavailable("ohif-extension/node_modules is missing (run `make viewer`)")
    if not (VIEWER / "pancreas-ai-ext" / "extension.js").is_file():
        unavailable("build/ohif is missing (run `make viewer`)")
    study = make_processed_study(tmp_path / "study")
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=free_port(),
        serve_folders={"/ohif": VIEWER},
    )
    with OrthancServer(config) as server:
        for path in study.files():
            data = path.read_bytes()
            status, body = server.request(
                "/instances", method="POST", data=data, content_type="application/dicom"
            )
            assert status == 200, body
        description = study.description() | {
            "base_url": server.url,
            "username": "admin",
            "password": config.admin_password,
        }
        study_json = tmp_path / "study.json"
        study_json.write_text(json.dumps(description, indent=2))
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        run = subprocess.run(
            [node, "e2e/run.mjs", str(study_json), str(ARTIFACTS)],
            cwd=EXTENSION,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nartifacts: {ARTIFACTS}"
    checks = json.loads((ARTIFACTS / "checks.json").read_text())
    assert all(c["ok"] for c in checks) and len(checks) >= 25
    for shot in ("viewer.png", "viewer-tumor.png", "viewer-smv.png", "worklist.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000
