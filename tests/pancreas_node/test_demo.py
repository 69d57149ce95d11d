"""``pancreas-node demo`` end to end on free ports: routed, analysed, delivered to Orthanc."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pancreas_node.cli import main
from tests.conftest import free_port, require_executable

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_reaches_orthanc_and_the_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_executable("storescu")
    require_executable("/usr/sbin/Orthanc")
    args = ["demo", "--workdir", str(tmp_path), "--http-port", str(free_port())]
    args += ["--dicom-port", str(free_port()), "--node-port", str(free_port())]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Study stored in Orthanc" in out
    assert "analyze by rule 'portal-venous abdominal CT'" in out
    # The job's state when the table is printed: the worker may already have claimed it.
    assert re.search(r"[0-9a-f]{8} (queued|running|done|delivered)", out)
    assert "/dicom-web/studies/" in out
    assert "plugin route, HTTP 200" in out
    assert "Clinical registry" in out and "of 17 variables found" in out
    # The shipped demo bundle analyses the series; SEG, SR and PDF reach Orthanc.
    assert "Model bundle:" in out and "NCCN category (network):" in out
    assert "Timings (s):" in out and "sent to Orthanc" in out
    for modality in ("SEG", "SR", "DOC"):
        assert f"│ {modality} " in out
