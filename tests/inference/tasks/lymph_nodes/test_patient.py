"""Tumor slices and the patient-level network (shapes, the side branch, the node branch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.tasks.lymph_nodes.patient import PatientNet, PatientNetConfig, tumor_slices
from inference.volume import Volume

torch.set_num_threads(1)


def _ct_and_tumor() -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    ct = rng.normal(40.0, 20.0, (40, 40, 20)).astype(np.float32)
    affine = np.diag([-2.0, -2.0, 4.0, 1.0])
    grid = np.indices(ct.shape)
    tumor = ((grid[0] - 20) / 5.0) ** 2 + ((grid[1] - 18) / 4.0) ** 2 + ((grid[2] - 10) / 2.0) ** 2
    return Volume(ct, affine), Volume((tumor <= 1).astype(np.uint8), affine)


def test_tumor_slices_are_three_per_plane_with_tumor_in_each() -> None:
    ct, tumor = _ct_and_tumor()
    slices = tumor_slices(ct, tumor, PatientNetConfig(patch_size=32, patch_mm=64.0))
    assert slices is not None
    assert slices.images.shape == (9, 32, 32) and slices.masks.shape == (9, 32, 32)
    assert (slices.masks.reshape(9, -1).sum(axis=1) > 0).all()
    assert set(np.unique(slices.masks)) <= {0.0, 1.0}
    empty = Volume(np.zeros_like(tumor.array), tumor.affine)
    assert tumor_slices(ct, empty, PatientNetConfig()) is None


def test_patient_net_shapes_and_node_branch_alone() -> None:
    torch.manual_seed(0)
    config = PatientNetConfig()
    net = PatientNet(config).eval()
    images, masks = torch.randn(9, 1, 32, 32), torch.zeros(9, 1, 32, 32)
    volumes = torch.full((9,), 650.0)
    with torch.no_grad():
        assert net(images, masks, volumes).shape == (9, 2)
        assert net(None, None, torch.tensor([0.0])).shape == (1, 2)
        features = net.tumor_features(images, masks)
        # the side branch starts as the identity: the mask changes nothing yet
        assert torch.equal(features, net.tumor_features(images, torch.ones_like(masks)))
    assert features.shape == (9, config.feature_dim) == (9, 32 * 5)
    with pytest.raises(ValueError, match="both"):
        net(images, None, volumes)


def test_patient_config_round_trip_and_no_texture_layer() -> None:
    config = PatientNetConfig(channels=(4, 8), codewords=0)
    assert PatientNetConfig.from_dict(config.to_dict()) == config
    net = PatientNet(config)
    assert net.tel is None and net.tumor_features(
        torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    ).shape == (1, 8)
    with pytest.raises(ValueError):
        PatientNetConfig(channels=(8,))
