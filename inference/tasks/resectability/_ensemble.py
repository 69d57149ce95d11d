"""Ensemble inference on one preprocessed cube for :mod:`inference.analysis`.

Each bundle member segments the cube and classifies it; the ensemble is the mean of the
members' softmax probabilities (class and per-voxel), the uncertainty the standard deviation of
the members' probability of the winning class (0 for a one-model bundle).

With test-time flips (``flips=True``, settings ``tta_flips``) each member also classifies the
cube flipped along each of its three axes: the uncertainty is then the standard deviation of
the winning class's probability over every member and pass, so a one-model bundle has a spread.
The category and the segmentation stay those of the unflipped cube: a network trained without
flip augmentation (the demo bundle) has not learned mirrored anatomy.

Segmentation uses MONAI's ``sliding_window_inference`` with Gaussian blending when the cube is
larger than the network's window (``bundle.json`` ``inference.roi_size``, default the training
cube size); when the window covers the cube, one forward pass gives both heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from monai.inferers.utils import sliding_window_inference

from inference.bundle import BundleMember
from inference.tasks.resectability.model import ModelMode

__all__ = ["EnsembleOutput", "run_ensemble"]


@dataclass(frozen=True)
class EnsembleOutput:
    """Ensemble probabilities of one cube.

    Attributes
    ----------
    probabilities
        ``(3,)`` mean class probabilities.
    member_probabilities
        ``(M, 3)`` each member's class probabilities.
    uncertainty
        Standard deviation over members of the winning class's probability.
    seg_probabilities
        ``(16, S, S, S)`` float32 mean per-voxel probabilities.
    imputed
        Clinical variables the members' imputer filled in (empty on knock-out).
    knocked_out
        Whether the clinical pathway used the training-mean embedding.
    passes
        Classification passes per member that ``uncertainty`` spans (4 with flips, else 1).
    """

    probabilities: npt.NDArray[np.float64]
    member_probabilities: npt.NDArray[np.float64]
    uncertainty: float
    seg_probabilities: npt.NDArray[np.float32]
    imputed: tuple[str, ...]
    knocked_out: bool
    passes: int = 1


def _clinical_tensor(
    member: BundleMember, clinical: npt.NDArray[np.float64] | None, device: torch.device
) -> tuple[torch.Tensor | None, tuple[str, ...]]:
    if clinical is None or member.model.config.model_mode is ModelMode.CT_ONLY:
        return None, ()
    prepared = member.preprocessor.transform(clinical)
    return torch.from_numpy(prepared.features).to(device), prepared.imputed_names(0)


def _segment(
    member: BundleMember,
    image: torch.Tensor,
    clinical: torch.Tensor | None,
    roi: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class logits ``(1, 3)`` and segmentation logits ``(1, 16, S, S, S)`` of one member."""
    model = member.model
    out = model(image, clinical)
    if out.seg_logits is None:
        raise ValueError("the bundle's model has no segmentation head (tabular-only)")
    class_logits: torch.Tensor = out.class_logits
    if roi >= max(image.shape[2:]):
        return class_logits, out.seg_logits

    def seg_only(window: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor | None = model(window, clinical).seg_logits
        assert logits is not None
        return logits

    seg = sliding_window_inference(
        image, (roi, roi, roi), 1, seg_only, overlap=0.25, mode="gaussian", progress=False
    )
    assert isinstance(seg, torch.Tensor)
    return class_logits, seg


def run_ensemble(
    members: Sequence[BundleMember],
    cube: npt.NDArray[np.float32],
    clinical: npt.NDArray[np.float64] | None,
    *,
    device: torch.device,
    roi: int,
    flips: bool = False,
) -> EnsembleOutput:
    """Run every member on ``cube`` and average.

    Parameters
    ----------
    members
        The bundle's models (already on ``device``, in eval mode).
    cube
        ``(S, S, S)`` preprocessed input.
    clinical
        ``(1, 17)`` raw clinical values (NaN missing), or ``None`` for the knock-out path.
    device
        Where to run.
    roi
        Sliding-window size in voxels.
    flips
        Add the three flipped classification passes per member to the uncertainty.

    Returns
    -------
    EnsembleOutput
        Mean probabilities, their spread and the clinical bookkeeping.

    Raises
    ------
    ValueError
        If a member has no segmentation head or outputs non-finite values.
    """
    image = torch.from_numpy(np.ascontiguousarray(cube)[None, None]).to(device)
    class_probs: list[npt.NDArray[np.float64]] = []
    flip_probs: list[npt.NDArray[np.float64]] = []
    seg_sum: torch.Tensor | None = None
    imputed: tuple[str, ...] = ()
    knocked = True
    with torch.inference_mode():
        for member in members:
            member.model.eval()
            tensor, names = _clinical_tensor(member, clinical, device)
            imputed = imputed or names
            knocked = knocked and tensor is None
            class_logits, seg_logits = _segment(member, image, tensor, roi)
            probs = torch.softmax(class_logits.float(), dim=1)[0]
            seg = torch.softmax(seg_logits.float(), dim=1)[0]
            if not (bool(torch.isfinite(probs).all()) and bool(torch.isfinite(seg).all())):
                raise ValueError("the network produced non-finite values")
            class_probs.append(probs.cpu().numpy().astype(np.float64))
            seg_sum = seg if seg_sum is None else seg_sum + seg
            if flips:
                flip_probs.extend(_flipped_probabilities(member, image, tensor))
    assert seg_sum is not None
    stacked = np.stack(class_probs)
    mean = stacked.mean(axis=0)
    mean = mean / mean.sum()
    best = int(np.argmax(mean))
    passes = np.concatenate([stacked, np.asarray(flip_probs).reshape(-1, 3)])
    spread = float(passes[:, best].std()) if len(passes) > 1 else 0.0
    seg_mean = (seg_sum / len(members)).cpu().numpy().astype(np.float32)
    per_member = len(passes) // len(members)
    return EnsembleOutput(mean, stacked, spread, seg_mean, imputed, knocked, per_member)


def _flipped_probabilities(
    member: BundleMember, image: torch.Tensor, clinical: torch.Tensor | None
) -> list[npt.NDArray[np.float64]]:
    """Class probabilities of the cube flipped along each spatial axis (test-time flips)."""
    out = []
    for axis in (2, 3, 4):
        logits = member.model(torch.flip(image, dims=(axis,)), clinical).class_logits
        probs = torch.softmax(logits.float(), dim=1)[0]
        if not bool(torch.isfinite(probs).all()):
            raise ValueError("the network produced non-finite values")
        out.append(probs.cpu().numpy().astype(np.float64))
    return out
