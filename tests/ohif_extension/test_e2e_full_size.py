"""Full-size studies in OHIF through Orthanc's DICOMweb: the SEG overlay shows (issue 20).

Same harness as ``test_e2e.py`` (Orthanc from Debian serving the prebuilt OHIF 3.13 viewer,
``ohif-extension/e2e/run.mjs`` driving Debian's chromium), with two clinical-size phantoms:

- the demo's own (``PhantomOptions()``, seed 7: 427 x 427 pixels x 200 slices of 1 mm), whose
  SEG the viewer never showed ("Loading SEG..."): bit-packed with all its frames, its pixel
  data had an odd length, padded by one byte, that OHIF's parser refused. It is now FRACTIONAL,
  RLE Lossless.
- 512 x 512 x 300 slices of 1 mm: a BINARY SEG without its empty frames.

Artifacts go to ``test-artifacts/ohif-e2e-<size>/``.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from phantom import PhantomOptions
from tests.conftest import REPO_ROOT
from tests.ohif_extension.browser import require_browser, run_script, viewer_site
from tests.ohif_extension.processed_study import make_processed_study

DEMO_SEED = 7
#: id: (seed, phantom options, expected rows x columns x slices, SEG type).
STUDIES = {
    "demo-427x427x200": (DEMO_SEED, PhantomOptions(), (427, 427, 200), "FRACTIONAL"),
    "512x512x300": (
        DEMO_SEED,
        PhantomOptions(fov_mm=(358.4, 358.4, 300.0), pixel_spacing=0.7, slice_thickness=1.0),
        (512, 512, 300),
        "BINARY",
    ),
}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("size", list(STUDIES))
def test_full_size_seg_overlay_in_ohif(size: str, tmp_path: Path) -> None:
    seed, options, expected_geometry, seg_type = STUDIES[size]
    artifacts = REPO_ROOT / "test-artifacts" / f"ohif-e2e-{size}"
    node = require_browser()
    study = make_processed_study(tmp_path / "study", seed=seed, options=options)
    ct = pydicom.dcmread(study.ct_files[0], stop_before_pixels=True)
    geometry = (int(ct.Rows), int(ct.Columns), len(study.ct_files))
    assert geometry == expected_geometry
    assert pydicom.dcmread(study.seg_path, stop_before_pixels=True).SegmentationType == seg_type
    with viewer_site(tmp_path / "orthanc") as site:
        site.store(study.files())
        description = study.description() | site.credentials()
        # Each browser wait may take up to 3 min: 200-300 CT slices load on 2 busy cores.
        found = run_script(
            node,
            "run.mjs",
            description,
            artifacts,
            timeout_s=540,
            env={"E2E_TIMEOUT_MS": "180000"},
        )
    checks = {c["name"]: c for c in found}
    overlay = "SEG overlay is red (tumor colour) at the tumor centre"
    assert checks[overlay]["ok"], checks[overlay]
    assert all(c["ok"] for c in checks.values()) and len(checks) >= 25
    assert (artifacts / "viewer-tumor.png").stat().st_size > 10_000
