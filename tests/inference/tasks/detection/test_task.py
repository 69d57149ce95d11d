"""Detection bundles (save, verify, load) and the inference API on a Volume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bundle import BundleError
from inference.tasks.detection.bundle import (
    DetectionSettings,
    load_detection_bundle,
    save_detection_bundle,
)
from inference.tasks.detection.model import MultiTaskNet, NetConfig, build_stage1
from inference.tasks.detection.roi import cube_affine, roi_centre
from inference.tasks.detection.task import DetectionModel, DetectionResult
from inference.volume import Volume

torch.set_num_threads(1)
_S1 = NetConfig(cube_size=32, cube_mm=256.0, base_filters=4, max_filters=16, max_pools=3)
_S2 = NetConfig(cube_size=32, cube_mm=96.0, base_filters=4, max_filters=16, max_pools=3,
                fpn_channels=8)  # fmt: skip


def _bundle(out: Path) -> Path:
    torch.manual_seed(0)
    stage1 = build_stage1(_S1)
    with torch.no_grad():  # a stage 1 that never finds a pancreas: the fallback ROI
        stage1.output_block.conv.conv.bias.copy_(torch.tensor([0.0, -50.0]))
    return save_detection_bundle(
        out, (stage1, _S1), MultiTaskNet(_S2), DetectionSettings(report_threshold=0.0),
        name="test", version="0", config_sha256="c" * 64, data_hash="d" * 64,
        metrics={"auroc": 0.5}, weights_dtype="float16",
    )  # fmt: skip


def _ct() -> Volume:
    rng = np.random.default_rng(0)
    array = rng.normal(0.0, 20.0, (60, 60, 40)).astype(np.int16)
    array[25:35, 25:35, 15:25] += 100
    affine = np.diag([-2.5, -2.5, 5.0, 1.0])  # LPS-like storage: flips are handled
    return Volume(array, affine)


def test_bundle_round_trip_in_float16_and_refusals(tmp_path: Path) -> None:
    meta_path = _bundle(tmp_path / "b")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    assert meta["task"] == "detection" and meta["stages"]["stage2"]["weights_dtype"] == "float16"
    assert meta["stages"]["stage1"]["plan"]["strides"][0] == [1, 1, 1]
    loaded = load_detection_bundle(tmp_path / "b")
    assert loaded.version == "test 0" and loaded.stage2.config == _S2
    assert all(p.dtype == torch.float32 for p in loaded.stage2.parameters())
    weights = tmp_path / "b" / "stage2.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(BundleError, match="sha256"):
        load_detection_bundle(tmp_path / "b")
    meta["task"] = "resectability"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(BundleError, match="task"):
        load_detection_bundle(meta_path)


def test_detect_returns_a_frozen_result_with_scores_and_lesions(tmp_path: Path) -> None:
    _bundle(tmp_path / "b")
    model = DetectionModel(load_detection_bundle(tmp_path / "b"))
    analysis = model.analyse(_ct())
    result = analysis.result
    assert isinstance(result, DetectionResult)
    assert 0.0 <= result.pdac_likelihood <= 1.0
    assert result.pdac_likelihood == result.scores.combined
    assert result.scores.detection_max == analysis.candidates.max_probability
    assert result.model_version == "test 0" and set(result.timings_s) == {
        "stage1", "stage2", "lesions"}  # fmt: skip
    assert len(result.lesions) == len(analysis.candidates.probabilities)  # threshold 0
    assert analysis.lesion_probability.shape == (32, 32, 32)
    assert not result.pancreas_found and "no pancreas" in result.warnings[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.pdac_likelihood = 1.0  # type: ignore[misc]


def test_roi_centre_is_the_bounding_box_centre_of_the_largest_component() -> None:
    mask = np.zeros((32, 32, 32), dtype=bool)
    mask[2:4, 2:4, 2:4] = True  # small: ignored
    mask[10:21, 14:17, 8:13] = True
    affine = cube_affine((0.0, 0.0, 0.0), _S1)
    centre = roi_centre(mask, affine)
    expected = affine @ np.array([15.0, 15.0, 10.0, 1.0])
    assert centre == pytest.approx(tuple(expected[:3]))
    assert roi_centre(np.zeros((4, 4, 4), dtype=bool), affine) is None
