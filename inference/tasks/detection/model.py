"""The two networks of the PDAC detector (METHOD.md section 2, ``docs/detection.md``).

Stage 1 (:func:`build_stage1`): a low-resolution 3D U-Net that segments the pancreas (labels
background / pancreas incl. lesion) in a coarse cube, to find the region of interest.

Stage 2 (:class:`MultiTaskNet`): on that region at a finer spacing, a U-Net of the same kind
segments the lesion (background / lesion: the detection map's source) and a classification
head decides PDAC vs non-PDAC from a feature pyramid (FPN, Lin et al. 2017) over the last three
encoder levels: each level is projected to ``fpn_channels`` by a 1x1x1 convolution, coarser
levels are upsampled and added top-down, smoothed by a 3x3x3 convolution, global-average-pooled,
concatenated and passed through a fully connected layer to two logits.

Both U-Nets are MONAI's ``DynUNet`` (nnU-Net's architecture) with kernels, strides and widths
from nnU-Net's planning rules (:func:`inference.tasks.detection.planning.plan_network`);
``nnunetv2`` itself is not a dependency. :class:`MultiTaskNet` runs the ``DynUNet``'s own
blocks in an explicit encoder/decoder loop so that the encoder's levels feed the FPN; its
segmentation output equals ``DynUNet.forward``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from monai.networks.nets.dynunet import DynUNet
from torch import nn
from torch.nn import functional

from inference.tasks.detection.planning import NetworkPlan, plan_network

__all__ = [
    "HEAD_POOLINGS",
    "MultiTaskNet",
    "MultiTaskOutput",
    "NetConfig",
    "build_dynunet",
    "build_stage1",
]

#: The classification head's pooling choices (:attr:`NetConfig.head_pooling`).
HEAD_POOLINGS = ("avg", "avg+max")


@dataclass(frozen=True)
class NetConfig:
    """Size of one stage's network and of the cube it reads.

    Attributes
    ----------
    cube_size
        Input voxels per side (a multiple of 16, the preprocessing grid's rule).
    cube_mm
        Side of the input cube in mm (spacing = ``cube_mm / cube_size``).
    base_filters, max_filters, max_pools
        nnU-Net's width rule and pooling cap (:func:`plan_network`).
    fpn_channels
        Width of the feature pyramid (stage 2 only).
    dropout
        Dropout before the classification layer (stage 2 only).
    head_pooling
        How the classification head pools each pyramid level (stage 2 only): ``avg``
        (global average) or ``avg+max`` (average and maximum, concatenated). The paper does
        not say; a 1-2 cm lesion is under 0.5 % of a 128 mm ROI, so an average alone dilutes
        it (docs/detection.md).
    """

    cube_size: int = 32
    cube_mm: float = 256.0
    base_filters: int = 8
    max_filters: int = 64
    max_pools: int = 4
    fpn_channels: int = 16
    dropout: float = 0.2
    head_pooling: str = "avg"

    def __post_init__(self) -> None:
        if self.cube_size < 16 or self.cube_size % 16 or not self.cube_mm > 0:
            raise ValueError("cube_size must be a positive multiple of 16 and cube_mm positive")
        if self.fpn_channels < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("fpn_channels must be >= 1 and dropout in [0, 1)")
        if self.head_pooling not in HEAD_POOLINGS:
            raise ValueError(f"head_pooling must be one of {HEAD_POOLINGS}: {self.head_pooling!r}")

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel size of the input cube."""
        return self.cube_mm / self.cube_size

    def plan(self) -> NetworkPlan:
        """The nnU-Net plan for this cube."""
        size, spacing = (self.cube_size,) * 3, (self.spacing_mm,) * 3
        return plan_network(
            size, spacing, base_filters=self.base_filters, max_filters=self.max_filters,
            max_pools=self.max_pools,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConfig:
        """Inverse of :meth:`to_dict` (unknown keys refused by the constructor)."""
        return cls(**data)


def build_dynunet(plan: NetworkPlan, out_channels: int = 2) -> DynUNet:
    """A one-channel-in 3D ``DynUNet`` with ``plan``'s kernels, strides and widths.

    Instance norm and leaky ReLU as in nnU-Net; no deep supervision.
    """
    return DynUNet(
        spatial_dims=3, in_channels=1, out_channels=out_channels,
        kernel_size=[list(k) for k in plan.kernels], strides=[list(s) for s in plan.strides],
        upsample_kernel_size=[list(s) for s in plan.strides[1:]], filters=list(plan.filters),
        norm_name=("INSTANCE", {"affine": True}), act_name=("leakyrelu", {"negative_slope": 0.01}),
        res_block=False,
    )  # fmt: skip


def build_stage1(config: NetConfig) -> DynUNet:
    """Stage 1: the low-resolution pancreas segmenter (2 logits: background, pancreas)."""
    return build_dynunet(config.plan(), out_channels=2)


@dataclass(frozen=True)
class MultiTaskOutput:
    """Stage 2's outputs for a batch.

    Attributes
    ----------
    seg_logits
        ``(B, 2, S, S, S)``: background, lesion.
    class_logits
        ``(B, 2)``: non-PDAC, PDAC.
    """

    seg_logits: torch.Tensor
    class_logits: torch.Tensor


class _FPNHead(nn.Module):
    """Top-down feature pyramid over three encoder levels, pooled, then one linear layer."""

    def __init__(
        self, widths: tuple[int, int, int], channels: int, dropout: float, pooling: str
    ) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv3d(w, channels, 1) for w in widths)
        self.smooth = nn.ModuleList(nn.Conv3d(channels, channels, 3, padding=1) for _ in widths)
        self.dropout = nn.Dropout(dropout)
        self.with_max = pooling == "avg+max"
        self.fc = nn.Linear((6 if self.with_max else 3) * channels, 2)

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        pooled = functional.adaptive_avg_pool3d(features, 1).flatten(1)
        if not self.with_max:
            return pooled
        return torch.cat([pooled, functional.adaptive_max_pool3d(features, 1).flatten(1)], dim=1)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Two class logits from the three levels, finest first."""
        laterals = [conv(x) for conv, x in zip(self.lateral, levels, strict=True)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            merged.insert(0, lateral + functional.interpolate(merged[0], size=lateral.shape[2:]))
        pooled = [
            self._pool(functional.relu(conv(p)))
            for conv, p in zip(self.smooth, merged, strict=True)
        ]
        logits: torch.Tensor = self.fc(self.dropout(torch.cat(pooled, dim=1)))
        return logits


class MultiTaskNet(nn.Module):
    """Stage 2: lesion segmentation + PDAC classification on the pancreas ROI.

    Parameters
    ----------
    config
        Cube and width settings; the U-Net is planned from them.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        plan = config.plan()
        self.unet = build_dynunet(plan, out_channels=2)
        widths = plan.filters[-3:]
        self.classifier = _FPNHead((widths[0], widths[1], widths[2]), config.fpn_channels,
                                   config.dropout, config.head_pooling)  # fmt: skip

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Encoder outputs, finest first; the last is the bottleneck."""
        unet = self.unet
        levels = [unet.input_block(image)]
        for block in unet.downsamples:
            levels.append(block(levels[-1]))
        levels.append(unet.bottleneck(levels[-1]))
        return levels

    def forward(self, image: torch.Tensor) -> MultiTaskOutput:
        """Segmentation and class logits of ``(B, 1, S, S, S)`` cubes."""
        levels = self.encode(image)
        out = levels[-1]
        for block, skip in zip(self.unet.upsamples, reversed(levels[:-1]), strict=True):
            out = block(out, skip)
        seg = self.unet.output_block(out)
        return MultiTaskOutput(seg, self.classifier(levels[-3:]))

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """The shared encoder's parameters (frozen while the classifier trains)."""
        unet = self.unet
        for module in (unet.input_block, unet.downsamples, unet.bottleneck):
            yield from module.parameters()

    def segmentation_parameters(self) -> Iterator[nn.Parameter]:
        """Encoder, decoder and segmentation output: all but the classification head."""
        yield from self.unet.parameters()

    def classification_parameters(self) -> Iterator[nn.Parameter]:
        """The FPN classification head."""
        yield from self.classifier.parameters()
