"""Post-processing for :mod:`inference.analysis`: clean-up and mapping back to the CT grid.

Clean-up (on the cube grid, before mapping back): structures that are one connected piece in
every patient keep only their largest 26-connected component - the pancreas together with the
tumor (the tumor lies in or on the pancreas, so tumor pieces away from it go too), portal vein,
splenic vein, SMV, SMA, celiac trunk, aorta, IVC and common hepatic artery. Small branches and
ducts (proper hepatic, gastroduodenal and splenic arteries, pancreatic and bile ducts) may be
cut by partial volume and are kept as predicted. Removed voxels become background.

Tumor components (on the CT grid, after mapping back; :func:`filter_tumor`): a tumor is a
26-connected component of the tumor label of at least ``min_tumor_ml`` (the bundle's
``inference.min_tumor_ml``, default :data:`DEFAULT_MIN_TUMOR_ML`) that lies in or touches the
pancreas: one of its voxels is a 26-neighbour of a pancreas voxel (the pancreas label dilated
by one voxel). When the map has no pancreas voxel at all (the tumor took the whole organ; the
cube clean-up above already kept only the one pancreas-with-tumor piece) every component
passes the pancreas test. A component failing either test is not a tumor: it becomes pancreas
when it touches the pancreas (a speck in the gland is gland) and background otherwise (a
fragment away from the gland is no part of it). The volume counts every remaining component,
the largest diameter only the largest one (:mod:`.measurements`).

Why 0.1 mL: the phantoms' smallest true tumors are ellipsoid cores with semi-axes of at least
8 mm x 0.8 x 0.92 (``phantom/_tumor.py``: ``size`` (8, 13) mm for resectable, random axis
factors 0.8-1.2, anatomy scale 0.92-1.08), about 0.8 mL, so 0.1 mL keeps every true tumor
with a factor 8 to spare, while the specks seen on independent CTs (0.005 mL, fragments of
0.06 mL) go. 0.1 mL is a sphere of 5.8 mm diameter, below what CT staging of pancreatic
cancer reports as a mass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume, nonzero_box
from inference.volume_io import resample_to_reference
from pancreas_contracts.labels import label_by_name

__all__ = [
    "DEFAULT_MIN_TUMOR_ML",
    "SINGLE_COMPONENT",
    "CtWindow",
    "clean_labels",
    "ct_window",
    "cube_reference",
    "field_of_view",
    "filter_tumor",
    "has_pancreas",
    "pancreas_is_cut",
    "paste",
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
_PANCREAS_ONLY: Final = label_by_name("pancreas").value
_TUMOR: Final = label_by_name("tumor").value
#: Smallest tumor component in mL when the bundle sets no ``inference.min_tumor_ml``.
DEFAULT_MIN_TUMOR_ML: Final = 0.1


@dataclass(frozen=True)
class CtWindow:
    """The part of the CT grid a cube's labels reach (:func:`ct_window`).

    Attributes
    ----------
    labels
        The labels on that box of the CT grid (its affine places the box).
    window
        The box's slices of the CT grid.
    """

    labels: Volume
    window: tuple[slice, ...]


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
    return paste(ct_window(labels, cube, image), image)


def ct_window(labels: npt.NDArray[np.uint8], cube: Volume, image: Volume) -> CtWindow:
    """:func:`to_ct_grid` computed only in the CT box that the labelled voxels can reach.

    A CT voxel outside the box reads (nearest neighbour) a cube voxel outside the labels'
    bounding box, which is background, so resampling the whole CT grid (a second for 300
    slices of 479 x 479) gives the same map as resampling the box and padding with zeros.

    Returns
    -------
    CtWindow
        The box's labels (``uint8``, with the box's own affine) and its slices of the CT grid.
    """
    shape = np.asarray(image.shape)
    # One background voxel around the labels: a CT voxel reading it gets 0 either way.
    box = nonzero_box(labels, (1, 1, 1))
    if box is None:
        empty = (slice(0, 0), slice(0, 0), slice(0, 0))
        return CtWindow(Volume(np.zeros((0, 0, 0), np.uint8), image.affine.copy()), empty)
    part = labels[box]
    moving = Volume(part, cube.affine @ _shift(np.array([b.start for b in box])))
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in part.shape], indexing="ij"))
    at = image.world_to_voxel(moving.voxel_to_world(corners.reshape(3, -1).T))
    start = np.clip(np.floor(at.min(axis=0)).astype(int), 0, shape)
    stop = np.clip(np.ceil(at.max(axis=0)).astype(int) + 1, 0, shape)
    stop = np.maximum(stop, start)
    window = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    reference = Volume(np.zeros(tuple(stop - start), dtype=np.uint8), image.affine @ _shift(start))
    out = resample_to_reference(moving, reference, 0, fill_value=0)
    return CtWindow(Volume(np.asarray(out.array, dtype=np.uint8), reference.affine), window)


def paste(part: CtWindow, image: Volume) -> Volume:
    """The full CT-grid label map of a :func:`ct_window` (zeros outside its box)."""
    out = np.zeros(image.shape, dtype=np.uint8)
    out[part.window] = part.labels.array
    return Volume(out, image.affine.copy())


def _shift(start: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
    step = np.eye(4)
    step[:3, 3] = start
    return step


def filter_tumor(label: Volume, min_tumor_ml: float) -> tuple[Volume, int]:
    """Keep the tumor components that are tumors (see the module docstring).

    Parameters
    ----------
    label
        Label map on the CT grid (:mod:`pancreas_contracts.labels` values).
    min_tumor_ml
        Smallest volume of a tumor component in mL.

    Returns
    -------
    tuple
        The label map without the components that are not tumors, and how many components
        were removed.
    """
    values = np.asarray(label.array)
    tumor_anywhere = values == _TUMOR
    # Work in the tumor's bounding box plus one voxel: every tumor component and every pancreas
    # voxel that can touch one lie there, so labelling and dilating the whole CT grid (seconds
    # at 512 x 512 x 300) is not needed; the answer is the same.
    window = nonzero_box(tumor_anywhere, (1, 1, 1))
    if window is None:
        return label, 0
    part, tumor = values[window], tumor_anywhere[window]
    components, count = ndimage.label(tumor, structure=_CONNECTIVITY)
    voxel_ml = abs(float(np.linalg.det(label.affine[:3, :3]))) / 1000.0
    sizes_ml = np.bincount(components.ravel(), minlength=count + 1) * voxel_ml
    pancreas = part == _PANCREAS_ONLY
    has_gland = bool((values == _PANCREAS_ONLY).any())
    if has_gland:
        near = ndimage.binary_dilation(pancreas, structure=_CONNECTIVITY)
        touching = np.zeros(count + 1, dtype=bool)
        touching[np.unique(components[near & tumor])] = True
    else:
        touching = np.ones(count + 1, dtype=bool)
    keep = (sizes_ml >= min_tumor_ml) & touching
    keep[0] = True
    if keep.all():
        return label, 0
    out = values.astype(np.uint8, copy=True)
    dropped = ~keep[components] & tumor
    out_part = out[window]
    out_part[dropped] = 0
    if has_gland:  # without a pancreas nothing touches one: all dropped go to background
        out_part[dropped & touching[components]] = _PANCREAS_ONLY
    return Volume(out, label.affine.copy()), int(count + 1 - keep.sum())
