"""Contact pooling: the image vector read at the tumor-vessel interface of the segmentation.

METHOD.md's image pathway averages the encoder bottleneck over the whole 160 mm cube. NCCN
resectability is decided by a few millimetres of tumor-vessel contact (METHOD.md section 1), a
signal that a global average of a 1/32-resolution map dilutes away: on the demo cohort a linear
probe on that vector reached a test AUC of 0.60-0.70 while the segmentation itself carried the
class. This module pools at full resolution where the decision is made. From the network's own
segmentation probabilities (softmax, so it stays differentiable) it forms, for the tumor and
for each key vessel of the NCCN rule (SMA, celiac trunk, common hepatic artery, SMV, portal
vein):

* the vessel's outer wall shell (a one-voxel soft dilation minus the vessel) and the part of it
  within one voxel of the tumor, the *touch* region;
* the touching wall area (log), its share of the wall within :data:`VICINITY_VOXELS` of the
  tumor, and for each of the three axes the largest per-slice share of the in-slice wall that
  touches the tumor. For a vessel crossing the slices this share is the contact angle over
  360 degrees, the NCCN definition; which axis crosses a vessel is left to the head;
* the last decoder features averaged over the touch region (what the wall looks like there);

and for the tumor its volume (log) and its mean decoder features. Label values are those of
:mod:`pancreas_contracts.labels`.
"""

from __future__ import annotations

import torch
from torch.nn import functional

__all__ = ["CONTACT_VESSELS", "VICINITY_VOXELS", "contact_descriptor", "contact_width"]

TUMOR_LABEL = 2
CONTACT_VESSELS: tuple[tuple[str, int], ...] = (
    ("SMA", 6),
    ("CA", 7),
    ("CHA", 10),
    ("SMV", 5),
    ("PV", 3),
)
"""The NCCN rule's key vessels and their segmentation labels."""

VICINITY_VOXELS = 4
"""Radius (voxels) of the tumor neighbourhood whose vessel wall the touch share is taken of."""

_SCALARS = 5  # log touch area, vicinity share, three per-axis slice shares
_SLICE_EPS = 2.0  # voxels: a slice grazing the vessel wall carries no angle


def contact_width(feature_size: int) -> int:
    """Length of :func:`contact_descriptor`'s vector for decoder features of this size."""
    return len(CONTACT_VESSELS) * (_SCALARS + feature_size) + feature_size + 1


def _masked_mean(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (features * weight).sum(dim=(2, 3, 4)) / (weight.sum(dim=(2, 3, 4)) + 1e-3)


def _soft_dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation by a cube of side ``2 radius + 1``, one axis at a time (same result)."""
    out = mask
    for axis in range(3):
        kernel, padding = [1, 1, 1], [0, 0, 0]
        kernel[axis], padding[axis] = 2 * radius + 1, radius
        out = functional.max_pool3d(out, tuple(kernel), stride=1, padding=tuple(padding))
    return out


def _slice_shares(touch: torch.Tensor, shell: torch.Tensor) -> list[torch.Tensor]:
    shares = []
    for axis in (2, 3, 4):
        others = tuple(d for d in (2, 3, 4) if d != axis)
        share = touch.sum(dim=others) / (shell.sum(dim=others) + _SLICE_EPS)
        shares.append(share.amax(dim=-1))
    return shares


def contact_descriptor(seg_logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The contact vector of a batch, in float32.

    Parameters
    ----------
    seg_logits
        ``(B, 16, D, H, W)`` segmentation logits.
    features
        ``(B, F, D, H, W)`` last decoder features (before the segmentation head).

    Returns
    -------
    torch.Tensor
        ``(B, contact_width(F))``.
    """
    probs = torch.softmax(seg_logits.float(), dim=1)
    feats = features.float()
    tumor = probs[:, TUMOR_LABEL : TUMOR_LABEL + 1]
    near = _soft_dilate(tumor, 1)
    vicinity = _soft_dilate(tumor, VICINITY_VOXELS)
    parts = [torch.log1p(tumor.sum(dim=(2, 3, 4))), _masked_mean(feats, tumor)]
    for _, label in CONTACT_VESSELS:
        vessel = probs[:, label : label + 1]
        shell = torch.relu(_soft_dilate(vessel, 1) - vessel)
        touch = shell * near
        area = touch.sum(dim=(2, 3, 4))
        around = (shell * vicinity).sum(dim=(2, 3, 4))
        parts += [torch.log1p(area), area / (around + 1.0), *_slice_shares(touch, shell)]
        parts.append(_masked_mean(feats, touch))
    return torch.cat(parts, dim=1)
