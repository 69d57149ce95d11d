"""The learned localiser in a bundle: round trip, hash check, older bundles, the analyzer's pick."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference._analysis_localise import CrossCheckedLocaliser
from inference.analysis import Analyzer, LandmarkLocaliser
from inference.bundle import BundleError, add_localiser, copy_localiser, load_bundle
from inference.localiser import (
    LOCALISER_WEIGHTS,
    LearnedLocaliser,
    LocaliserConfig,
    build_network,
)
from inference.volume import Volume
from training.structure_bundle import build_test_bundle

torch.set_num_threads(1)


def _coarse() -> Volume:
    rng = np.random.default_rng(0)
    affine = np.diag([5.0, 5.0, 5.0, 1.0])
    return Volume(rng.normal(0, 200, (20, 18, 12)).astype(np.float32), affine)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = build_test_bundle(tmp_path / "b", members=1)
    torch.manual_seed(1)
    config = LocaliserConfig(spacing_mm=6.0)
    add_localiser(
        root, LearnedLocaliser(build_network(config), config),
        metrics={"patients": 2, "centre_distance_mm": {"median": 4.0, "max": 6.0}},
        training={"epochs": 1, "rows": "test rows"},
    )  # fmt: skip
    return root


def test_round_trip_keeps_the_network_config_and_metrics(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    section = meta["localiser"]
    assert section["weights"] == LOCALISER_WEIGHTS and len(section["sha256"]) == 64
    assert section["config"]["spacing_mm"] == 6.0 and section["config"]["hu_window"] == [-200, 300]
    assert section["metrics"]["centre_distance_mm"]["median"] == 4.0
    assert section["training"]["rows"] == "test rows"
    assert section["method"] == "learned-unet-6mm v1"
    loaded = load_bundle(bundle)
    assert loaded.localiser is not None and loaded.localiser.config.spacing_mm == 6.0
    torch.manual_seed(1)
    config = LocaliserConfig(spacing_mm=6.0)
    fresh = LearnedLocaliser(build_network(config), config)
    expected = np.asarray(fresh.probability(_coarse()).array, dtype=np.float32)
    got = np.asarray(loaded.localiser.probability(_coarse()).array, dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert len(loaded.members) == 1  # the ensemble is untouched


def test_tampered_localiser_weights_are_refused(bundle: Path) -> None:
    weights = bundle / LOCALISER_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"localiser\.safetensors does not match its sha256"):
        load_bundle(bundle)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda s: s.update(weights="gone.safetensors"), "missing"),
        (lambda s: s.update(format_version="9"), "localiser format"),
        (lambda s: s["config"].update(channels=[4, 8, 16, 32]), "does not fit the localiser"),
        (lambda s: s["config"].update(strides=[2]), "stride"),
    ],
)
def test_broken_localiser_sections_are_refused_in_one_line(
    bundle: Path, edit: object, reason: str
) -> None:
    path = bundle / "bundle.json"
    meta = json.loads(path.read_text())
    edit(meta["localiser"])  # type: ignore[operator]
    path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=reason) as info:
        load_bundle(bundle)
    assert "\n" not in str(info.value)


def test_a_bundle_without_a_localiser_stays_valid(tmp_path: Path) -> None:
    root = build_test_bundle(tmp_path / "old", members=1)
    assert "localiser" not in json.loads((root / "bundle.json").read_text())
    assert load_bundle(root).localiser is None
    assert isinstance(Analyzer(root, "cpu").localiser, LandmarkLocaliser)


def test_the_analyzer_uses_the_bundles_localiser_unless_told_otherwise(bundle: Path) -> None:
    analyzer = Analyzer(bundle, "cpu")
    # The bundle's learned localiser runs, checked against the anatomical landmarks.
    assert isinstance(analyzer.localiser, CrossCheckedLocaliser)
    assert analyzer.localiser.primary is analyzer.bundle.localiser
    assert isinstance(analyzer.localiser.primary, LearnedLocaliser)
    assert isinstance(analyzer.localiser.reference, LandmarkLocaliser)
    explicit = LandmarkLocaliser()
    assert Analyzer(bundle, "cpu", localiser=explicit).localiser is explicit


def test_adding_a_localiser_needs_a_bundle(tmp_path: Path) -> None:
    config = LocaliserConfig()
    with pytest.raises(BundleError, match="cannot read"):
        add_localiser(
            tmp_path, LearnedLocaliser(build_network(config), config), metrics={}, training={}
        )
    assert not (tmp_path / LOCALISER_WEIGHTS).exists()


def test_copy_localiser_moves_the_network_and_names_its_source(
    bundle: Path, tmp_path: Path
) -> None:
    target = build_test_bundle(tmp_path / "target", members=1)
    copy_localiser(bundle, target)
    source, copied = load_bundle(bundle), load_bundle(target)
    assert copied.localiser is not None and source.localiser is not None
    for a, b in zip(
        source.localiser.network.state_dict().values(),
        copied.localiser.network.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    section = copied.meta["localiser"]
    assert section["metrics"]["centre_distance_mm"]["median"] == 4.0
    assert section["training"]["copied_from"]["sha256"] == source.meta["localiser"]["sha256"]
    assert section["training"]["epochs"] == 1


def test_copy_localiser_needs_one_to_copy(tmp_path: Path) -> None:
    plain = build_test_bundle(tmp_path / "plain", members=1)
    with pytest.raises(BundleError, match="no learned localiser"):
        copy_localiser(plain, build_test_bundle(tmp_path / "other", members=1))
