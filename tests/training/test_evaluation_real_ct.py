"""The real-CT part of ``pancreas-node evaluate``: NIH Pancreas-CT 0001 with the shipped bundle.

The case is read-only under the shared data folder (``tests/conftest.py``: skipped where absent,
a failure in CI). The shipped demo bundle is run on it as the node would; when its learned
localiser refuses, the evaluation must say so and still score the segmentation forced past
the refusal. Checked against direct computations: the distances from the mask's centroid and
the pancreas Dice of the label map the forced run wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.bundle import load_bundle
from inference.volume import read_nifti
from inference.volume_io import read_dicom_series
from tests.conftest import REPO_ROOT, require_shared_data
from training._evaluation_pipeline import FORCED_NOTE, PipelineProbe
from training._evaluation_real_ct import NIH_CASE, evaluate_real_ct

torch.set_num_threads(2)

DEMO = REPO_ROOT / "bundles" / "demo"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    case = require_shared_data(NIH_CASE)
    out = tmp_path_factory.mktemp("real")
    return evaluate_real_ct(case, PipelineProbe(DEMO, "cpu"), out), case, out


@pytest.mark.slow
def test_localiser_distances_from_the_mask_centroid(
    real: tuple[dict[str, Any], Path, Path], record_property: Callable[[str, object], None]
) -> None:
    report, case, _ = real
    mask = read_nifti(case / "pancreas_label.nii.gz")
    centroid = mask.voxel_to_world(np.argwhere(np.asarray(mask.array) > 0)).mean(axis=0)
    np.testing.assert_allclose(report["mask_centroid_mm"], centroid, atol=1e-6)
    learned = load_bundle(DEMO).localiser
    assert learned is not None  # the shipped bundle has a learned localiser
    estimate = learned(read_dicom_series(case / "dicom").volume)
    distance = float(np.linalg.norm(np.subtract(estimate.centre_mm, centroid)))
    assert report["learned_localiser"]["distance_mm"] == pytest.approx(distance, abs=1e-3)
    record_property("learned_localiser_distance_mm", round(distance, 1))
    # The landmarks: 17 mm measured (tests/inference/test_analysis_localise.py).
    assert report["landmarks"]["distance_mm"] <= 30.0
    assert report["node_localisation"]["centre_mm"] == pytest.approx(estimate.centre_mm)


@pytest.mark.slow
def test_pancreas_dice_reported_also_past_a_refusal(
    real: tuple[dict[str, Any], Path, Path], record_property: Callable[[str, object], None]
) -> None:
    report, _, out = real
    node = report["node"]
    assert report["forced"] == (node["reason"] == "not-localised")
    if report["forced"]:
        # The refusal is reported, and the forced run is what was scored.
        assert node["category"] is None and "not located" in node["message"]
        assert report["forced_answer"]["reason"] is None
        result = json.loads((out / "forced" / "result.json").read_text(encoding="utf-8"))
        assert FORCED_NOTE in result["warnings"]
        # Also with the cube at the landmarks (17 mm from the mask centroid): it must overlap.
        placed = report["segmentation_at_landmarks"]
        assert placed is not None and placed["pancreas_dice"] > 0.0
        record_property("pancreas_dice_at_landmarks", round(placed["pancreas_dice"], 3))
    else:
        assert not (out / "forced").exists() and "segmentation_at_landmarks" not in report
    seg = report["segmentation"]
    assert seg is not None
    dice = seg["pancreas_dice"]
    assert dice is not None and 0.0 <= dice <= 1.0
    assert seg["pancreas_true_ml"] == pytest.approx(
        np.count_nonzero(
            np.asarray(read_nifti(require_shared_data(NIH_CASE) / "pancreas_label.nii.gz").array)
        )
        * 0.859375**2
        / 1000.0
    )
    record_property("pancreas_dice", round(dice, 3))
    record_property("forced", report["forced"])
