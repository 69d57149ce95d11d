"""The multimodal Swin-UNETR resectability model of METHOD.md section 1.

One shared Swin-UNETR encoder-decoder segments the 16 labels; its bottleneck (``encoder10``
output, global-average-pooled) is projected to a 256-d image vector; a clinical MLP
(input -> 64 -> 32, LayerNorm + ReLU) embeds the preprocessed clinical vector; the 288-d
concatenation goes through a fusion head (LayerNorm, ReLU, dropout) to three NCCN logits.
Both heads' gradients reach the shared encoder.

Clinical knock-out: :meth:`ResectabilityNet.store_clinical_mean` keeps the training-mean clinical
embedding as a buffer; :meth:`ResectabilityNet.forward` uses it for every patient whose clinical
inputs are absent (``clinical=None`` or ``clinical_present[b] == False``).

Image pooling (:class:`ImagePooling`): ``global`` is METHOD.md's; ``contact`` appends to the
256-d vector a 32-d projection of
:func:`inference.tasks.resectability._model_contact.contact_descriptor`, read at the tumor-vessel
interface of the network's own segmentation (fused vector 320-d), because the
global average did not carry the contact that decides the class (see that module).

Fusion (:class:`FusionMode`): ``concat`` is METHOD.md's; ``logit_sum`` gives the fusion head the
image vector alone and adds the logits of a linear clinical expert on the centred 32-d clinical
embedding, scaled by a weight fitted on inner-validation rows (stacking, see
:mod:`training._experts`): on a cohort of a hundred training rows the concatenated head
learned clinical patterns that did not generalise, while a product of separately trained experts
can only add what the validation rows confirm. A knocked-out patient's clinical logits are
exactly zero, so knock-out is the image expert alone.

Ablation modes: ``multimodal`` (the paper's model), ``ct_only`` (image vector -> head, the
segmentation head kept) and ``tabular_only`` (clinical MLP -> head; no image network at all).

MONAI requires ``feature_size`` to be a multiple of 12, so the paper's {24, 32, 48} becomes
{24, 36, 48} here; 12 is accepted for CPU demonstrations and tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from inference.tasks.resectability._model_contact import contact_descriptor, contact_width
from inference.tasks.resectability._model_swin import (
    SWIN_DIVISOR,
    bottleneck_channels,
    build_swin_unetr,
    swin_forward,
)
from pancreas_contracts.labels import NUM_CLASSES

__all__ = [
    "CLINICAL_EMBEDDING",
    "CONTACT_EMBEDDING",
    "FEATURE_SIZES",
    "IMAGE_EMBEDDING",
    "NCCN_CLASSES",
    "FusionMode",
    "ImagePooling",
    "ModelConfig",
    "ModelMode",
    "ModelOutput",
    "ResectabilityNet",
]

NCCN_CLASSES: tuple[str, ...] = ("resectable", "borderline_resectable", "locally_advanced")
"""Class names of the three logits, in order (0, 1, 2)."""

FEATURE_SIZES: tuple[int, ...] = (12, 24, 36, 48)
"""Accepted Swin-UNETR feature sizes (multiples of 12; 12 only for CPU demos and tests)."""

IMAGE_EMBEDDING = 256
CLINICAL_EMBEDDING = 32
CONTACT_EMBEDDING = 32


class ImagePooling(StrEnum):
    """How the image vector is pooled (see :mod:`inference.tasks.resectability._model_contact`)."""

    GLOBAL = "global"
    """METHOD.md: the bottleneck averaged over the cube -> 256-d."""
    CONTACT = "contact"
    """The 256-d global vector plus a 32-d contact vector read at the tumor-vessel interface."""


class FusionMode(StrEnum):
    """How the clinical embedding reaches the logits (multimodal mode only)."""

    CONCAT = "concat"
    """METHOD.md: image and clinical vectors concatenated -> fusion head."""
    LOGIT_SUM = "logit_sum"
    """Image vector -> fusion head, plus ``clinical_weight`` x a linear clinical expert."""


class ModelMode(StrEnum):
    """Which inputs reach the classification head."""

    MULTIMODAL = "multimodal"
    CT_ONLY = "ct_only"
    TABULAR_ONLY = "tabular_only"


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters that fix the network's shape.

    Parameters
    ----------
    clinical_features
        Length of the preprocessed clinical vector (one-hot + z-scored columns).
    feature_size
        Swin-UNETR feature size, one of :data:`FEATURE_SIZES`.
    mode
        :class:`ModelMode` value.
    fusion_hidden
        Width of the fusion head's hidden layer.
    dropout
        Dropout probability in the fusion head.
    dropout_path
        Stochastic-depth rate inside the Swin transformer.
    window_size
        Swin attention window in tokens. The paper's 7 at 1 mm spans 14 mm; at the CPU demo's
        2.5 mm a window of 4 spans 20 mm and costs about a third of the time of 7 (whose
        padded 35^3 token grid makes attention dominate at 64^3 input).
    seg_classes
        Segmentation classes (16 labels of :mod:`pancreas_contracts.labels`).
    image_pooling
        :class:`ImagePooling` value; ``"global"`` is METHOD.md's model.
    clinical_dropout
        Training only: the probability that a patient's clinical embedding is replaced by the
        batch's mean embedding, as knock-out replaces it by the training mean at inference.
        It keeps the head from leaning on the clinical rows alone and trains the knock-out
        path (imaging only when the registry is unreachable); 0 is METHOD.md's model.
    fusion
        :class:`FusionMode` value; ``"concat"`` is METHOD.md's model.

    Raises
    ------
    ValueError
        On an unsupported feature size, mode or out-of-range value.
    """

    clinical_features: int
    feature_size: int = 24
    mode: str = ModelMode.MULTIMODAL.value
    fusion_hidden: int = 128
    dropout: float = 0.3
    dropout_path: float = 0.0
    seg_classes: int = NUM_CLASSES
    window_size: int = 7
    image_pooling: str = ImagePooling.GLOBAL.value
    clinical_dropout: float = 0.0
    fusion: str = FusionMode.CONCAT.value

    def __post_init__(self) -> None:
        if self.feature_size not in FEATURE_SIZES:
            raise ValueError(
                f"feature size must be one of {FEATURE_SIZES} (MONAI needs multiples of 12), "
                f"got {self.feature_size}"
            )
        ModelMode(self.mode)
        ImagePooling(self.image_pooling)
        FusionMode(self.fusion)
        if self.clinical_features < 1 or self.fusion_hidden < 1 or self.seg_classes < 2:
            raise ValueError("clinical_features, fusion_hidden and seg_classes must be positive")
        rates = (self.dropout, self.dropout_path, self.clinical_dropout)
        if not all(0.0 <= rate < 1.0 for rate in rates):
            raise ValueError("dropout rates must be within [0, 1)")
        if not 2 <= self.window_size <= 12:
            raise ValueError(f"window size must be 2-12 tokens, got {self.window_size}")

    @property
    def model_mode(self) -> ModelMode:
        """The mode as an enum."""
        return ModelMode(self.mode)

    @property
    def clinical_expert(self) -> bool:
        """Whether the clinical embedding reaches the logits through a separate expert."""
        return self.fusion == FusionMode.LOGIT_SUM and self.model_mode is ModelMode.MULTIMODAL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the bundle)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class ModelOutput:
    """What one forward pass returns.

    Attributes
    ----------
    class_logits
        ``(B, 3)`` NCCN logits.
    seg_logits
        ``(B, 16, D, H, W)`` segmentation logits, ``None`` in tabular-only mode.
    knocked_out
        ``(B,)`` bool: which patients used the stored mean clinical embedding.
    """

    class_logits: torch.Tensor
    seg_logits: torch.Tensor | None
    knocked_out: torch.Tensor


