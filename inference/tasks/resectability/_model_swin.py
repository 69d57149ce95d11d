"""SwinUNETR forward pass that also returns the encoder bottleneck.

MONAI's :class:`~monai.networks.nets.SwinUNETR` only returns the segmentation logits; the
resectability head needs the deepest encoder feature map too (``encoder10`` applied to the last
Swin stage, 16 x feature_size channels at 1/32 of the input size). This module repeats MONAI's
``forward`` step by step so both come out of one pass, with no second encoder evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from monai.networks.nets.swin_unetr import SwinUNETR

__all__ = [
    "SWIN_DIVISOR",
    "SwinOutputs",
    "bottleneck_channels",
    "build_swin_unetr",
    "swin_forward",
]

SWIN_DIVISOR = 32
"""Every spatial input size must be a multiple of this (patch size 2, five stages)."""


def build_swin_unetr(
    feature_size: int, out_channels: int, dropout_path: float, window_size: int = 7
) -> SwinUNETR:
    """The MONAI network for 3-D single-channel CT (``img_size`` is gone in MONAI >= 1.5).

    ``window_size`` is the Swin attention window in tokens (7 in the paper, at 1 mm).
    """
    return SwinUNETR(
        in_channels=1,
        out_channels=out_channels,
        feature_size=feature_size,
        window_size=window_size,
        spatial_dims=3,
        dropout_path_rate=dropout_path,
        use_checkpoint=False,
    )


def bottleneck_channels(feature_size: int) -> int:
    """Channels of the ``encoder10`` output (the encoder bottleneck)."""
    return 16 * feature_size


class SwinOutputs(NamedTuple):
    """What one Swin-UNETR pass yields for the resectability model."""

    seg_logits: torch.Tensor
    """``(B, out_channels, D, H, W)`` segmentation logits."""
    bottleneck: torch.Tensor
    """``(B, 16 * feature_size, D/32, H/32, W/32)`` encoder bottleneck (``encoder10``)."""
    decoder: torch.Tensor
    """``(B, feature_size, D, H, W)`` last decoder features, the segmentation head's input."""


def swin_forward(net: SwinUNETR, image: torch.Tensor) -> SwinOutputs:
    """Segmentation logits, bottleneck and last decoder features of one forward pass.

    Parameters
    ----------
    net
        A :class:`SwinUNETR` built by :func:`build_swin_unetr`.
    image
        ``(B, 1, D, H, W)`` with every spatial size a multiple of :data:`SWIN_DIVISOR`.

    Returns
    -------
    SwinOutputs
        The three maps.
    """
    hidden = net.swinViT(image, net.normalize)
    enc0 = net.encoder1(image)
    enc1 = net.encoder2(hidden[0])
    enc2 = net.encoder3(hidden[1])
    enc3 = net.encoder4(hidden[2])
    dec4 = net.encoder10(hidden[4])
    dec3 = net.decoder5(dec4, hidden[3])
    dec2 = net.decoder4(dec3, enc3)
    dec1 = net.decoder3(dec2, enc2)
    dec0 = net.decoder2(dec1, enc1)
    out = net.decoder1(dec0, enc0)
    return SwinOutputs(net.out(out), dec4, out)
