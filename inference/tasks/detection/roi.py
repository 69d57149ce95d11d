"""The detector's two cubes: the coarse stage-1 cube and the stage-2 pancreas ROI.

Stage 1 reads a ``cube_mm`` cube centred on the scan's middle voxel (no label is needed to
place it, so training and analysis see the same cube); the largest connected component of its
pancreas segmentation gives the ROI centre (its bounding-box centre, so that head and tail of
an elongated pancreas both fit). Stage 2 reads its finer cube centred there. Both cubes are
made by :func:`inference.preprocessing.preprocess_volume` (crop, anti-aliased resampling, HU
window, z-score), training and analysis alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.preprocessing import PreprocessConfig, Preprocessed, preprocess_volume
from inference.tasks.detection.model import NetConfig
from inference.volume import Volume

__all__ = ["cube_affine", "cube_config", "read_cube", "roi_centre", "scan_centre"]

Centre = tuple[float, float, float]


def cube_config(config: NetConfig) -> PreprocessConfig:
    """The preprocessing of a stage's cube."""
    return PreprocessConfig(target_size=config.cube_size, cube_mm=config.cube_mm)


def scan_centre(image: Volume) -> Centre:
    """RAS+ mm of the scan's middle voxel: where the stage-1 cube is centred."""
    middle = (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0
    x, y, z = image.voxel_to_world(middle[None, :])[0]
    return (float(x), float(y), float(z))


def cube_affine(centre: Sequence[float], config: NetConfig) -> npt.NDArray[np.float64]:
    """Voxel-to-RAS+ affine of a stage's cube centred at ``centre`` (as preprocessing lays it)."""
    spacing = config.spacing_mm
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.asarray(centre, dtype=np.float64) - spacing * (config.cube_size - 1) / 2.0
    return affine


def read_cube(
    image: Volume, config: NetConfig, centre: Sequence[float], label: Volume | None = None
) -> Preprocessed:
    """A stage's input cube (and label cube) centred at ``centre`` (RAS+ mm)."""
    return preprocess_volume(image, cube_config(config), label, centre_mm=centre)


def roi_centre(pancreas: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> Centre | None:
    """Bounding-box centre (RAS+ mm) of the largest component of a pancreas mask, or ``None``.

    Parameters
    ----------
    pancreas
        Stage 1's pancreas mask on its cube.
    affine
        The cube's voxel-to-RAS+ affine (:func:`cube_affine`).
    """
    labelled, count = ndimage.label(pancreas)
    if count == 0:
        return None
    sizes = np.bincount(labelled.ravel())[1:]
    coords = np.argwhere(labelled == int(np.argmax(sizes)) + 1)
    middle = (coords.min(axis=0) + coords.max(axis=0)) / 2.0
    x, y, z = (affine @ np.r_[middle, 1.0])[:3]
    return (float(x), float(y), float(z))
