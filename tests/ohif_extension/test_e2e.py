"""The OHIF extension in a real browser against a real Orthanc (issue 8).

Orthanc (Debian) serves the prebuilt OHIF 3.13 viewer with the extension at ``/ohif/``
(ServeFolders, prepared by ``make viewer``) and holds a processed phantom study: CT, the SEG,
the PDAC detector's lesion SEG and the TID 1500 SR written by the node's writers.
``ohif-extension/e2e/run.mjs`` drives Debian's chromium with playwright-core and checks the
panel against ``result.json``, the SEG overlay at the tumor, a vessel row's segment highlight,
the lesion SEG overlay at the detected lesion (issue 23), the lymph-node list with the N
estimate, the jump to each node and the node SEG's colour at it (issue 24), the prognosis
section (risk group badge, death probability by 1/2/3 years, TNM inputs; issue 25) and the
worklist with its N and risk columns; screenshots and the browser console go to
``test-artifacts/ohif-e2e/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inference.dicom_codes import (
    DETECTION_SEG_SERIES_DESCRIPTION,
    DETECTION_SEG_SERIES_NUMBER,
    LYMPH_NODE_SEG_SERIES_NUMBER,
)
from tests.conftest import REPO_ROOT
from tests.ohif_extension.browser import EXTENSION, require_browser, run_script, viewer_site
from tests.ohif_extension.processed_study import make_processed_study

ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e"

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


def test_lesion_seg_series_matches_the_writer() -> None:
    """The viewer finds the lesion SEG by the series number and description the node writes."""
    source = (EXTENSION / "src" / "lesions.ts").read_text(encoding="utf-8")
    number = re.search(r"DETECTION_SEG_SERIES_NUMBER = (\d+);", source)
    description = re.search(r'DETECTION_SEG_SERIES_DESCRIPTION = "([^"]*)";', source)
    assert number is not None and int(number.group(1)) == DETECTION_SEG_SERIES_NUMBER
    assert description is not None and description.group(1) == DETECTION_SEG_SERIES_DESCRIPTION


def test_node_seg_series_matches_the_writer() -> None:
    """The viewer finds the lymph-node SEG by the series number the node writes."""
    source = (EXTENSION / "src" / "lymphNodes.ts").read_text(encoding="utf-8")
    number = re.search(r"LYMPH_NODE_SEG_SERIES_NUMBER = (\d+);", source)
    assert number is not None and int(number.group(1)) == LYMPH_NODE_SEG_SERIES_NUMBER


def test_viewer_panel_overlay_and_worklist(tmp_path: Path) -> None:
    node = require_browser()
    study = make_processed_study(tmp_path / "study")
    with viewer_site(tmp_path / "orthanc") as site:
        site.store(study.files())
        description = study.description() | site.credentials()
        checks = run_script(node, "run.mjs", description, ARTIFACTS, timeout_s=240)
    assert all(c["ok"] for c in checks) and len(checks) >= 32
    names = {c["name"] for c in checks}
    assert "lesion SEG overlay is yellow (lesion colour) at the detected lesion" in names
    # Lymph nodes (issue 24): the list, the N estimate, each node's jump and its overlay colour.
    lymph_nodes = study.result.lymph_nodes
    assert lymph_nodes is not None and len(lymph_nodes.nodes) == 2
    assert {
        "N estimate",
        "worklist shows the N estimate",
        "worklist filters by the N estimate",
    } <= names
    for finding in lymph_nodes.nodes:
        colour = "red" if finding.suspicious else "blue"
        assert f"node {finding.node_id}: the viewport jumps to it" in names
        assert f"node SEG overlay is {colour} at node {finding.node_id}" in names
    # Survival prognosis (issue 25): the panel's section and the worklist's risk column.
    prognosis = study.result.prognosis
    assert prognosis is not None and prognosis.risk_group == "high"
    assert {
        "prognosis risk group",
        "prognosis line",
        "prognosis 3-year probability shown",
        "prognosis TNM inputs with their source",
        "worklist shows the risk group",
        "worklist filters by the risk group",
        "worklist sorts by risk",
    } <= names
    shots = (
        "viewer.png",
        "viewer-tumor.png",
        "viewer-smv.png",
        "viewer-lesion.png",
        "viewer-nodes.png",
        "viewer-prognosis.png",
    )
    for shot in shots:
        assert (ARTIFACTS / shot).stat().st_size > 10_000
    assert (ARTIFACTS / "worklist.png").stat().st_size > 10_000