def _mlp_block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.ReLU(inplace=True)]


class ResectabilityNet(nn.Module):
    """Swin-UNETR with an auxiliary segmentation head and a multimodal NCCN head.

    Parameters
    ----------
    config
        Network shape; see :class:`ModelConfig`.
    """

    clinical_mean: torch.Tensor
    clinical_mean_set: torch.Tensor
    clinical_weight: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        mode = config.model_mode
        self.swin = (
            None
            if mode is ModelMode.TABULAR_ONLY
            else build_swin_unetr(
                config.feature_size, config.seg_classes, config.dropout_path, config.window_size
            )
        )
        self.image_projection = (
            None
            if self.swin is None
            else nn.Sequential(
                nn.Linear(bottleneck_channels(config.feature_size), IMAGE_EMBEDDING),
                nn.ReLU(inplace=True),
            )
        )
        self.clinical_mlp = (
            None
            if mode is ModelMode.CT_ONLY
            else nn.Sequential(
                *_mlp_block(config.clinical_features, 64), *_mlp_block(64, CLINICAL_EMBEDDING)
            )
        )
        contact = self.swin is not None and config.image_pooling == ImagePooling.CONTACT
        width = contact_width(config.feature_size)
        self.contact_projection = (
            # LayerNorm first: the descriptor mixes log areas, shares and decoder features.
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, CONTACT_EMBEDDING), nn.ReLU())
            if contact
            else None
        )
        # The linear clinical expert of logit-sum fusion (trained alone, then weighted).
        self.clinical_head = (
            nn.Linear(CLINICAL_EMBEDDING, len(NCCN_CLASSES)) if config.clinical_expert else None
        )
        concatenated = self.clinical_mlp is not None and self.clinical_head is None
        fused = (
            (IMAGE_EMBEDDING if self.swin is not None else 0)
            + (CONTACT_EMBEDDING if contact else 0)
            + (CLINICAL_EMBEDDING if concatenated else 0)
        )
        self.fusion_head = nn.Sequential(
            nn.LayerNorm(fused),
            nn.Linear(fused, config.fusion_hidden),
            nn.LayerNorm(config.fusion_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.fusion_hidden, len(NCCN_CLASSES)),
        )
        self.register_buffer("clinical_mean", torch.zeros(CLINICAL_EMBEDDING))
        self.register_buffer("clinical_mean_set", torch.zeros((), dtype=torch.bool))
        if self.clinical_head is not None:
            # 0 until fitted: the image expert trains alone first.
            self.register_buffer("clinical_weight", torch.zeros(()))

    @property
    def fused_features(self) -> int:
        """Width of the concatenated vector (288 in multimodal mode)."""
        first = self.fusion_head[0]
        assert isinstance(first, nn.LayerNorm)
        return int(first.normalized_shape[0])

    def embed_clinical(self, clinical: torch.Tensor) -> torch.Tensor:
        """``(B, 32)`` clinical embedding of preprocessed clinical vectors.

        Raises
        ------
        ValueError
            In CT-only mode (there is no clinical pathway).
        """
        if self.clinical_mlp is None:
            raise ValueError("the CT-only model has no clinical pathway")
        out: torch.Tensor = self.clinical_mlp(clinical)
        return out

    def _embed_with_dropout(self, clinical: torch.Tensor) -> torch.Tensor:
        embedding = self.embed_clinical(clinical)
        rate = self.config.clinical_dropout
        if not self.training or rate <= 0.0 or len(embedding) < 2:
            return embedding
        dropped = torch.rand(len(embedding), device=embedding.device) < rate
        mean = embedding.mean(dim=0, keepdim=True).detach()
        return torch.where(dropped[:, None], mean, embedding)

    @torch.no_grad()
    def store_clinical_mean(self, clinical: torch.Tensor) -> None:
        """Store the mean embedding of ``clinical`` (the training rows) for knock-out.

        Parameters
        ----------
        clinical
            ``(N, clinical_features)`` preprocessed training rows.
        """
        was_training = self.training
        self.eval()
        self.clinical_mean.copy_(self.embed_clinical(clinical).mean(dim=0))
        self.clinical_mean_set.fill_(True)
        self.train(was_training)

    def forward(
        self,
        image: torch.Tensor | None,
        clinical: torch.Tensor | None,
        clinical_present: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Segment and classify a batch.

        Parameters
        ----------
        image
            ``(B, 1, D, H, W)``, sizes multiples of 32, at least one of them 64 or more;
            ignored (may be ``None``) in tabular-only mode.
        clinical
            ``(B, clinical_features)`` preprocessed vectors, or ``None`` when absent for the
            whole batch (knock-out).
        clinical_present
            ``(B,)`` bool; ``False`` rows use the stored mean embedding.

        Returns
        -------
        ModelOutput
            Class logits, segmentation logits and the knock-out mask.

        Raises
        ------
        ValueError
            On missing required inputs, a bad image size, or knock-out before
            :meth:`store_clinical_mean`.
        """
        seg_logits: torch.Tensor | None = None
        pooled: torch.Tensor | None = None
        if self.swin is not None:
            if image is None:
                raise ValueError("this model needs an image")
            seg_logits, pooled = self.encode_image(image)
        logits, knocked = self.classify(pooled, clinical, clinical_present)
        return ModelOutput(logits, seg_logits, knocked)

    def classify(
        self,
        pooled: torch.Tensor | None,
        clinical: torch.Tensor | None,
        clinical_present: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """NCCN logits and knock-out mask from :meth:`encode_image`'s pooled features.

        Parameters
        ----------
        pooled
            ``(B, pooled_features)``; ``None`` in tabular-only mode.
        clinical, clinical_present
            As in :meth:`forward`.

        Returns
        -------
        tuple of torch.Tensor
            ``(B, 3)`` logits and ``(B,)`` bool knock-out mask.

        Raises
        ------
        ValueError
            On missing inputs or knock-out before :meth:`store_clinical_mean`.
        """
        parts: list[torch.Tensor] = []
        expert: torch.Tensor | None = None
        batch = _batch_size(pooled, clinical)
        if self.swin is not None:
            if pooled is None:
                raise ValueError("this model needs an image")
            parts.append(self.project_image(pooled))
        device = parts[0].device if parts else self.clinical_mean.device
        knocked = torch.zeros(batch, dtype=torch.bool, device=device)
        if self.clinical_mlp is not None:
            if clinical is None:
                knocked = torch.ones(batch, dtype=torch.bool, device=device)
                embedding = self.clinical_mean.expand(batch, -1)
            else:
                embedding = self._embed_with_dropout(clinical)
                if clinical_present is not None:
                    knocked = ~clinical_present.to(device=device, dtype=torch.bool)
                    mean = self.clinical_mean.expand(batch, -1)
                    embedding = torch.where(knocked[:, None], mean, embedding)
            if bool(knocked.any()) and not bool(self.clinical_mean_set):
                raise ValueError("clinical knock-out needs a stored training-mean embedding")
            if self.clinical_head is None:
                parts.append(embedding)
            else:
                expert = self.clinical_weight * self.centred_clinical_logits(embedding)
        logits: torch.Tensor = self.fusion_head(torch.cat(parts, dim=1))
        if expert is not None:
            # Centred on the training-mean embedding: a knocked-out patient adds exactly 0.
            logits = logits + expert
        return logits, knocked

    @property
    def clinical_expert_weight(self) -> float | None:
        """The fitted weight of the clinical expert; ``None`` without one (not logit sum)."""
        return None if self.clinical_head is None else float(self.clinical_weight)

    def centred_clinical_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """Unweighted clinical-expert logits of ``(B, 32)`` embeddings, centred on the mean.

        Raises
        ------
        ValueError
            Unless the model has a clinical expert (``fusion="logit_sum"``, multimodal).
        """
        head = self._expert_head()
        return nn.functional.linear(embedding - self.clinical_mean, head.weight)

    def clinical_expert_logits(self, clinical: torch.Tensor) -> torch.Tensor:
        """``(B, 3)`` logits of the clinical expert alone (logit-sum fusion), for its training.

        Raises
        ------
        ValueError
            Unless the model has a clinical expert (``fusion="logit_sum"``, multimodal).
        """
        out: torch.Tensor = self._expert_head()(self.embed_clinical(clinical))
        return out

    def _expert_head(self) -> nn.Linear:
        if self.clinical_head is None:
            raise ValueError("this model has no clinical expert (fusion is not logit_sum)")
        return self.clinical_head

    def encode_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits and the pooled image features, before any projection.

        The pooled features are the bottleneck's global average, followed in contact pooling
        by :func:`inference.tasks.resectability._model_contact.contact_descriptor`. With the image
        branch frozen they are all the classifier needs of an image, so training can compute them
        once.

        Parameters
        ----------
        image
            ``(B, 1, D, H, W)``, sizes multiples of 32, at least one of them 64 or more.

        Returns
        -------
        tuple of torch.Tensor
            ``(B, 16, D, H, W)`` logits and ``(B, pooled_features)``.

        Raises
        ------
        ValueError
            On a bad image size or in tabular-only mode.
        """
        if self.swin is None:
            raise ValueError("the tabular-only model has no image pathway")
        if any(s % SWIN_DIVISOR for s in image.shape[2:]):
            raise ValueError(f"image sizes must be multiples of {SWIN_DIVISOR}")
        if all(s == SWIN_DIVISOR for s in image.shape[2:]):
            # The bottleneck would be 1 voxel: instance norm cannot normalise it.
            raise ValueError(f"the image needs at least one side of {2 * SWIN_DIVISOR}")
        maps = swin_forward(self.swin, image)
        pooled = maps.bottleneck.mean(dim=(2, 3, 4))
        if self.contact_projection is not None:
            descriptor = contact_descriptor(maps.seg_logits, maps.decoder)
            pooled = torch.cat([pooled.float(), descriptor], dim=1)
        return maps.seg_logits, pooled

    def project_image(self, pooled: torch.Tensor) -> torch.Tensor:
        """The image vector (256-d, or 288-d with contact pooling) of :meth:`encode_image`'s."""
        assert self.image_projection is not None
        bottleneck = bottleneck_channels(self.config.feature_size)
        vector: torch.Tensor = self.image_projection(pooled[:, :bottleneck])
        if self.contact_projection is None:
            return vector
        contact: torch.Tensor = self.contact_projection(pooled[:, bottleneck:])
        return torch.cat([vector, contact], dim=1)


def _batch_size(image: torch.Tensor | None, clinical: torch.Tensor | None) -> int:
    if image is not None:
        return int(image.shape[0])
    if clinical is not None:
        return int(clinical.shape[0])
    raise ValueError("give an image, clinical vectors or both")
