"""Lymph-node bundles: save, verify, load (float16 on disk, float32 in memory), refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.bundle import BundleError
from inference.tasks.lymph_nodes.bundle import (
    LymphNodeNetworks,
    LymphNodeSettings,
    load_lymph_node_bundle,
    save_lymph_node_bundle,
)
from inference.tasks.lymph_nodes.model import NodeClassifierConfig, SegConfig, UNetConfig
from inference.tasks.lymph_nodes.patient import PatientNetConfig

torch.set_num_threads(1)
_ORGANS = UNetConfig(cube_size=32, cube_mm=128.0, base_filters=4, max_filters=16)
_SEG = SegConfig(cube_size=32, cube_mm=64.0, base_filters=4, max_filters=16)


def _save(out: Path, networks: LymphNodeNetworks) -> Path:
    return save_lymph_node_bundle(
        out, networks, LymphNodeSettings(suspicious_threshold=0.4), name="test", version="0",
        config_sha256="c" * 64, data_hash="d" * 64, metrics={"auc": 0.5},
        weights_dtype="float16",
    )  # fmt: skip


def test_bundle_round_trip_in_float16_and_refusals(tmp_path: Path) -> None:
    torch.manual_seed(0)
    networks = LymphNodeNetworks.build(
        _ORGANS, _SEG, NodeClassifierConfig(crop_size=16), PatientNetConfig()
    )
    meta_path = _save(tmp_path / "b", networks)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    assert meta["task"] == "lymph-nodes" and meta["config_sha256"] == "c" * 64
    assert set(meta["stages"]) == {"organs", "segmenter", "classifier", "patient"}
    assert all(s["weights_dtype"] == "float16" for s in meta["stages"].values())
    assert meta["attention"]["border_mm"] == 3.0 and len(meta["attention"]["structures"]) == 10
    loaded = load_lymph_node_bundle(tmp_path / "b")
    assert loaded.version == "test 0" and loaded.settings.suspicious_threshold == 0.4
    assert loaded.networks.segmenter.config == _SEG and loaded.networks.organ_config == _ORGANS
    assert all(p.dtype == torch.float32 for p in loaded.networks.classifier.parameters())
    original = networks.segmenter.state_dict()
    for key, value in loaded.networks.segmenter.state_dict().items():
        expected = original[key]
        if expected.is_floating_point():
            expected = expected.half().float()
        assert torch.equal(value, expected), key
    meta["attention"]["structures"][0]["d_max_mm"] = 17.0
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(BundleError, match="attention"):
        load_lymph_node_bundle(meta_path)
    meta["task"] = "detection"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(BundleError, match="task"):
        load_lymph_node_bundle(meta_path)


def test_an_altered_weight_file_is_refused(tmp_path: Path) -> None:
    networks = LymphNodeNetworks.build(
        _ORGANS, _SEG, NodeClassifierConfig(crop_size=16), PatientNetConfig()
    )
    _save(tmp_path / "b", networks)
    weights = tmp_path / "b" / "patient.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(BundleError, match="sha256"):
        load_lymph_node_bundle(tmp_path / "b")
    with pytest.raises(ValueError, match="weights_dtype"):
        save_lymph_node_bundle(
            tmp_path / "c", networks, LymphNodeSettings(), name="t", version="0",
            config_sha256="", data_hash="", metrics={}, weights_dtype="int8",
        )  # fmt: skip
