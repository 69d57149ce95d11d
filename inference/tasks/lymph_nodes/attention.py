"""The distance-guided attention map (``seeds/ln_metastasis_distance_attention.txt``, III-A-1).

From the organ and vessel label map ``M`` (values of
:data:`pancreas_contracts.lymph_nodes.ATTENTION_STRUCTURES`, 0 elsewhere):

1. a signed distance transform per structure ``D^i`` in mm, positive outside the structure,
   negative inside (:func:`signed_distance`);
2. the isosceles-trapezoid mapping of Eq. (1) with the structure's ``[d_min, d_max]``
   (Table II) and the 3 mm soft border (:func:`trapezoid`): ``A^i = f^i(D^i)``;
3. Eq. (2) (:func:`combine`): outside every structure (``m_v = 0``) the element-wise maximum
   of the ten maps; inside structure ``i`` (``m_v = i``) that structure's own map ``a^i_v``
   (so deep inside an organ the attention falls to 0, while within ``|d_min| + 3`` mm of its
   surface it stays positive).

Distances are Euclidean between voxel centres, with the grid's (possibly anisotropic)
spacing (``scipy.ndimage.distance_transform_edt``'s ``sampling``): a voxel just outside a
structure lies one voxel step away from it, one just inside at minus one voxel step; no voxel
is at 0 (the paper does not say how it places the surface; a half-voxel correction would
depend on the direction on anisotropic grids). A structure absent from ``M`` is at ``+inf``
everywhere, so its map is 0. Pure numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES, BORDER_MM, AttentionStructure

__all__ = [
    "DistanceAttention",
    "attention_maps",
    "combine",
    "signed_distance",
    "trapezoid",
]

FloatArray = npt.NDArray[np.float32]


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing needs {ndim} positive finite entries, got {spacing}")
    return values


def signed_distance(mask: npt.NDArray[np.bool_], spacing: Sequence[float]) -> FloatArray:
    """Signed distance (mm) to a structure: positive outside, negative inside.

    Parameters
    ----------
    mask
        The structure's voxels (any number of dimensions).
    spacing
        Voxel size per axis in mm.

    Returns
    -------
    numpy.ndarray
        ``float32``: outside, the distance to the nearest structure voxel; inside, minus the
        distance to the nearest voxel outside it (centre to centre). ``+inf`` everywhere for
        an empty mask, ``-inf`` everywhere for a full one.

    Raises
    ------
    ValueError
        If ``spacing`` does not give one positive size per axis.
    """
    inside = np.asarray(mask, dtype=bool)
    sampling = _spacing(spacing, inside.ndim)
    if not inside.any():
        return np.full(inside.shape, np.inf, dtype=np.float32)
    if inside.all():
        return np.full(inside.shape, -np.inf, dtype=np.float32)
    # edt measures each non-zero voxel's distance to the nearest zero voxel
    outside_distance = ndimage.distance_transform_edt(~inside, sampling=sampling)
    inside_distance = ndimage.distance_transform_edt(inside, sampling=sampling)
    out: FloatArray = (outside_distance - inside_distance).astype(np.float32)
    return out


def trapezoid(
    distance: npt.ArrayLike, d_min: float, d_max: float, border: float = BORDER_MM
) -> FloatArray:
    """Eq. (1): 1 on ``[d_min, d_max]``, linear ramps to 0 over ``border`` mm, 0 beyond.

    Parameters
    ----------
    distance
        Signed distances in mm (``±inf`` allowed).
    d_min, d_max
        The structure's range (Table II).
    border
        The soft border (the paper's 3 mm).

    Raises
    ------
    ValueError
        If ``d_min > d_max`` or ``border`` is not positive.
    """
    if not d_min <= d_max or not border > 0:
        raise ValueError("need d_min <= d_max and a positive border")
    d = np.asarray(distance, dtype=np.float64)
    rising = (d - d_min + border) / border
    falling = (d_max + border - d) / border
    out: FloatArray = np.clip(np.minimum(rising, falling), 0.0, 1.0).astype(np.float32)
    return out


def combine(labels: npt.NDArray[np.integer], maps: FloatArray) -> FloatArray:
    """Eq. (2): ``A^all`` from the label map and the per-structure maps.

    Parameters
    ----------
    labels
        Organ/vessel label map ``M`` (0 background, ``i`` = structure ``i``, 1-based in the
        order of ``maps``).
    maps
        ``(n, *labels.shape)``: ``A^1 .. A^n``.

    Returns
    -------
    numpy.ndarray
        Background voxels: the maximum over the ``n`` maps; a voxel of structure ``i``: ``A^i``
        there (label values outside ``1..n`` count as background).
    """
    values = np.asarray(labels)
    if maps.shape[1:] != values.shape:
        raise ValueError(f"maps {maps.shape} do not fit labels {values.shape}")
    out = maps.max(axis=0)
    for index in range(maps.shape[0]):
        inside = values == index + 1
        out[inside] = maps[index][inside]
    result: FloatArray = out.astype(np.float32)
    return result


@dataclass(frozen=True, eq=False)
class DistanceAttention:
    """Distances and attention maps of one label map.

    Attributes
    ----------
    distances
        ``(10, *shape)`` signed distances in mm, one per structure, in the order of
        :data:`~pancreas_contracts.lymph_nodes.ATTENTION_STRUCTURES`.
    maps
        ``(10, *shape)`` per-structure attention ``A^i``.
    combined
        ``A^all`` (Eq. 2), in [0, 1].
    """

    distances: FloatArray
    maps: FloatArray
    combined: FloatArray


def attention_maps(
    labels: npt.NDArray[np.integer],
    spacing: Sequence[float],
    structures: Sequence[AttentionStructure] = ATTENTION_STRUCTURES,
    border: float = BORDER_MM,
) -> DistanceAttention:
    """The paper's attention map of an organ/vessel label map (see the module docstring).

    Parameters
    ----------
    labels
        Label map with the structures' ``value`` s (``organs.nii.gz`` values).
    spacing
        Voxel size per axis in mm.
    structures
        The structures and their ranges (default: Table II).
    border
        The soft border in mm.

    Returns
    -------
    DistanceAttention
        Distances, per-structure maps and ``A^all``.
    """
    values = np.asarray(labels)
    distances = np.stack([signed_distance(values == s.value, spacing) for s in structures])
    maps = np.stack(
        [
            trapezoid(d, s.d_min_mm, s.d_max_mm, border)
            for d, s in zip(distances, structures, strict=True)
        ]
    )
    # Eq. (2) indexes maps by structure order: relabel values to 1..n in that order
    ordered = np.zeros(values.shape, dtype=np.int16)
    for index, structure in enumerate(structures, start=1):
        ordered[values == structure.value] = index
    return DistanceAttention(distances, maps, combine(ordered, maps))
