"""The resectability network's input cube: crop, resample and normalise a CT.

METHOD.md section 1 (``docs/method.md``): a ``cube_mm`` cube (160 mm) around the pancreas
(centroid of labels 1-2 when a label map is given, else the centre the localisation stage
supplies, else the volume centre), sampled on an isotropic grid of ``target_size`` voxels (160
voxels = the paper's 1 mm; smaller sizes give coarser spacing for CPU training, with a Gaussian
anti-aliasing pre-filter), HU clipped to a window and z-scored within the cube. Training and
analysis call the same function, so a bundle sees at analysis time exactly the grid it learned on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume
from inference.volume_io import resample_to_reference

__all__ = ["PreprocessConfig", "Preprocessed", "preprocess_volume"]

_PANCREAS_LABELS = (1, 2)


@dataclass(frozen=True)
class PreprocessConfig:
    """How a CT is turned into the network's input cube.

    Parameters
    ----------
    target_size
        Voxels per side, a multiple of 16 (160 = the paper's 1 mm grid). The Swin-UNETR
        needs a multiple of 32 (its five 2x patch merges); its training config checks that.
    cube_mm
        Side of the cube in mm (160 in the paper).
    hu_window
        HU range kept before z-scoring.
    """

    target_size: int = 160
    cube_mm: float = 160.0
    hu_window: tuple[float, float] = (-200.0, 400.0)

    def __post_init__(self) -> None:
        if self.target_size < 16 or self.target_size % 16:
            raise ValueError(
                f"target size must be a positive multiple of 16, got {self.target_size}"
            )
        if not self.cube_mm > 0 or not self.hu_window[0] < self.hu_window[1]:
            raise ValueError("cube size must be positive and the HU window increasing")

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel size of the input cube."""
        return self.cube_mm / self.target_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the bundle)."""
        data = asdict(self)
        data["hu_window"] = list(self.hu_window)
        data["spacing_mm"] = self.spacing_mm
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        lo, hi = data.get("hu_window", (-200.0, 400.0))
        return cls(int(data["target_size"]), float(data["cube_mm"]), (float(lo), float(hi)))


@dataclass(frozen=True)
class Preprocessed:
    """One case on the network grid.

    Attributes
    ----------
    image
        ``(S, S, S)`` float32, z-scored.
    label
        ``(S, S, S)`` uint8 label map, or ``None``.
    centre_mm
        RAS+ centre of the cube.
    """

    image: npt.NDArray[np.float32]
    label: npt.NDArray[np.uint8] | None
    centre_mm: tuple[float, float, float]


def _cube_reference(centre: npt.NDArray[np.float64], config: PreprocessConfig) -> Volume:
    size, spacing = config.target_size, config.spacing_mm
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - spacing * (size - 1) / 2.0
    return Volume(np.zeros((size, size, size), dtype=np.uint8), affine)


def _pancreas_centre(label: Volume) -> npt.NDArray[np.float64] | None:
    mask = np.isin(np.asarray(label.array), _PANCREAS_LABELS)
    if not mask.any():
        return None
    index = np.array(ndimage.center_of_mass(mask), dtype=np.float64)
    world: npt.NDArray[np.float64] = label.voxel_to_world(index[None, :])[0]
    return world


def preprocess_volume(
    image: Volume,
    config: PreprocessConfig,
    label: Volume | None = None,
    centre_mm: Sequence[float] | None = None,
) -> Preprocessed:
    """Crop, resample and normalise one CT (and its label map).

    Parameters
    ----------
    image
        CT in HU, any orientation.
    config
        Target grid and intensity window.
    label
        Label map on any grid in the same world space; its pancreas centroid is the cube centre
        unless ``centre_mm`` is given.
    centre_mm
        RAS+ cube centre; default: pancreas centroid, else the volume centre.

    Returns
    -------
    Preprocessed
        The input cube (and label cube).
    """
    if centre_mm is not None:
        centre = np.asarray(centre_mm, dtype=np.float64)
    else:
        found = _pancreas_centre(label) if label is not None else None
        middle = (np.asarray(image.shape, dtype=np.float64) - 1) / 2
        centre = found if found is not None else image.voxel_to_world(middle[None, :])[0]
    reference = _cube_reference(centre, config)
    sigma = [max(0.0, 0.5 * (config.spacing_mm / s - 1.0)) for s in image.spacing]
    # The anti-aliasing is a Gaussian (mode "nearest") of the whole CT, computed only around
    # the voxels the cube reads: the same values, without smoothing a 300-slice CT.
    array = np.asarray(image.array, dtype=np.float32)
    cube = resample_to_reference(
        Volume(array, image.affine), reference, 1, fill_value=-1024.0, smooth_sigma=sigma
    )
    values = np.clip(np.asarray(cube.array, dtype=np.float32), *config.hu_window)
    std = float(values.std())
    values = (values - float(values.mean())) / (std if std > 1e-6 else 1.0)
    label_cube = None
    if label is not None:
        labels = resample_to_reference(label, reference, 0, fill_value=0)
        label_cube = np.asarray(labels.array, dtype=np.uint8)
    c = (float(centre[0]), float(centre[1]), float(centre[2]))
    return Preprocessed(values.astype(np.float32), label_cube, c)
