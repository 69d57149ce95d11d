"""The augmentations beyond the paper's: spacing, intensity, noise and label-wise intensities.

:func:`extra_transforms` turns :class:`training.config.Augmentations` into MONAI transforms
over ``{"image", "label"}`` channel-first tensors (on the training device), which
:func:`training.dataset.make_augmentation` puts around the paper's chain: the label-wise
intensities before it (the synthetic image is then flipped, rotated and disturbed like a CT),
the others after it. An augmentation at probability 0 adds no transform, so the default chain
is the paper's, draw for draw.

:class:`RandLabelwiseIntensityd` is the label-wise one (no MONAI transform does it): the
SynthSeg idea of Billot et al. (Medical Image Analysis 2023), which trains on images whose
every label has a random intensity so that the network learns shapes and context rather than
one scanner's (here: one phantom generator's) Hounsfield units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.transforms.transform import MapTransform, RandomizableTransform

from pancreas_contracts.labels import NUM_CLASSES, label_by_name
from training.config import Augmentations

__all__ = ["PANCREAS", "TUMOR", "RandLabelwiseIntensityd", "extra_transforms"]

PANCREAS = label_by_name("pancreas").value
TUMOR = label_by_name("tumor").value


class RandLabelwiseIntensityd(RandomizableTransform, MapTransform):
    """With probability ``prob``, replace the image by label-wise random intensities.

    Each foreground label gets a mean drawn from U(0, 1) and Gaussian noise of a standard
    deviation drawn from U(0, ``noise``); the tumor's mean is drawn below the pancreas's by
    U(``tumor_contrast``, 0.5) (a tumor as bright as its pancreas would be a label the image
    does not show). The background, which holds every unlabelled organ, bone, fat and air, is
    the original image under a random linear map onto the same range: its shapes stay, its
    intensities do not. The result is blurred (sigma drawn from U(0, ``blur``) voxels, the
    partial-volume edge of a real reconstruction) and z-scored over the cube, as the
    preprocessing z-scores a real CT.

    Parameters
    ----------
    image_key, label_key
        Keys of the ``(1, D, H, W)`` image and integer label map.
    prob
        Probability of replacing the image.
    noise, blur, tumor_contrast
        See above.
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        *,
        prob: float,
        noise: float = 0.15,
        blur: float = 1.0,
        tumor_contrast: float = 0.1,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, [image_key])
        self.image_key, self.label_key = image_key, label_key
        self.noise, self.blur, self.tumor_contrast = noise, blur, tumor_contrast
        self.means = torch.zeros(NUM_CLASSES)
        self.stds = torch.zeros(NUM_CLASSES)
        self.gain, self.sigma, self.noise_seed = 1.0, 0.0, 0

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply, and the label means, noise levels, map and blur."""
        super().randomize(None)
        if not self._do_transform:
            return
        means = self.R.uniform(0.0, 1.0, NUM_CLASSES)
        # Below the pancreas by [tumor_contrast, 0.5], even under 0: z-scoring follows.
        darker = self.R.uniform(self.tumor_contrast, max(self.tumor_contrast, 0.5))
        means[TUMOR] = means[PANCREAS] - darker
        self.means = torch.as_tensor(means, dtype=torch.float32)
        stds = self.R.uniform(0.0, self.noise, NUM_CLASSES)
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        self.gain = float(self.R.uniform(0.5, 1.5))
        self.sigma = float(self.R.uniform(0.0, self.blur))
        self.noise_seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, data: Mapping[Any, Any]) -> dict[Any, Any]:
        """The sample with its image replaced (or unchanged when not drawn)."""
        out = dict(data)
        self.randomize()
        if not self._do_transform:
            return out
        image = torch.as_tensor(out[self.image_key])
        label = torch.as_tensor(out[self.label_key], device=image.device).long()
        out[self.image_key] = self.synthesise(image.float(), label)
        return out

    def synthesise(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The label-wise image of the drawn parameters, z-scored (``image``'s shape)."""
        device = image.device
        index = label.clamp(0, NUM_CLASSES - 1)
        generator = torch.Generator(device=device).manual_seed(self.noise_seed)
        noise = torch.randn(image.shape, generator=generator, device=device)
        synthetic = self.means.to(device)[index] + self.stds.to(device)[index] * noise
        # The background keeps the CT's shapes: rescaled to [0, 1], then mapped at random.
        low, high = image.min(), image.max()
        unit = (image - low) / torch.clamp(high - low, min=1e-6)
        background = self.means[0].item() + self.gain * (unit - unit.mean())
        synthetic = torch.where(index == 0, background, synthetic)
        if self.sigma > 0.1:
            synthetic = _blur(synthetic, self.sigma)
        std = synthetic.std()
        return (synthetic - synthetic.mean()) / torch.clamp(std, min=1e-6)


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(C, D, H, W)`` tensor (MONAI's, on its device)."""
    from monai.networks.layers.simplelayers import GaussianFilter

    blur = GaussianFilter(spatial_dims=3, sigma=sigma).to(image.device)
    out: torch.Tensor = blur(image[None])[0]
    return out


def extra_transforms(augmentations: Augmentations) -> tuple[list[Any], list[Any]]:
    """The MONAI transforms of the augmentations switched on, in chain order.

    Parameters
    ----------
    augmentations
        The settings (:class:`training.config.Augmentations`).

    Returns
    -------
    tuple of list
        Dictionary transforms over ``image`` and ``label`` to run before the paper's chain
        (the label-wise intensities) and after it (the others); empty when all are off.
    """
    # local imports: MONAI's transform modules are heavy and only training needs them
    from monai.transforms.intensity.dictionary import (
        RandAdjustContrastd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )
    from monai.transforms.spatial.dictionary import RandSimulateLowResolutiond, RandZoomd

    a = augmentations
    made: dict[str, Any] = {
        "labelwise": lambda: RandLabelwiseIntensityd(
            prob=a.labelwise_prob, noise=a.labelwise_noise, blur=a.labelwise_blur,
            tumor_contrast=a.labelwise_tumor_contrast,
        ),
        "zoom": lambda: RandZoomd(
            ["image", "label"], prob=a.zoom_prob, min_zoom=a.zoom_range[0],
            max_zoom=a.zoom_range[1], mode=("trilinear", "nearest"), padding_mode="edge",
            keep_size=True,
        ),
        "lowres": lambda: RandSimulateLowResolutiond(
            "image", prob=a.lowres_prob, zoom_range=a.lowres_range
        ),
        "gamma": lambda: RandAdjustContrastd(
            "image", prob=a.gamma_prob, gamma=a.gamma_range, retain_stats=True
        ),
        "contrast": lambda: RandScaleIntensityd(
            "image", prob=a.contrast_prob, factors=a.contrast_factor
        ),
        "shift": lambda: RandShiftIntensityd("image", prob=a.shift_prob, offsets=a.shift_offset),
        "smooth": lambda: RandGaussianSmoothd(
            "image", prob=a.smooth_prob, sigma_x=a.smooth_sigma, sigma_y=a.smooth_sigma,
            sigma_z=a.smooth_sigma,
        ),
        "noise": lambda: RandGaussianNoised("image", prob=a.noise_prob, std=a.noise_std),
    }  # fmt: skip
    before = [made[name]() for name in a.active if name == "labelwise"]
    return before, [made[name]() for name in a.active if name != "labelwise"]
