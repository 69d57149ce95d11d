"""Post-processing for :mod:`inference.analysis`: clean-up and mapping back to the CT grid.

Clean-up (on the cube grid, before mapping back): structures that are one connected piece in
every patient keep only their largest 26-connected component - the pancreas together with the
tumor (the tumor lies in or on the pancreas, so tumor pieces away from it go too), portal vein,
splenic vein, SMV, SMA, celiac trunk, aorta, IVC and common hepatic artery. Small branches and
ducts (proper hepatic, gastroduodenal and splenic arteries, pancreatic and bile ducts) may be
cut by partial volume and are kept as predicted. Removed voxels become background.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume
from inference.volume_io import resample_to_reference
from pancreas_contracts.labels import label_by_name

__all__ = [
    "SINGLE_COMPONENT",
    "clean_labels",
    "cube_reference",
    "field_of_view",
    "has_pancreas",
    "pancreas_is_cut",
    "to_ct_grid",
]

_PANCREAS: Final = (label_by_name("pancreas").value, label_by_name("tumor").value)
#: Labels (or groups of labels) kept as their largest connected component.
SINGLE_COMPONENT: Final[tuple[tuple[int, ...], ...]] = (
    _PANCREAS,
    *(
        (label_by_name(name).value,)
        for name in (
            "portal_vein",
            "splenic_vein",
            "smv",
            "sma",
            "celiac_trunk",
            "aorta",
            "ivc",
            "cha",
        )
    ),
)
_CONNECTIVITY: Final = np.ones((3, 3, 3), dtype=bool)


def cube_reference(centre: npt.NDArray[np.float64], size: int, spacing: float) -> Volume:
    """The analysis cube's grid (as :func:`inference.preprocessing.preprocess_volume` builds it)."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - spacing * (size - 1) / 2.0
    return Volume(np.zeros((size, size, size), dtype=np.uint8), affine)


def field_of_view(image: Volume, cube: Volume) -> npt.NDArray[np.bool_]:
    """Which cube voxels lie inside the CT's field of view."""
    ones = Volume(np.ones(image.shape, dtype=np.uint8), image.affine)
    inside = resample_to_reference(ones, cube, 0, fill_value=0)
    return np.asarray(inside.array, dtype=bool)


def clean_labels(labels: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], int]:
    """Keep the largest component of each :data:`SINGLE_COMPONENT` group.

    Returns
    -------
    tuple
        The cleaned label map and how many voxels were removed.
    """
    out = labels.copy()
    removed = 0
    for group in SINGLE_COMPONENT:
        mask = np.isin(out, group)
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure=_CONNECTIVITY)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        drop = mask & (components != int(np.argmax(sizes)))
        removed += int(drop.sum())
        out[drop] = 0
    return out, removed


def pancreas_is_cut(labels: npt.NDArray[np.uint8], inside: npt.NDArray[np.bool_]) -> bool:
    """Whether the pancreas touches the part of the cube outside the CT (cut by the scan)."""
    outside = ndimage.binary_dilation(~inside, structure=_CONNECTIVITY)
    return bool((np.isin(labels, _PANCREAS) & outside).any())


def has_pancreas(labels: npt.NDArray[np.generic]) -> bool:
    """Whether any pancreas or tumor voxel is present."""
    return bool(np.isin(labels, _PANCREAS).any())


def to_ct_grid(labels: npt.NDArray[np.uint8], cube: Volume, image: Volume) -> Volume:
    """Nearest-neighbour map of the cube's label map onto the CT grid (background outside)."""
    moving = Volume(labels, cube.affine)
    out = resample_to_reference(moving, image, 0, fill_value=0)
    return Volume(np.asarray(out.array, dtype=np.uint8), image.affine.copy())
