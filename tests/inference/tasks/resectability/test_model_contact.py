"""Contact pooling: the descriptor reads tumor-vessel contact off a segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.tasks.resectability._model_contact import (
    CONTACT_VESSELS,
    contact_descriptor,
    contact_width,
)
from inference.tasks.resectability.model import (
    CONTACT_EMBEDDING,
    IMAGE_EMBEDDING,
    ModelConfig,
    ResectabilityNet,
)

SMV = dict(CONTACT_VESSELS)["SMV"]
FEATURES = 3


def _logits(labels: np.ndarray) -> torch.Tensor:
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), 16)
    return onehot.permute(3, 0, 1, 2)[None].float() * 20.0


def _scene(tumor: str) -> np.ndarray:
    """An SMV (radius 4) along the last axis; tumor beside it on one side, around it, or away."""
    labels = np.zeros((32, 32, 32), dtype=np.uint8)
    x, y = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    vessel = (x - 16) ** 2 + (y - 16) ** 2 <= 16
    if tumor == "half":
        labels[:16, :, 8:24] = 2
    elif tumor == "around":
        labels[6:27, 6:27, 8:24] = 2
    elif tumor == "away":
        labels[:4, :4, 8:24] = 2
    labels[vessel] = SMV
    return labels


def _smv_scalars(labels: np.ndarray) -> np.ndarray:
    decoder = torch.ones(1, FEATURES, *labels.shape)
    out = contact_descriptor(_logits(labels), decoder)[0].numpy()
    assert out.shape == (contact_width(FEATURES),)
    j = [name for name, _ in CONTACT_VESSELS].index("SMV")
    start = 1 + FEATURES + j * (5 + FEATURES)
    return out[start : start + 5]


def test_slice_share_along_the_vessel_is_the_contact_angle_over_360() -> None:
    half, around, away = (_smv_scalars(_scene(t)) for t in ("half", "around", "away"))
    # [log touch area, vicinity share, share per slice of axis 0, 1, 2]
    assert 0.4 <= half[4] <= 0.7
    assert around[4] >= 0.9
    assert away[0] == pytest.approx(0.0, abs=1e-3)
    assert away[4] == pytest.approx(0.0, abs=1e-3)
    assert around[0] > half[0] > away[0]


def test_an_absent_vessel_gives_zeros_not_nan() -> None:
    labels = _scene("half")
    labels[labels == SMV] = 0
    out = contact_descriptor(_logits(labels), torch.ones(1, FEATURES, 32, 32, 32))
    assert torch.isfinite(out).all()


def test_contact_pooling_widens_the_image_vector_and_classify_matches_forward() -> None:
    torch.manual_seed(0)
    config = ModelConfig(clinical_features=5, feature_size=12, image_pooling="contact")
    model = ResectabilityNet(config).eval()
    assert model.fused_features == IMAGE_EMBEDDING + CONTACT_EMBEDDING + 32
    image, clinical = torch.randn(2, 1, 64, 32, 32), torch.randn(2, 5)
    with torch.no_grad():
        out = model(image, clinical)
        _, pooled = model.encode_image(image)
        logits, _ = model.classify(pooled, clinical)
    assert torch.allclose(out.class_logits, logits, atol=1e-5)
    assert pooled.shape == (2, 16 * 12 + contact_width(12))


def test_bundles_written_before_contact_pooling_still_load_their_config() -> None:
    data = ModelConfig(clinical_features=5).to_dict()
    del data["image_pooling"]
    assert ModelConfig.from_dict(data).image_pooling == "global"
    with pytest.raises(ValueError, match="attention"):
        ModelConfig(clinical_features=5, image_pooling="attention")


def test_separable_dilation_equals_the_cube_max_pool() -> None:
    from inference.tasks.resectability._model_contact import _soft_dilate

    mask = torch.rand(1, 1, 20, 20, 20)
    for radius in (1, 4):
        pooled = torch.nn.functional.max_pool3d(mask, 2 * radius + 1, 1, radius)
        assert torch.equal(_soft_dilate(mask, radius), pooled)


def test_clinical_dropout_swaps_embeddings_for_the_batch_mean_in_training_only() -> None:
    torch.manual_seed(0)
    config = ModelConfig(clinical_features=5, feature_size=12, dropout=0.0, clinical_dropout=0.9)
    model = ResectabilityNet(config)
    pooled = torch.randn(1, 16 * 12).expand(64, -1)  # one image for every row
    clinical = torch.randn(64, 5)
    model.train()
    logits, _ = model.classify(pooled, clinical)
    rows = {tuple(np.round(r, 4)) for r in logits.detach().numpy().tolist()}
    assert len(rows) < 20  # most rows were given the same (mean) embedding
    model.eval()
    logits, _ = model.classify(pooled, clinical)
    assert len({tuple(np.round(r, 4)) for r in logits.detach().numpy().tolist()}) == 64
    with pytest.raises(ValueError, match="dropout rates"):
        ModelConfig(clinical_features=5, clinical_dropout=1.0)
