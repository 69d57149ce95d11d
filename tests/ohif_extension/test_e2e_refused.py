"""A refused study in the ``pancreas-ai`` mode, in a real browser (issue 20, item 2).

The phantom CT and the node's refusal document (:func:`inference.outcome_sr.write_outcome_sr`,
as the job runner writes it for ``not-localised``) are stored in a real Orthanc that serves the
viewer but runs without the PancreasAI plugin, so the panel can only learn the outcome from the
document. ``ohif-extension/e2e/refused.mjs`` opens the mode in chromium and checks that the CT
is shown and that the panel gives the refusal's text and its reason with the measured numbers,
not "no result yet". Artifacts go to ``test-artifacts/ohif-e2e-refused/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from inference import read_dicom_series
from inference.outcome_sr import write_outcome_sr
from pancreas_contracts.status import STATUS_TEXT, StudyStatus
from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from phantom import generate_cohort
from tests.conftest import REPO_ROOT, free_port, require_executable, unavailable
from tests.ohif_extension.processed_study import BUNDLE, SMALL

EXTENSION = REPO_ROOT / "ohif-extension"
VIEWER = Path(os.environ.get("PANCREAS_AI_OHIF_VIEWER", REPO_ROOT / "build" / "ohif"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e-refused"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: What the runner measured when the localisers disagreed (the real NIH case's numbers).
DETAILS = {"confidence": 0.07, "min_confidence": 0.3, "localisers_apart_mm": 148.0}


def test_a_refused_study_shows_its_reason_in_the_panel(tmp_path: Path) -> None:
    node = require_executable("node")
    require_executable(CHROMIUM)
    require_executable("/usr/sbin/Orthanc")
    if not (EXTENSION / "node_modules" / "playwright-core").is_dir():
        unavailable("ohif-extension/node_modules is missing (run `make viewer`)")
    if not (VIEWER / "pancreas-ai-ext" / "mode.js").is_file():
        unavailable("build/ohif is missing (run `make viewer`)")
    (patient,) = generate_cohort(tmp_path / "phantom", n=1, seed=5, options=SMALL)
    ct_files = sorted(patient.dicom_dir.glob("*.dcm"))
    series = read_dicom_series(ct_files)
    details_text = ", ".join(f"{name} {value:g}" for name, value in DETAILS.items())
    document = write_outcome_sr(
        ct_files,
        tmp_path / "out",
        status=StudyStatus.REFUSED,
        reason="not-localised",
        details=DETAILS,
        bundle=BUNDLE,
        details_text=details_text,
    )
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=free_port(),
        serve_folders={"/ohif": VIEWER},
    )
    with OrthancServer(config) as server:
        for path in [*ct_files, document]:
            status, body = server.request(
                "/instances",
                method="POST",
                data=path.read_bytes(),
                content_type="application/dicom",
            )
            assert status == 200, f"{path.name}: {body!r}"
        description = {
            "base_url": server.url,
            "username": "admin",
            "password": config.admin_password,
            "study_uid": series.study_instance_uid,
            "series_uid": series.series_instance_uid,
            "status_text": STATUS_TEXT[StudyStatus.REFUSED],
            "reason_parts": ["not-localised", "148"],
        }
        study_json = tmp_path / "study.json"
        study_json.write_text(json.dumps(description, indent=2))
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        run = subprocess.run(
            [node, "e2e/refused.mjs", str(study_json), str(ARTIFACTS)],
            cwd=EXTENSION,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "E2E_TIMEOUT_MS": os.environ.get("E2E_TIMEOUT_MS", "60000")},
        )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nartifacts: {ARTIFACTS}"
    checks = json.loads((ARTIFACTS / "checks.json").read_text())
    assert all(c["ok"] for c in checks) and len(checks) >= 5
