"""The ``pancreas-ai`` mode on a study with non-image series, in a real browser (issue 20, item 5).

The processed phantom study (CT + the node's SEG and SR) plus an RTSTRUCT, a Key Object
Selection, a Grayscale Softcopy Presentation State and a Basic Text SR
(:mod:`tests.ohif_extension.non_image_series`), numbered before the CT, stored in a real
Orthanc that serves the viewer; ``ohif-extension/e2e/non-image.mjs`` opens the mode in
chromium on the study as received (no AI result yet), then stores the SEG and SR and reloads,
and checks each time that the CT is hung and rendered and no page error or "Something went
wrong" toast appears; with the result, that the SEG loads over the CT and the panel shows it.
With OHIF's ``@ohif/seg`` hanging protocol (the mode before issue 20) the first phase fails:
the RTSTRUCT is hydrated into the CT viewport and cornerstone throws "The stack viewport has
been destroyed". Artifacts go to
``test-artifacts/ohif-e2e-non-image/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from tests.conftest import REPO_ROOT, free_port, require_executable, unavailable
from tests.ohif_extension.non_image_series import write_non_image_series
from tests.ohif_extension.processed_study import make_processed_study

EXTENSION = REPO_ROOT / "ohif-extension"
# PANCREAS_AI_OHIF_VIEWER: another prepared viewer folder (e.g. one with an older mode, to see
# this test fail on it).
VIEWER = Path(os.environ.get("PANCREAS_AI_OHIF_VIEWER", REPO_ROOT / "build" / "ohif"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e-non-image"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_mode_hangs_the_ct_beside_rtstruct_ko_pr_and_text_sr(tmp_path: Path) -> None:
    node = require_executable("node")
    require_executable(CHROMIUM)
    require_executable("/usr/sbin/Orthanc")
    if not (EXTENSION / "node_modules" / "playwright-core").is_dir():
        unavailable("ohif-extension/node_modules is missing (run `make viewer`)")
    if not (VIEWER / "pancreas-ai-ext" / "mode.js").is_file():
        unavailable("build/ohif is missing (run `make viewer`)")
    study = make_processed_study(tmp_path / "study")
    extras = write_non_image_series(study.ct_files, study.tumor_center_lps, tmp_path / "extra")
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=free_port(),
        serve_folders={"/ohif": VIEWER},
    )
    with OrthancServer(config) as server:
        # As received: the non-image series first, then the CT; the node's SEG and SR are
        # stored by the browser test itself, between its two phases.
        for path in [*extras.values(), *study.ct_files]:
            status, body = server.request(
                "/instances",
                method="POST",
                data=path.read_bytes(),
                content_type="application/dicom",
            )
            assert status == 200, f"{path.name}: {body!r}"
        description = study.description() | {
            "base_url": server.url,
            "username": "admin",
            "password": config.admin_password,
            # CT + RTSTRUCT, KO, PR, Basic Text SR (one series each)
            "received_series": 1 + len(extras),
            "ai_files": [str(study.seg_path), str(study.sr_path)],
        }
        study_json = tmp_path / "study.json"
        study_json.write_text(json.dumps(description, indent=2))
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        run = subprocess.run(
            [node, "e2e/non-image.mjs", str(study_json), str(ARTIFACTS)],
            cwd=EXTENSION,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "E2E_TIMEOUT_MS": os.environ.get("E2E_TIMEOUT_MS", "45000")},
        )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nartifacts: {ARTIFACTS}"
    checks = json.loads((ARTIFACTS / "checks.json").read_text())
    assert all(c["ok"] for c in checks) and len(checks) >= 12
    for phase in ("received", "processed"):
        assert (ARTIFACTS / f"viewer-{phase}.png").stat().st_size > 5_000
