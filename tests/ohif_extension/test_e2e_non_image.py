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

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.ohif_extension.browser import require_browser, run_script, viewer_site
from tests.ohif_extension.non_image_series import write_non_image_series
from tests.ohif_extension.processed_study import make_processed_study

ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e-non-image"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_mode_hangs_the_ct_beside_rtstruct_ko_pr_and_text_sr(tmp_path: Path) -> None:
    node = require_browser()
    study = make_processed_study(tmp_path / "study")
    extras = write_non_image_series(study.ct_files, study.tumor_center_lps, tmp_path / "extra")
    with viewer_site(tmp_path / "orthanc") as site:
        # As received: the non-image series first, then the CT; the node's SEG and SR are
        # stored by the browser test itself, between its two phases.
        site.store([*extras.values(), *study.ct_files])
        description = (
            study.description()
            | site.credentials()
            | {
                # CT + RTSTRUCT, KO, PR, Basic Text SR (one series each)
                "received_series": 1 + len(extras),
                "ai_files": [str(study.seg_path), str(study.sr_path)],
            }
        )
        checks = run_script(
            node,
            "non-image.mjs",
            description,
            ARTIFACTS,
            timeout_s=180,
            env={"E2E_TIMEOUT_MS": os.environ.get("E2E_TIMEOUT_MS", "45000")},
        )
    assert all(c["ok"] for c in checks) and len(checks) >= 12
    for phase in ("received", "processed"):
        assert (ARTIFACTS / f"viewer-{phase}.png").stat().st_size > 5_000
