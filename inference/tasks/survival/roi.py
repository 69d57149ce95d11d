"""The tumor region the survival models read: a fixed physical cube and a native crop.

The paper standardises each tumor ROI to 96^3 voxels by linear interpolation before the
3D-DenseNet. Resizing every tumor to the same voxel count throws away its size, the strongest
prognostic factor the CT shows, so the node samples a cube of fixed physical size instead
(:class:`RoiConfig`: 80 mm at 2.5 mm, 32^3 voxels on two CPU cores), axis-aligned in world
(RAS+) coordinates and centred on the tumor's centroid, so the patient position (head- or
feet-first, supine or prone) does not change what the network sees.

Radiomics read the tumor on the CT's own voxels (PyRadiomics resamples them itself), cropped
to the tumor's bounding box plus a margin and reoriented to RAS+ by flips and permutations
only, so filters with a direction (wavelets) see the same anatomy in every position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.volume import Volume, to_canonical
from inference.volume_io import resample_to_reference

__all__ = ["RoiConfig", "TumorRoi", "native_crop", "tumor_cube"]

#: Air, for samples outside the scan.
_AIR_HU = -1000.0


@dataclass(frozen=True)
class RoiConfig:
    """The DenseNet's input cube and its intensity window.

    Attributes
    ----------
    size
        Voxels per side.
    spacing_mm
        Voxel size in mm (isotropic).
    window_hu
        HU clipped to this window, then scaled to [-1, 1].
    margin_mm
        Margin around the tumor's bounding box of the native crop (radiomics).
    """

    size: int = 32
    spacing_mm: float = 2.5
    window_hu: tuple[float, float] = (-150.0, 250.0)
    margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.size < 8 or self.spacing_mm <= 0 or self.margin_mm < 0:
            raise ValueError("a survival ROI needs size >= 8, spacing > 0 and margin >= 0")
        if not self.window_hu[0] < self.window_hu[1]:
            raise ValueError("the HU window must be increasing")

    def to_dict(self) -> dict[str, Any]:
        """For ``bundle.json``."""
        return {
            "size": self.size,
            "spacing_mm": self.spacing_mm,
            "window_hu": list(self.window_hu),
            "margin_mm": self.margin_mm,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoiConfig:
        """From ``bundle.json``."""
        low, high = data["window_hu"]
        return cls(
            size=int(data["size"]),
            spacing_mm=float(data["spacing_mm"]),
            window_hu=(float(low), float(high)),
            margin_mm=float(data["margin_mm"]),
        )


@dataclass(frozen=True, eq=False)
class TumorRoi:
    """The cube the DenseNet reads.

    Attributes
    ----------
    image
        CT windowed and scaled to [-1, 1], ``(size, size, size)`` float32.
    mask
        The tumor (1) on the same cube, float32.
    centre_ras
        The tumor's centroid in RAS+ mm.
    """

    image: npt.NDArray[np.float32]
    mask: npt.NDArray[np.float32]
    centre_ras: tuple[float, float, float]


def _centroid(tumor: Volume) -> npt.NDArray[np.float64]:
    index = np.argwhere(np.asarray(tumor.array) > 0)
    if index.size == 0:
        raise ValueError("the tumor mask is empty")
    centre: npt.NDArray[np.float64] = tumor.voxel_to_world(index.mean(axis=0))[0]
    return centre


def tumor_cube(ct: Volume, tumor: Volume, config: RoiConfig) -> TumorRoi:
    """The fixed physical cube around the tumor's centroid.

    Parameters
    ----------
    ct
        The CT in HU.
    tumor
        The tumor mask on the CT's grid (non-zero: tumor).
    config
        Cube size, spacing and window.

    Raises
    ------
    ValueError
        If the mask is empty or not on the CT's grid.
    """
    if tumor.shape != ct.shape or not np.allclose(tumor.affine, ct.affine, atol=1e-4):
        raise ValueError("the tumor mask must lie on the CT's grid")
    centre = _centroid(tumor)
    half = (config.size - 1) / 2.0
    affine = np.eye(4)
    affine[:3, :3] *= config.spacing_mm
    affine[:3, 3] = centre - half * config.spacing_mm
    reference = Volume(np.zeros((config.size,) * 3, dtype=np.uint8), affine)
    image = resample_to_reference(
        Volume(np.asarray(ct.array, dtype=np.float32), ct.affine), reference, order=1,
        fill_value=_AIR_HU,
    )  # fmt: skip
    mask = resample_to_reference(
        Volume((np.asarray(tumor.array) > 0).astype(np.float32), tumor.affine), reference, order=1
    )
    low, high = config.window_hu
    scaled = (np.clip(np.asarray(image.array, dtype=np.float32), low, high) - low) / (high - low)
    return TumorRoi(
        image=(scaled * 2.0 - 1.0).astype(np.float32),
        mask=(np.asarray(mask.array) >= 0.5).astype(np.float32),
        centre_ras=(float(centre[0]), float(centre[1]), float(centre[2])),
    )


def native_crop(ct: Volume, tumor: Volume, margin_mm: float) -> tuple[Volume, Volume]:
    """CT and tumor mask cropped to the tumor's box plus ``margin_mm``, in RAS+ axis order.

    Raises
    ------
    ValueError
        If the mask is empty.
    """
    ct_c, tumor_c = to_canonical(ct), to_canonical(tumor)
    index = np.argwhere(np.asarray(tumor_c.array) > 0)
    if index.size == 0:
        raise ValueError("the tumor mask is empty")
    pad = np.ceil(margin_mm / np.asarray(ct_c.spacing)).astype(int)
    low = np.maximum(index.min(axis=0) - pad, 0)
    high = np.minimum(index.max(axis=0) + pad + 1, np.asarray(ct_c.shape))
    window = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    shift = np.eye(4)
    shift[:3, 3] = low
    affine = ct_c.affine @ shift
    crop_ct = Volume(np.ascontiguousarray(ct_c.array[window]), affine)
    crop_tumor = Volume(np.ascontiguousarray(np.asarray(tumor_c.array)[window] > 0), affine)
    return crop_ct, crop_tumor
