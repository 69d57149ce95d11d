"""Forward shapes of the two detection networks on tiny inputs."""

from __future__ import annotations

import pytest
import torch

from inference.tasks.detection.model import MultiTaskNet, NetConfig, build_stage1

torch.set_num_threads(1)
_TINY = NetConfig(cube_size=32, cube_mm=128.0, base_filters=4, max_filters=16, max_pools=3,
                  fpn_channels=8)  # fmt: skip


def test_stage1_segments_two_classes() -> None:
    out = build_stage1(_TINY)(torch.zeros(1, 1, 32, 32, 32))
    assert out.shape == (1, 2, 32, 32, 32)


def test_multitask_shapes_and_segmentation_equal_to_dynunet() -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(_TINY).eval()
    image = torch.randn(2, 1, 32, 32, 32)
    out = net(image)
    assert out.seg_logits.shape == (2, 2, 32, 32, 32) and out.class_logits.shape == (2, 2)
    with torch.no_grad():
        assert torch.allclose(out.seg_logits, net.unet(image), atol=1e-5)
    levels = net.encode(image)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8, 4]  # the last three feed the FPN


def test_parameter_groups_split_the_heads() -> None:
    net = MultiTaskNet(_TINY)
    seg = {id(p) for p in net.segmentation_parameters()}
    cls = {id(p) for p in net.classification_parameters()}
    encoder = {id(p) for p in net.encoder_parameters()}
    assert not seg & cls and encoder < seg
    assert seg | cls == {id(p) for p in net.parameters()}


def test_avg_max_pooling_sees_a_small_bright_spot_that_the_average_dilutes() -> None:
    torch.manual_seed(0)
    config = NetConfig(cube_size=48, cube_mm=144.0, base_filters=4, max_filters=16,
                       max_pools=3, fpn_channels=8, head_pooling="avg+max")  # fmt: skip
    net = MultiTaskNet(config).eval()
    assert net.classifier.fc.in_features == 6 * 8
    image = torch.zeros(1, 1, 48, 48, 48)
    spot = image.clone()
    spot[..., 20:23, 20:23, 20:23] = 5.0  # 27 of 110,592 voxels
    with torch.no_grad():
        levels, spot_levels = net.encode(image)[-3:], net.encode(spot)[-3:]
        pooled = [net.classifier._pool(x) for x in (levels[0], spot_levels[0])]
    channels = levels[0].shape[1]
    mean_change = (pooled[1][:, :channels] - pooled[0][:, :channels]).abs().max()
    max_change = (pooled[1][:, channels:] - pooled[0][:, channels:]).abs().max()
    assert max_change > 10 * mean_change


def test_net_config_refuses_unknown_pooling_and_off_grid_cubes() -> None:
    with pytest.raises(ValueError, match="head_pooling"):
        NetConfig(head_pooling="median")
    with pytest.raises(ValueError, match="multiple of 16"):
        NetConfig(cube_size=40)
    assert NetConfig(cube_size=48).spacing_mm == 256.0 / 48
