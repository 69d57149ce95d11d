"""Bundle save/load round trip, metadata, and refusal of tampered or incomplete bundles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from inference.bundle import NOTICE, BundleError, BundleMember, load_bundle, save_bundle
from inference.clinical_preprocessing import ClinicalPreprocessor, clinical_matrix
from inference.tasks.resectability.model import ModelConfig, ModelMode, ResectabilityNet
from phantom import plan_cohort
from training.dataset import PreprocessConfig

torch.set_num_threads(2)


def _bundle(tmp_path: Path, mode: ModelMode = ModelMode.TABULAR_ONLY) -> tuple[Path, np.ndarray]:
    raw = clinical_matrix([p.clinical for p in plan_cohort(12, seed=4)])
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        pre = ClinicalPreprocessor().fit(raw[:8])
        net = ResectabilityNet(
            ModelConfig(clinical_features=pre.n_features, feature_size=12, mode=mode.value)
        )
        net.store_clinical_mean(torch.from_numpy(pre.transform(raw[:8]).features))
        members.append(BundleMember(net, pre))
    save_bundle(
        tmp_path / "b", members, preprocess=PreprocessConfig(64), name="test", version="0.0.1",
        data_hash="0" * 64, metrics={"multimodal": {"auc": {"mean": 0.5, "std": 0.0}}},
    )  # fmt: skip
    return tmp_path / "b", raw


def test_round_trip_predicts_identically(tmp_path: Path) -> None:
    root, raw = _bundle(tmp_path)
    bundle = load_bundle(root)
    assert len(bundle.members) == 2 and bundle.preprocess.target_size == 64
    meta = bundle.meta
    assert meta["notice"] == NOTICE
    assert meta["label_map"][1]["name"] == "pancreas" and meta["label_map"][1]["code"]["value"]
    assert len(meta["clinical_variables"]) == 17
    assert len(meta["members"][0]["clinical_preprocessor"]["imputer_reference"]) == 8
    assert all(len(m["sha256"]) == 64 for m in meta["members"])
    probs = bundle.predict(None, raw[8:])
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(load_bundle(root / "bundle.json").predict(None, raw[8:]), probs)


def test_multimodal_bundle_knockout(tmp_path: Path) -> None:
    root, raw = _bundle(tmp_path, ModelMode.MULTIMODAL)
    bundle = load_bundle(root)
    image = np.random.default_rng(0).normal(size=(1, 32, 32, 64)).astype(np.float32)
    with_clinical = bundle.predict(image, raw[:1])
    knocked = bundle.predict(image, None)
    assert with_clinical.shape == knocked.shape == (1, 3)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    root, _ = _bundle(tmp_path)
    weights = root / "model-1.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256") as info:
        load_bundle(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda m: m.update(format_version="9"), "format"),
        (lambda m: m.pop("notice"), "notice"),
        (lambda m: m["members"][0].update(weights="gone.safetensors"), "missing"),
        (lambda m: m.pop("preprocessing"), "incomplete"),
        (lambda m: m["members"][0]["model_config"].update(fusion_hidden=7), "does not fit"),
    ],
)
def test_broken_metadata_is_refused(tmp_path: Path, edit: object, reason: str) -> None:
    root, _ = _bundle(tmp_path)
    meta = json.loads((root / "bundle.json").read_text())
    edit(meta)  # type: ignore[operator]
    (root / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=reason):
        load_bundle(root)


def test_missing_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="cannot read"):
        load_bundle(tmp_path / "nothing")
    assert issubclass(BundleError, ValueError)


def test_float16_weights_halve_the_file_and_load_as_float32(tmp_path: Path) -> None:
    root, raw = _bundle(tmp_path, ModelMode.MULTIMODAL)
    full = load_bundle(root)
    half = tmp_path / "half"
    save_bundle(
        half, list(full.members), preprocess=full.preprocess, name="test", version="0.0.1",
        data_hash="0" * 64, metrics={}, weights_dtype="float16",
    )  # fmt: skip
    stored = load_file(str(half / "model-0.safetensors"))
    floating = [t for t in stored.values() if t.is_floating_point()]
    assert floating and all(t.dtype == torch.float16 for t in floating)
    # Swin's integer relative-position indices stay as they are, so a little over half.
    size = (root / "model-0.safetensors").stat().st_size
    assert (half / "model-0.safetensors").stat().st_size < 0.7 * size
    loaded = load_bundle(half)
    assert loaded.meta["members"][0]["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.members[0].model.parameters())
    image = np.random.default_rng(1).normal(size=(1, 32, 32, 64)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(image, raw[:1]), full.predict(image, raw[:1]), atol=2e-3
    )


def test_unknown_weights_dtype_is_refused(tmp_path: Path) -> None:
    root, _ = _bundle(tmp_path)
    bundle = load_bundle(root)
    with pytest.raises(ValueError, match="weights_dtype"):
        save_bundle(
            tmp_path / "x", list(bundle.members), preprocess=bundle.preprocess, name="t",
            version="0", data_hash="0" * 64, metrics={}, weights_dtype="int8",
        )  # fmt: skip
