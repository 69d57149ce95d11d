"""Shapes, modes and knock-out of the multimodal Swin-UNETR (tiny sizes, CPU)."""

from __future__ import annotations

import pytest
import torch

from inference.tasks.resectability.model import ModelConfig, ModelMode, ResectabilityNet

torch.set_num_threads(2)


def _net(mode: ModelMode = ModelMode.MULTIMODAL) -> ResectabilityNet:
    torch.manual_seed(0)
    return ResectabilityNet(ModelConfig(clinical_features=30, feature_size=12, mode=mode.value))


def test_multimodal_shapes() -> None:
    net = _net()
    out = net(torch.randn(2, 1, 32, 32, 64), torch.randn(2, 30))
    assert out.class_logits.shape == (2, 3)
    assert out.seg_logits is not None and out.seg_logits.shape == (2, 16, 32, 32, 64)
    assert net.fused_features == 288
    assert not out.knocked_out.any()


def test_ablation_modes() -> None:
    ct = _net(ModelMode.CT_ONLY)
    assert ct.fused_features == 256
    out = ct(torch.randn(1, 1, 32, 32, 64), None)
    assert out.class_logits.shape == (1, 3) and out.seg_logits is not None
    tab = _net(ModelMode.TABULAR_ONLY)
    assert tab.swin is None and tab.fused_features == 32
    out = tab(None, torch.randn(4, 30))
    assert out.class_logits.shape == (4, 3) and out.seg_logits is None


def test_knockout_uses_stored_mean_embedding() -> None:
    net = _net().eval()
    image = torch.randn(2, 1, 32, 32, 64)
    with pytest.raises(ValueError, match="mean embedding"):
        net(image, None)
    train_rows = torch.randn(8, 30)
    net.store_clinical_mean(train_rows)
    with torch.no_grad():
        absent = net(image, None)
        explicit = net(image, train_rows[:2], torch.tensor([False, False]))
        mixed = net(image, train_rows[:2], torch.tensor([True, False]))
    assert absent.knocked_out.all()
    torch.testing.assert_close(absent.class_logits, explicit.class_logits)
    assert mixed.knocked_out.tolist() == [False, True]
    torch.testing.assert_close(mixed.class_logits[1], absent.class_logits[1])


def test_rejects_bad_config_and_sizes() -> None:
    with pytest.raises(ValueError, match="multiples of 12"):
        ModelConfig(clinical_features=30, feature_size=32)
    with pytest.raises(ValueError, match="multiples of 32"):
        _net()(torch.randn(1, 1, 48, 32, 32), torch.randn(1, 30))
    with pytest.raises(ValueError, match="at least one side of 64"):
        _net().eval()(torch.randn(1, 1, 32, 32, 32), torch.randn(1, 30))


def test_window_size_reaches_the_swin_transformer() -> None:
    config = ModelConfig(clinical_features=30, feature_size=12, window_size=4)
    net = ResectabilityNet(config)
    assert net.swin is not None
    assert tuple(net.swin.swinViT.window_size) == (4, 4, 4)
    assert ModelConfig.from_dict(config.to_dict()).window_size == 4
    assert ModelConfig(clinical_features=30).window_size == 7  # older bundles: the paper's 7
    with pytest.raises(ValueError, match="window size"):
        ModelConfig(clinical_features=30, window_size=1)
