"""Logit-sum fusion: the clinical expert, its weight, and the fits that use them (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.analysis import clinical_weight_notes
from inference.bundle import BundleMember, load_bundle
from inference.clinical_preprocessing import ClinicalPreprocessor
from inference.tasks.resectability._model_swin import bottleneck_channels
from inference.tasks.resectability.model import ModelConfig, ModelMode, ResectabilityNet
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from tests.training._training_arrays import tiny_arrays, tiny_config, train_in_memory
from training._experts import WEIGHT_GRID, fit_clinical_expert
from training._loop import CohortArrays
from training.config import HyperParams

torch.set_num_threads(2)

_FEATURES = 6


def _net(fusion: str = "logit_sum", mode: ModelMode = ModelMode.MULTIMODAL) -> ResectabilityNet:
    torch.manual_seed(0)
    config = ModelConfig(
        clinical_features=_FEATURES, feature_size=12, mode=mode.value, fusion=fusion
    )
    return ResectabilityNet(config).eval()


def test_the_clinical_expert_reaches_the_logits_only_through_its_weight() -> None:
    net = _net()
    assert net.clinical_head is not None and net.fused_features == 256
    pooled = torch.randn(4, bottleneck_channels(12))
    a, b = torch.randn(4, _FEATURES), torch.randn(4, _FEATURES)
    with torch.no_grad():
        image_only, _ = net.classify(pooled, a)
        assert torch.equal(image_only, net.classify(pooled, b)[0])  # weight 0: image expert
        net.store_clinical_mean(torch.randn(10, _FEATURES))
        net.clinical_weight.fill_(1.0)
        assert not torch.allclose(net.classify(pooled, a)[0], net.classify(pooled, b)[0])
        knocked, mask = net.classify(pooled, None)
    assert mask.all()
    torch.testing.assert_close(knocked, image_only)  # a knocked-out patient adds exactly 0


def test_only_multimodal_logit_sum_models_have_a_clinical_expert() -> None:
    assert _net("concat").clinical_head is None
    assert _net(mode=ModelMode.CT_ONLY).clinical_head is None
    assert _net(mode=ModelMode.TABULAR_ONLY).clinical_head is None
    with pytest.raises(ValueError, match="no clinical expert"):
        _net("concat").clinical_expert_logits(torch.randn(2, _FEATURES))
    with pytest.raises(ValueError, match="'sum' is not a valid FusionMode"):
        ModelConfig(clinical_features=_FEATURES, fusion="sum")
    with pytest.raises(ValueError, match="fusion must be concat or logit_sum"):
        tiny_config(fusion="sum")
    assert "clinical_weight" not in _net("concat").state_dict()  # older bundles still load


def _stack(informative: bool) -> tuple[float, float, float]:
    """Weight, and validation cross-entropy of image logits alone and summed."""
    rng = np.random.default_rng(1)
    n = 300
    targets = rng.integers(0, 3, n)
    signal = np.eye(3)[targets] if informative else np.zeros((n, 3))
    features = np.concatenate([signal, np.zeros((n, _FEATURES - 3))], axis=1)
    features = (features + rng.normal(0, 0.7, features.shape)).astype(np.float32)
    split = (np.arange(0, 150), np.arange(150, n))
    # A weak image expert: the right class a little ahead, plus noise.
    image = torch.from_numpy(1.0 * np.eye(3)[targets[150:]] + rng.normal(0, 1.0, (150, 3)))
    net = _net()
    hp = HyperParams(lr=1e-3, feature_size=12, batch_size=32, seg_coefficients=(0.4, 0.4, 0.2))
    y = torch.from_numpy(targets)
    config = tiny_config(max_epochs=30, weight_decay=1e-2)
    weight, summed_val = fit_clinical_expert(
        net, torch.from_numpy(features), y, split, image, hp, config, 0
    )
    assert float(net.clinical_weight) == pytest.approx(weight) and weight in WEIGHT_GRID
    assert bool(net.clinical_mean_set)
    loss = torch.nn.CrossEntropyLoss(weight=torch.tensor(config.class_weights))
    with torch.no_grad():
        embedding = net.embed_clinical(torch.from_numpy(features[150:])) - net.clinical_mean
        assert net.clinical_head is not None
        clinical = embedding @ net.clinical_head.weight.T
        summed = image.float() + weight * clinical
    torch.testing.assert_close(summed_val, summed)  # the caller's validation logits
    y_val = y[150:]
    return weight, float(loss(image.float(), y_val)), float(loss(summed, y_val))


def test_an_informative_clinical_expert_is_weighted_in_and_lowers_the_validation_loss() -> None:
    weight, alone, summed = _stack(informative=True)
    assert weight >= 0.5
    assert summed < alone - 0.1


def test_a_clinical_vector_that_carries_nothing_gets_next_to_no_weight() -> None:
    weight, alone, summed = _stack(informative=False)
    assert weight <= 0.1
    assert summed <= alone


@pytest.fixture(scope="module")
def arrays() -> CohortArrays:
    return tiny_arrays()


@pytest.mark.parametrize("frozen", [False, True])
def test_a_logit_sum_run_trains_its_experts_and_ships_the_weight(
    monkeypatch: pytest.MonkeyPatch, arrays: CohortArrays, tmp_path: Path, frozen: bool
) -> None:
    config = tiny_config(fusion="logit_sum", max_epochs=2, patience=2, ablations=("knockout",))
    if frozen:
        source = train_in_memory(monkeypatch, arrays, tiny_config(), tmp_path / "source")
        config = tiny_config(
            fusion="logit_sum", max_epochs=5, patience=5, image_pooling="contact",
            init_from=str(source.bundle_json.parent), freeze_image_branch=True,
        )  # fmt: skip
    run = train_in_memory(monkeypatch, arrays, config, tmp_path / "run")
    model = load_bundle(run.bundle_json.parent).members[0].model
    assert model.config.fusion == "logit_sum" and model.clinical_head is not None
    assert min(abs(float(model.clinical_weight) - w) for w in WEIGHT_GRID) < 1e-6
    assert bool(model.clinical_mean_set)
    report = (run.out / "report.md").read_text()
    assert "fusion: logit sum" in report and f"{float(model.clinical_weight):.2f})" in report


def test_a_result_says_when_the_clinical_expert_has_no_weight() -> None:
    preprocessor = ClinicalPreprocessor().fit(np.zeros((3, len(CLINICAL_VARIABLES))))
    member = BundleMember(_net(), preprocessor)
    assert "weight 0" in clinical_weight_notes([member])[0]
    member.model.clinical_weight.fill_(0.3)
    assert clinical_weight_notes([member]) == ()
    assert clinical_weight_notes([BundleMember(_net("concat"), preprocessor)]) == ()
