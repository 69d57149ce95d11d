"""The three 3D networks of the lymph-node task (``seeds/ln_metastasis_distance_attention.txt``).

- :func:`build_organ_segmenter`: the organ & vessel segmenter (III-A-1, "Attention Map
  Generation"): a 3D nnU-Net (MONAI ``DynUNet``, planned by nnU-Net's rules through
  :func:`inference.tasks.detection.planning.plan_network`) with 11 outputs, background and the
  ten attention structures in the order of
  :data:`~pancreas_contracts.lymph_nodes.ATTENTION_STRUCTURES`;
- :class:`LymphNodeSegNet`: class-agnostic node segmentation (III-A-1, "Attention based Lymph
  Node Segmentation"): a DynUNet encoder/decoder whose penultimate decoder features (the last
  up-sampling block's output, full resolution) are multiplied element-wise by ``A^all``
  (resampled to the feature grid), then passed through a convolution block and a 2-class
  output. With deep supervision, every intermediate decoder output used is scaled by the
  attention map resampled to its grid, as the paper does. ``attention=False`` skips every
  multiplication: the paper's nnU-Net baseline for the ablation (same parameters otherwise, so
  the comparison isolates the attention);
- :class:`NodeClassifier`: instance-wise identification (III-A-2): the segmentation network's
  encoder (same plan, initialised from it by :meth:`NodeClassifier.init_from_segmenter`) and a
  new head (global average and maximum pooling of the bottleneck, one linear layer) on a cube
  centred on each node, at the segmentation grid's spacing; two logits, negative / positive.

The patient-level model (III-B) is :mod:`~inference.tasks.lymph_nodes.patient`. Sizes are
small by default so that CPU tests run in seconds; the paper's sizes are in the comments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import torch
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetOutBlock
from torch import nn
from torch.nn import functional

from inference.tasks.detection.model import build_dynunet
from inference.tasks.detection.planning import NetworkPlan, plan_network
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES

__all__ = [
    "CANDIDATE_CLASSES",
    "NODE_CLASSES",
    "ORGAN_CLASSES",
    "LymphNodeSegNet",
    "NodeClassifier",
    "NodeClassifierConfig",
    "SegConfig",
    "SegOutput",
    "UNetConfig",
    "build_organ_segmenter",
]

#: The organ segmenter's outputs: channel ``k`` is ``ATTENTION_STRUCTURES[k - 1]``.
ORGAN_CLASSES: Final = ("background", *(s.name for s in ATTENTION_STRUCTURES))
#: The node classifier's logits, in order.
NODE_CLASSES: Final = ("negative", "positive")
#: The logits of a classifier that also rejects candidates (``not_node_class``), in order.
CANDIDATE_CLASSES: Final = ("not-node", *NODE_CLASSES)

_NORM = ("INSTANCE", {"affine": True})
_ACT = ("leakyrelu", {"negative_slope": 0.01})


@dataclass(frozen=True)
class UNetConfig:
    """An isotropic input cube and the nnU-Net width rules of the U-Net that reads it.

    Attributes
    ----------
    cube_size
        Input voxels per side (a multiple of 16, the preprocessing grid's rule). The paper
        trains on 160 x 192 x 80 patches at 0.68 x 0.68 x 0.8 mm and slides over the scan.
    cube_mm
        Side of the cube in mm (spacing = ``cube_mm / cube_size``).
    base_filters, max_filters, max_pools
        nnU-Net's width rule and pooling cap (:func:`plan_network`; nnU-Net: 32, 320, 5).
    """

    cube_size: int = 32
    cube_mm: float = 256.0
    base_filters: int = 4
    max_filters: int = 32
    max_pools: int = 3

    def __post_init__(self) -> None:
        if self.cube_size < 16 or self.cube_size % 16 or not self.cube_mm > 0:
            raise ValueError("cube_size must be a positive multiple of 16 and cube_mm positive")
        self.plan()  # refuse widths the planner refuses, at construction

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
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict` (unknown keys refused by the constructor)."""
        return cls(**data)


def build_organ_segmenter(config: UNetConfig) -> nn.Module:
    """The organ & vessel segmenter: a ``DynUNet`` with 11 logits (:data:`ORGAN_CLASSES`).

    The paper's organ model is an nnU-Net trained on 19 classes of which it uses ten; this
    one is trained on those ten only (plus background).
    """
    return build_dynunet(config.plan(), out_channels=len(ORGAN_CLASSES))


@dataclass(frozen=True)
class SegConfig(UNetConfig):
    """The node segmentation network: its cube and U-Net, the attention switch and the head.

    Attributes
    ----------
    attention
        Multiply the decoder features by ``A^all`` (the paper's method); ``False``: the
        nnU-Net baseline of the ablation.
    head_channels
        Width of the convolution block after the attention (the paper does not give it; the
        penultimate decoder width, nnU-Net's 32, is the natural choice on a GPU).
    deep_supervision
        Intermediate decoder outputs with their own 1x1x1 head (training only; nnU-Net uses
        all but the two coarsest levels). 0: none.
    """

    attention: bool = True
    head_channels: int = 4
    deep_supervision: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head_channels < 1:
            raise ValueError("head_channels must be at least 1")
        if not 0 <= self.deep_supervision <= self.plan().levels - 2:
            raise ValueError("deep_supervision must lie in [0, levels - 2]")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegConfig:
        """Inverse of :meth:`to_dict` (unknown keys refused by the constructor)."""
        return cls(**data)


@dataclass(frozen=True)
class SegOutput:
    """The node segmentation network's outputs for a batch.

    Attributes
    ----------
    logits
        ``(B, 2, S, S, S)``: background, node.
    deep
        Deep-supervision logits, finest first, each at its decoder level's grid (empty
        without deep supervision).
    """

    logits: torch.Tensor
    deep: tuple[torch.Tensor, ...] = ()


def resize_attention(attention: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``attention`` ``(B, 1, ...)`` resampled (trilinear) to the spatial ``size``."""
    if attention.shape[2:] == size:
        return attention
    return functional.interpolate(attention, size=size, mode="trilinear", align_corners=False)


class _Encoder(nn.Module):
    """The encoder blocks of a planned ``DynUNet`` (the keys the classifier shares)."""

    def __init__(self, plan: NetworkPlan) -> None:
        super().__init__()
        unet = build_dynunet(plan, out_channels=2)
        self.input_block = unet.input_block
        self.downsamples = unet.downsamples
        self.bottleneck = unet.bottleneck

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Encoder outputs, finest first; the last is the bottleneck."""
        levels = [self.input_block(image)]
        for block in self.downsamples:
            levels.append(block(levels[-1]))
        levels.append(self.bottleneck(levels[-1]))
        return levels


class LymphNodeSegNet(nn.Module):
    """Class-agnostic node segmentation with distance-guided attention (III-A-1).

    Parameters
    ----------
    config
        Cube, widths and the attention switch; the U-Net is planned from them.
    """

    def __init__(self, config: SegConfig) -> None:
        super().__init__()
        self.config = config
        plan = config.plan()
        self.encoder = _Encoder(plan)
        # the DynUNet's decoder without its output block (the head below replaces it)
        self.upsamples = build_dynunet(plan, out_channels=2).upsamples
        width = plan.filters[0]
        self.head = nn.Sequential(
            UnetBasicBlock(3, width, config.head_channels, kernel_size=3, stride=1,
                           norm_name=_NORM, act_name=_ACT),
            UnetOutBlock(3, config.head_channels, 2),
        )  # fmt: skip
        deep_widths = plan.filters[1 : 1 + config.deep_supervision]
        self.deep_heads = nn.ModuleList(UnetOutBlock(3, w, 2) for w in deep_widths)

    def _scale(self, features: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        if not self.config.attention or attention is None:
            return features
        return features * resize_attention(attention, features.shape[2:])

    def forward(self, image: torch.Tensor, attention: torch.Tensor | None = None) -> SegOutput:
        """Node logits of ``(B, 1, S, S, S)`` cubes and their ``(B, 1, S, S, S)`` ``A^all``.

        Raises
        ------
        ValueError
            If the network uses attention and none is given, or its batch does not match.
        """
        if self.config.attention and (attention is None or attention.shape[0] != len(image)):
            raise ValueError("this network needs one attention map per image, (B, 1, ...)")
        levels = self.encoder(image)
        out, decoded = levels[-1], []
        for block, skip in zip(self.upsamples, reversed(levels[:-1]), strict=True):
            out = block(out, skip)
            decoded.append(out)
        logits = self.head(self._scale(decoded[-1], attention))
        # decoded[-2] is one level coarser than the output, decoded[-3] two, ...
        deep = tuple(
            head(self._scale(decoded[-2 - i], attention)) for i, head in enumerate(self.deep_heads)
        )
        return SegOutput(logits, deep)


@dataclass(frozen=True)
class NodeClassifierConfig:
    """The node classifier's crop (its spacing is the segmentation grid's).

    Attributes
    ----------
    crop_size
        Voxels per side of the cube centred on a node, a multiple of 16 (the preprocessing
        grid's rule) and of the segmentation plan's total downsampling (the paper: 96 x 96 x
        80 voxels, about 65 mm).
    dropout
        Dropout before the linear layer.
    not_node_class
        A third logit, *not a node*, trained on the segmenter's false positives: the
        false-positive reduction stage of two-stage lymph-node detection (candidates, then a
        classifier on each; Roth et al., MICCAI 2014; Setio et al., IEEE TMI 2016). The paper
        has no such stage; ``False`` is its classifier.
    """

    crop_size: int = 16
    dropout: float = 0.0
    not_node_class: bool = False

    @property
    def classes(self) -> tuple[str, ...]:
        """The logits, in order."""
        return CANDIDATE_CLASSES if self.not_node_class else NODE_CLASSES

    def __post_init__(self) -> None:
        if self.crop_size < 16 or self.crop_size % 16 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("crop_size must be a positive multiple of 16 and dropout in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeClassifierConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


class NodeClassifier(nn.Module):
    """Positive / negative classification of one node's crop (III-A-2).

    Parameters
    ----------
    seg_config
        The segmentation network's configuration: its plan builds the shared encoder.
    config
        The crop and the head.

    Raises
    ------
    ValueError
        If the crop is not a multiple of the plan's total downsampling.
    """

    def __init__(self, seg_config: SegConfig, config: NodeClassifierConfig) -> None:
        super().__init__()
        plan = seg_config.plan()
        if any(config.crop_size % d for d in plan.divisor()):
            raise ValueError(f"crop_size {config.crop_size} is not a multiple of {plan.divisor()}")
        self.seg_config, self.config = seg_config, config
        self.encoder = _Encoder(plan)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(2 * plan.filters[-1], len(config.classes))

    @property
    def crop_mm(self) -> float:
        """Side of the crop in mm (at the segmentation grid's spacing)."""
        return self.config.crop_size * self.seg_config.spacing_mm

    def init_from_segmenter(self, segmenter: LymphNodeSegNet) -> None:
        """Copy the trained segmentation encoder (the paper's initialisation).

        Raises
        ------
        ValueError
            If the two networks were planned differently.
        """
        if segmenter.config.plan() != self.seg_config.plan():
            raise ValueError("the segmenter's plan differs from this classifier's")
        self.encoder.load_state_dict(segmenter.encoder.state_dict(), strict=True)

    def probabilities(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(node, metastasis)`` probabilities, each ``(B,)``, of :meth:`forward`'s logits.

        *node*: the candidate is a lymph node (1 without ``not_node_class``); *metastasis*:
        positive given that it is a node.
        """
        p = torch.softmax(logits.float(), dim=1)
        if not self.config.not_node_class:
            return torch.ones_like(p[:, 0]), p[:, 1]
        node = p[:, 1] + p[:, 2]
        return 1.0 - p[:, 0], p[:, 2] / node.clamp_min(1e-12)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` logits (:attr:`NodeClassifierConfig.classes`) of ``(B, 1, C, C, C)`` crops."""
        bottleneck = self.encoder(crops)[-1]
        pooled = torch.cat(
            [
                functional.adaptive_avg_pool3d(bottleneck, 1).flatten(1),
                functional.adaptive_max_pool3d(bottleneck, 1).flatten(1),
            ],
            dim=1,
        )
        logits: torch.Tensor = self.fc(self.dropout(pooled))
        return logits
