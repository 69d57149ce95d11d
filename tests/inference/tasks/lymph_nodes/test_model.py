"""Forward shapes of the lymph-node networks on tiny inputs; attention on and off."""

from __future__ import annotations

import pytest
import torch

from inference.tasks.lymph_nodes.model import (
    ORGAN_CLASSES,
    LymphNodeSegNet,
    NodeClassifier,
    NodeClassifierConfig,
    SegConfig,
    UNetConfig,
    build_organ_segmenter,
)

torch.set_num_threads(1)
_SEG = SegConfig(cube_size=32, cube_mm=64.0, base_filters=4, max_filters=16, max_pools=3)


def test_organ_segmenter_has_background_and_ten_structures() -> None:
    assert len(ORGAN_CLASSES) == 11 and ORGAN_CLASSES[5] == "pancreas"
    out = build_organ_segmenter(UNetConfig())(torch.zeros(1, 1, 32, 32, 32))
    assert out.shape == (1, 11, 32, 32, 32)


def test_attention_scales_the_penultimate_features() -> None:
    torch.manual_seed(0)
    net = LymphNodeSegNet(_SEG).eval()
    image = torch.randn(2, 1, 32, 32, 32)
    ones, zeros = torch.ones(2, 1, 32, 32, 32), torch.zeros(2, 1, 32, 32, 32)
    with torch.no_grad():
        with_ones, with_zeros = net(image, ones).logits, net(image, zeros).logits
        half = net(image, torch.full((2, 1, 16, 16, 16), 0.5)).logits  # resampled to 32^3
    assert with_ones.shape == (2, 2, 32, 32, 32) and half.shape == with_ones.shape
    assert not torch.allclose(with_ones, with_zeros)
    # zero attention blanks the features: every voxel gets the same logits
    assert torch.allclose(with_zeros, with_zeros[:, :, :1, :1, :1].expand_as(with_zeros))
    with pytest.raises(ValueError, match="attention"):
        net(image)


def test_without_attention_the_map_is_ignored() -> None:
    torch.manual_seed(0)
    net = LymphNodeSegNet(SegConfig(**{**_SEG.to_dict(), "attention": False})).eval()
    image = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        plain = net(image).logits
        assert torch.equal(plain, net(image, torch.zeros(1, 1, 32, 32, 32)).logits)
    assert plain.shape == (1, 2, 32, 32, 32)


def test_deep_supervision_outputs_finest_first() -> None:
    config = SegConfig(**{**_SEG.to_dict(), "deep_supervision": 2})
    out = LymphNodeSegNet(config)(torch.zeros(1, 1, 32, 32, 32), torch.ones(1, 1, 32, 32, 32))
    assert [tuple(d.shape) for d in out.deep] == [(1, 2, 16, 16, 16), (1, 2, 8, 8, 8)]
    with pytest.raises(ValueError, match="deep_supervision"):
        SegConfig(**{**_SEG.to_dict(), "deep_supervision": 3})


def test_classifier_starts_from_the_segmentation_encoder() -> None:
    torch.manual_seed(0)
    segmenter = LymphNodeSegNet(_SEG)
    classifier = NodeClassifier(_SEG, NodeClassifierConfig(crop_size=16))
    classifier.init_from_segmenter(segmenter)
    for key, value in segmenter.encoder.state_dict().items():
        assert torch.equal(classifier.encoder.state_dict()[key], value)
    assert classifier(torch.randn(3, 1, 16, 16, 16)).shape == (3, 2)
    assert classifier.crop_mm == pytest.approx(32.0)
    other = SegConfig(**{**_SEG.to_dict(), "base_filters": 2})
    with pytest.raises(ValueError, match="plan"):
        NodeClassifier(other, NodeClassifierConfig()).init_from_segmenter(segmenter)
    coarse = SegConfig(cube_size=128, cube_mm=128.0, max_pools=5)  # divisor 32
    with pytest.raises(ValueError, match="multiple"):
        NodeClassifier(coarse, NodeClassifierConfig(crop_size=16))


def test_configs_round_trip_and_refuse_bad_sizes() -> None:
    assert SegConfig.from_dict(_SEG.to_dict()) == _SEG
    assert UNetConfig.from_dict(UNetConfig().to_dict()) == UNetConfig()
    assert NodeClassifierConfig.from_dict({"crop_size": 32}).crop_size == 32
    for bad in ({"cube_size": 24}, {"cube_mm": 0.0}, {"head_channels": 0}):
        with pytest.raises(ValueError):
            SegConfig(**bad)
    with pytest.raises(ValueError):
        NodeClassifierConfig(crop_size=24)


def test_a_not_node_class_gives_node_and_metastasis_probabilities() -> None:
    seg = SegConfig(cube_size=32, cube_mm=64.0, base_filters=4, max_filters=16)
    plain = NodeClassifier(seg, NodeClassifierConfig(crop_size=16))
    three = NodeClassifier(seg, NodeClassifierConfig(crop_size=16, not_node_class=True))
    assert plain.config.classes == ("negative", "positive")
    assert three.config.classes == ("not-node", "negative", "positive")
    assert three(torch.zeros(2, 1, 16, 16, 16)).shape == (2, 3)
    node, metastasis = plain.probabilities(torch.tensor([[0.0, 0.0]]))
    assert node.tolist() == [1.0] and metastasis.tolist() == [0.5]
    # softmax of (log 2, log 1, log 1) = (0.5, 0.25, 0.25): node 0.5, positive given node 0.5
    logits = torch.log(torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 3.0]]))
    node, metastasis = three.probabilities(logits)
    assert torch.allclose(node, torch.tensor([0.5, 0.8]))
    assert torch.allclose(metastasis, torch.tensor([0.5, 0.75]))
