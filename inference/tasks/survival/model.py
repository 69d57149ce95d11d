"""The paper's dual-input 3D-DenseNet: a whole-image branch and an ROI branch.

The whole-image branch is a 3D DenseNet with dense blocks of 6, 12, 24 and 16 layers (MONAI
``DenseNet``; Huang et al., CVPR 2017) on the CT cube around the tumor; the ROI branch is two
3D convolutions, each followed by ReLU and max pooling, on the tumor alone (the CT inside the
mask). Their features are concatenated and a fully connected head gives one logit per horizon
(death within 1, 2, 3 years). The paper trains at 96^3 with 64 initial features and a growth
rate of 32; the node's default (:class:`DenseNetConfig`) keeps the block layout and scales the
width down to train on two CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from monai.networks.nets.densenet import DenseNet
from torch import nn

__all__ = ["DenseNetConfig", "DualInputDenseNet", "death_probabilities"]


@dataclass(frozen=True)
class DenseNetConfig:
    """Widths of the dual-input network.

    Attributes
    ----------
    block_config
        Layers per dense block (the paper's 6/12/24/16).
    init_features, growth_rate
        The DenseNet's width.
    roi_channels
        Channels of the ROI branch's two convolutions.
    features
        Features each branch gives the head.
    horizons
        Outputs (death within 1, 2, 3 years).
    dropout
        Dropout before the head.
    """

    block_config: tuple[int, int, int, int] = (6, 12, 24, 16)
    init_features: int = 16
    growth_rate: int = 8
    roi_channels: tuple[int, int] = (8, 16)
    features: int = 32
    horizons: int = 3
    dropout: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        """For ``bundle.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenseNetConfig:
        """From ``bundle.json``."""
        a, b, c, d = (int(v) for v in data["block_config"])
        r1, r2 = (int(v) for v in data["roi_channels"])
        return cls(
            block_config=(a, b, c, d),
            init_features=int(data["init_features"]),
            growth_rate=int(data["growth_rate"]),
            roi_channels=(r1, r2),
            features=int(data["features"]),
            horizons=int(data["horizons"]),
            dropout=float(data["dropout"]),
        )


class DualInputDenseNet(nn.Module):
    """Whole-image DenseNet + ROI convolutions -> one logit per horizon.

    Parameters
    ----------
    config
        The widths.
    """

    def __init__(self, config: DenseNetConfig) -> None:
        super().__init__()
        self.config = config
        self.image = DenseNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=config.features,
            init_features=config.init_features,
            growth_rate=config.growth_rate,
            block_config=config.block_config,
        )
        c1, c2 = config.roi_channels
        self.roi = nn.Sequential(
            nn.Conv3d(1, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            nn.Conv3d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(c2, config.features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(2 * config.features, config.features),
            nn.ReLU(inplace=True),
            nn.Linear(config.features, config.horizons),
        )

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, horizons)`` from the CT cube and tumor mask, ``(batch, 1, D, H, W)``."""
        whole = torch.relu(self.image(image))
        tumor = self.roi(image * mask)
        logits: torch.Tensor = self.head(torch.cat([whole, tumor], dim=1))
        return logits


def death_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid, then a running maximum over horizons (death by 3 years >= by 1 year)."""
    return torch.cummax(torch.sigmoid(logits), dim=1).values
