"""The survival bundle: saved, verified and loaded without pickle; what it refuses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bundle import BundleError
from inference.tasks.survival import (
    CLINICAL_INPUTS,
    RiskRule,
    SurvivalForest,
    load_survival_bundle,
    save_survival_bundle,
)
from tests.training._survival_cohort import tiny_bundle


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("survival") / "b", name="s", version="2")


def test_the_bundle_round_trips(saved: Path) -> None:
    bundle = load_survival_bundle(saved / "bundle.json")
    assert bundle.path == saved and bundle.name_version == "s 2"
    meta = json.loads((saved / "bundle.json").read_text(encoding="utf-8"))
    assert meta["task"] == "survival" and meta["fusion_inputs"][:2] == ["radiomics", "densenet"]
    assert meta["clinical_inputs"] == list(CLINICAL_INPUTS)
    assert sorted(p.name for p in saved.iterdir()) == [
        "arrays.safetensors", "bundle.json", "densenet-0.safetensors"
    ]  # fmt: skip
    again = load_survival_bundle(saved)
    parts = again.parts
    x = np.random.default_rng(0).normal(size=(4, len(parts.projection.feature_names)))
    assert np.array_equal(parts.projection.transform(x), bundle.parts.projection.transform(x))
    assert parts.forest.survival_function([[-0.5], [0.5]])[:, 12] == pytest.approx(
        [np.exp(-12 / 40), np.exp(-12 / 12)], abs=1e-6
    )
    assert parts.reference_curves[0].label == "high risk" and parts.risk == RiskRule(3, 0.8)
    image = torch.zeros((1, 1, 32, 32, 32))
    with torch.no_grad():
        assert parts.densenets[0](image, image).shape == (1, 3)


def test_float16_weights_keep_the_forest_to_three_decimals(saved: Path, tmp_path: Path) -> None:
    parts = load_survival_bundle(saved).parts
    save_survival_bundle(tmp_path, parts, name="s", version="h", config_sha256="c" * 64,
                         data_hash="d" * 64, metrics={}, weights_dtype="float16")  # fmt: skip
    half = load_survival_bundle(tmp_path).parts
    rows = [[0.5], [-0.5]]
    assert half.forest.survival_function(rows) == pytest.approx(
        parts.forest.survival_function(rows), abs=1e-3
    )
    with pytest.raises(ValueError, match="weights_dtype"):
        save_survival_bundle(tmp_path / "x", parts, name="s", version="h", config_sha256="",
                             data_hash="", metrics={}, weights_dtype="int8")  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_parts_that_do_not_fit_the_node_are_refused(saved: Path) -> None:
    parts = load_survival_bundle(saved).parts
    with pytest.raises(ValueError, match="DenseNet member"):
        dataclasses.replace(parts, densenets=())
    with pytest.raises(ValueError, match="other inputs"):
        dataclasses.replace(parts, clinical=parts.fusion)
    arrays = parts.forest.arrays()
    short = SurvivalForest.from_arrays({
        **arrays, "forest.months": arrays["forest.months"][:31],
        "forest.survival": arrays["forest.survival"][:, :31],
    })  # fmt: skip
    with pytest.raises(ValueError, match="lacks a horizon"):
        dataclasses.replace(parts, forest=short)  # 0-30 months: no 36
    for horizon, cutoff in ((4, 0.8), (3, 0.0), (3, 1.0)):
        with pytest.raises(ValueError, match="risk rule"):
            RiskRule(horizon, cutoff)


def _break(bundle: Path, key: str, value: object) -> None:
    meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    meta[key] = value
    (bundle / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")


def test_a_foreign_or_incomplete_bundle_is_refused(saved: Path, tmp_path: Path) -> None:
    for key, value, message in (
        ("task", "lymph-nodes", "is not 'survival'"),
        ("notice", "", "notice"),
        ("roi", {}, "incomplete metadata"),
        ("fusion_inputs", ["radiomics"], "incomplete metadata"),
    ):
        copy = tmp_path / key
        copy.mkdir()
        for file in saved.iterdir():
            (copy / file.name).write_bytes(file.read_bytes())
        _break(copy, key, value)
        with pytest.raises(BundleError, match=message):
            load_survival_bundle(copy)
    with pytest.raises(BundleError):
        load_survival_bundle(tmp_path / "nowhere")
