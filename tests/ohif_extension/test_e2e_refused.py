"""A refused study in the ``pancreas-ai`` mode, in a real browser (issue 20, item 2).

The phantom CT and the node's refusal document (:func:`inference.outcome_sr.write_outcome_sr`,
as the job runner writes it for ``not-localised``) are stored in a real Orthanc that serves the
viewer but runs without the PancreasAI plugin, so the panel can only learn the outcome from the
document. ``ohif-extension/e2e/refused.mjs`` opens the mode in chromium and checks that the CT
is shown and that the panel gives the refusal's text and its reason with the measured numbers,
not "no result yet". Artifacts go to ``test-artifacts/ohif-e2e-refused/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inference import read_dicom_series
from inference.outcome_sr import write_outcome_sr
from pancreas_contracts.status import STATUS_TEXT, StudyStatus
from phantom import generate_cohort
from tests.conftest import REPO_ROOT
from tests.ohif_extension.browser import require_browser, run_script, viewer_site
from tests.ohif_extension.processed_study import BUNDLE, SMALL

ARTIFACTS = REPO_ROOT / "test-artifacts" / "ohif-e2e-refused"

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: What the runner measured when the localisers disagreed (the real NIH case's numbers).
DETAILS = {"confidence": 0.07, "min_confidence": 0.3, "localisers_apart_mm": 148.0}


def test_a_refused_study_shows_its_reason_in_the_panel(tmp_path: Path) -> None:
    node = require_browser()
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
    with viewer_site(tmp_path / "orthanc") as site:
        site.store([*ct_files, document])
        description = site.credentials() | {
            "study_uid": series.study_instance_uid,
            "series_uid": series.series_instance_uid,
            "status_text": STATUS_TEXT[StudyStatus.REFUSED],
            "reason_parts": ["not-localised", "148"],
        }
        checks = run_script(node, "refused.mjs", description, ARTIFACTS, timeout_s=180)
    assert all(c["ok"] for c in checks) and len(checks) >= 5
