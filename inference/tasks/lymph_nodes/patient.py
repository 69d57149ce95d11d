"""Patient-level N status from tumor slices and the largest positive node (III-B).

:func:`tumor_slices` cuts the paper's nine 2D patches: the CT and the PDAC mask are resampled
to an isotropic cube of ``patch_size`` voxels and ``patch_mm`` mm centred on the tumor's centre
of mass (:func:`inference.preprocessing.preprocess_volume`, so the patches are z-scored the
same way in training and analysis); in each of the axial, sagittal and coronal planes the
``slices_per_plane`` slices with the largest PDAC area are kept. The paper centres its 224 x
224 inputs "at PDAC"; here every slice shares the tumor's 3D centre, so a slice's tumor may sit
off its middle (the paper does not say which centre it uses per slice).

:class:`PatientNet` is the paper's classifier on each patch, small: a ResNet-like 2D CNN
("Conv1" then residual stages) with the mask side branch (a Conv-ReLU on the mask, weights
initialised to 0 and biases to 1, multiplied element-wise with the Conv1 features, as the
paper writes; at initialisation it is the identity), the Texture Encoding Layer (Zhang et al.,
Deep TEN, CVPR 2017) on the last stage, ``F = Concat(GAP(F_L4), TEL(F_L4))`` (Eq. 6),
``F_comb = FC(BN(V_max)) + F`` (Eq. 7) with ``V_max`` the volume of the largest positive node
in mm^3 (0 without positive nodes), then a linear layer to two logits. The nine patches'
probabilities are averaged (the paper's ensemble). Without a tumor mask ``F`` is zero and only
the node branch speaks (``forward(None, None, volume)``); training must drop the tumor branch
now and then for that answer to mean anything.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional

from inference.preprocessing import PreprocessConfig, preprocess_volume
from inference.volume import Volume

__all__ = ["PATIENT_CLASSES", "PatientNet", "PatientNetConfig", "TumorSlices", "tumor_slices"]

#: The patient model's logits, in order.
PATIENT_CLASSES: Final = ("N0", "N+")


@dataclass(frozen=True)
class PatientNetConfig:
    """Sizes of the tumor-slice network and of its patches.

    Attributes
    ----------
    patch_size
        Pixels per side of a patch, a multiple of 16 (the paper: 224).
    patch_mm
        Side of a patch in mm (the paper: 224 pixels at 0.68 mm, about 152 mm).
    channels
        Width of Conv1 and of each residual stage (stride 2 each; ResNet-18: 64, 64, 128,
        256, 512).
    codewords
        Codewords of the Texture Encoding Layer (Deep TEN: 32); 0 leaves it out.
    slices_per_plane
        Largest-tumor slices per plane (the paper: 3, nine patches).
    """

    patch_size: int = 32
    patch_mm: float = 96.0
    channels: tuple[int, ...] = (8, 16, 32)
    codewords: int = 4
    slices_per_plane: int = 3

    def __post_init__(self) -> None:
        if self.patch_size < 16 or self.patch_size % 16 or not self.patch_mm > 0:
            raise ValueError("patch_size must be a positive multiple of 16 and patch_mm positive")
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError("channels needs Conv1's width and at least one stage")
        if self.codewords < 0 or self.slices_per_plane < 1:
            raise ValueError("codewords must be >= 0 and slices_per_plane >= 1")

    @property
    def feature_dim(self) -> int:
        """Length of ``F`` (Eq. 6): GAP's channels plus the TEL's codewords x channels."""
        return self.channels[-1] * (1 + self.codewords)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatientNetConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["channels"] = tuple(int(c) for c in values.get("channels", (8, 16, 32)))
        return cls(**values)


@dataclass(frozen=True, eq=False)
class TumorSlices:
    """The patches of one patient.

    Attributes
    ----------
    images
        ``(N, P, P)`` z-scored CT patches (``N = 3 * slices_per_plane`` at most; fewer when
        the tumor spans fewer slices in a plane).
    masks
        ``(N, P, P)`` PDAC masks (0/1, float32).
    """

    images: npt.NDArray[np.float32]
    masks: npt.NDArray[np.float32]


def tumor_slices(image: Volume, tumor: Volume, config: PatientNetConfig) -> TumorSlices | None:
    """The largest-tumor slices in the three planes (see the module docstring).

    Parameters
    ----------
    image
        The CT in HU.
    tumor
        The PDAC mask (non-zero = tumor) on any grid in the same world space.
    config
        Patch size and slices per plane.

    Returns
    -------
    TumorSlices or None
        ``None`` when the mask is empty (or falls outside the patch cube).
    """
    mask = np.asarray(tumor.array) != 0
    if not mask.any():
        return None
    centre = tumor.voxel_to_world(np.array(ndimage.center_of_mass(mask))[None, :])[0]
    binary = Volume(mask.astype(np.uint8), tumor.affine)
    cube = preprocess_volume(
        image, PreprocessConfig(target_size=config.patch_size, cube_mm=config.patch_mm), binary,
        centre_mm=centre,
    )  # fmt: skip
    assert cube.label is not None
    labels = cube.label.astype(np.float32)
    images, masks = [], []
    for axis in (2, 0, 1):  # axial (k), sagittal (i), coronal (j) on the RAS cube
        areas = labels.sum(axis=tuple(a for a in range(3) if a != axis))
        for index in np.argsort(-areas, kind="stable")[: config.slices_per_plane]:
            if areas[index] > 0:
                images.append(np.take(cube.image, index, axis=axis))
                masks.append(np.take(labels, index, axis=axis))
    if not images:
        return None
    return TumorSlices(np.stack(images).astype(np.float32), np.stack(masks).astype(np.float32))


class _Residual(nn.Module):
    """A ResNet basic block with stride 2 and a 1x1 projection shortcut."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width_in, width_out, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width_out)
        self.conv2 = nn.Conv2d(width_out, width_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width_out)
        self.shortcut = nn.Sequential(
            nn.Conv2d(width_in, width_out, 1, stride=2, bias=False), nn.BatchNorm2d(width_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        out = functional.relu(self.bn1(self.conv1(x)))
        return functional.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _TextureEncoding(nn.Module):
    """Deep TEN's encoding layer: soft-assigned residuals to learned codewords, L2-normalised."""

    def __init__(self, channels: int, codewords: int) -> None:
        super().__init__()
        bound = 1.0 / (codewords * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(codewords, channels).uniform_(-bound, bound))
        self.scale = nn.Parameter(torch.empty(codewords).uniform_(-1.0, 0.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, K * C)`` encoding of ``(B, C, H, W)`` features."""
        x = features.flatten(2).transpose(1, 2)  # (B, N, C)
        residual = x[:, :, None, :] - self.codewords[None, None]  # (B, N, K, C)
        weights = torch.softmax(self.scale * residual.pow(2).sum(-1), dim=2)  # (B, N, K)
        encoded = (weights[..., None] * residual).sum(1)  # (B, K, C)
        return functional.normalize(encoded.flatten(1), dim=1)


class PatientNet(nn.Module):
    """Tumor slices and the largest positive node's volume -> N0 / N+ logits (III-B).

    Parameters
    ----------
    config
        Patch and network sizes.
    """

    def __init__(self, config: PatientNetConfig) -> None:
        super().__init__()
        self.config = config
        first = config.channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, first, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(first),
            nn.ReLU(),
        )
        self.side = nn.Conv2d(1, first, 7, stride=2, padding=3)
        # the paper's initialisation: the side branch starts as the identity (x * relu(1))
        nn.init.zeros_(self.side.weight)
        nn.init.ones_(self.side.bias)  # type: ignore[arg-type]
        widths = config.channels
        self.stages = nn.Sequential(*(_Residual(a, b) for a, b in itertools.pairwise(widths)))
        self.tel = _TextureEncoding(widths[-1], config.codewords) if config.codewords else None
        self.volume_bn = nn.BatchNorm1d(1)
        self.volume_fc = nn.Linear(1, config.feature_dim)
        self.fc = nn.Linear(config.feature_dim, len(PATIENT_CLASSES))

    def tumor_features(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``F`` (Eq. 6) of ``(B, 1, P, P)`` patches and their masks."""
        features = self.conv1(images) * functional.relu(self.side(masks))
        last = self.stages(features)
        pooled = [functional.adaptive_avg_pool2d(last, 1).flatten(1)]
        if self.tel is not None:
            pooled.append(self.tel(last))
        return torch.cat(pooled, dim=1)

    def forward(
        self,
        images: torch.Tensor | None,
        masks: torch.Tensor | None,
        node_volume_mm3: torch.Tensor,
    ) -> torch.Tensor:
        """``(B, 2)`` logits; ``images`` and ``masks`` ``None`` for the node branch alone.

        Parameters
        ----------
        images, masks
            ``(B, 1, P, P)`` patches and PDAC masks, or both ``None``.
        node_volume_mm3
            ``(B,)`` volume of the largest positive node (0 when there is none).

        Raises
        ------
        ValueError
            If only one of ``images`` and ``masks`` is given.
        """
        if (images is None) != (masks is None):
            raise ValueError("give both the patches and their masks, or neither")
        volume = self.volume_fc(self.volume_bn(node_volume_mm3.reshape(-1, 1).float()))
        if images is None or masks is None:
            return self.fc(volume)  # type: ignore[no-any-return]
        return self.fc(volume + self.tumor_features(images, masks))  # type: ignore[no-any-return]
