"""Test-time flips end to end (settings ``tta_flips``; issue 21): a one-model bundle's
uncertainty is the spread over its flip passes, and every output says so.

The untrained test bundle segments its whole cube as tumor (a result with a category).
"""

from __future__ import annotations

import highdicom as hd
import pytest
import torch

from inference.analysis import AnalysisOutput, Analyzer
from inference.dicom_codes import NETWORK_CATEGORY, UNCERTAINTY
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import AnalysisResult
from phantom import PhantomOptions, generate_cohort
from tests.inference._writers_fixtures import dciodvfy_errors
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def flipped(tmp_path_factory: pytest.TempPathFactory) -> AnalysisOutput:
    # The test bundle labels its whole cube: the scan must hold the whole cube.
    options = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
    root = tmp_path_factory.mktemp("flips")
    series = generate_cohort(root / "phantom", 1, 5, options).patients[0].dicom_dir
    bundle = build_test_bundle(root / "bundle", fill_label="tumor", members=1)
    analyzer = Analyzer(bundle, "cpu", tta_flips=True)
    return analyzer.analyze(series, None, out_dir=root / "out", job_id="job-flips")


def test_a_one_model_bundle_gets_the_spread_of_its_flip_passes(flipped: AnalysisOutput) -> None:
    stored = AnalysisResult.model_validate_json(flipped.result_json.read_text())
    assert stored == flipped.result
    category = stored.category
    assert category is not None and category.ensemble_size == 1 and category.passes == 4
    assert category.has_spread and category.uncertainty > 0.0
    assert "uncertainty: spread over 4 test-time flip passes per model" in stored.warnings
    assert not any(w.startswith("single-model bundle") for w in stored.warnings)
    sr_path = flipped.result_json.parent / "sr.dcm"
    assert dciodvfy_errors(sr_path) == []
    content = hd.sr.srread(sr_path).content
    assert isinstance(content, hd.sr.MeasurementReport)
    finding = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in content.get_image_measurement_groups(finding_type=finding)
        if g.get_qualitative_evaluations(name=NETWORK_CATEGORY)
    ]
    (uncertainty,) = group.get_measurements(name=UNCERTAINTY)
    assert uncertainty.value == pytest.approx(category.uncertainty, abs=1e-6)
