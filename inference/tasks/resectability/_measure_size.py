"""Tumor size: volume (voxel count) and largest 3D (Feret) diameter."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from inference.tasks.resectability._measure_fields import BoolArray, FloatArray

# Without a hull (flat point sets), at most this many points enter the pairwise search.
_MAX_BRUTE_FORCE = 4000


def volume_ml(mask: BoolArray, affine: FloatArray) -> float:
    """Voxel count times voxel volume, in millilitres."""
    voxel_mm3 = abs(float(np.linalg.det(affine[:3, :3])))
    return int(np.count_nonzero(mask)) * voxel_mm3 / 1000.0


def boundary_points(mask: BoolArray, affine: FloatArray) -> FloatArray:
    """World positions of the centres of the faces between ``mask`` and its outside.

    These are the vertices a marching-cubes surface at level 0.5 would place on the binary
    mask: half-way between each voxel centre inside and its face neighbour outside.
    """
    padded = np.pad(mask, 1)
    points = []
    for axis in range(3):
        for sign in (-1, 1):
            outside = ~np.roll(padded, -sign, axis=axis)
            index = np.argwhere(padded & outside).astype(np.float64) - 1.0
            index[:, axis] += 0.5 * sign
            points.append(index)
    index = np.concatenate(points)
    result: FloatArray = index @ affine[:3, :3].T + affine[:3, 3]
    return result


def _hull_vertices(points: FloatArray) -> FloatArray:
    """The convex hull's vertices, or (a subsample of) all points when the hull fails."""
    try:
        result: FloatArray = points[ConvexHull(points).vertices]
        return result
    except (QhullError, ValueError):
        return points[:: len(points) // _MAX_BRUTE_FORCE + 1]


def _farthest_pair(points: FloatArray) -> tuple[int, int]:
    """Indices of the two points farthest apart (``i < j``)."""
    condensed = pdist(points)
    k = int(np.argmax(condensed))
    n = len(points)
    # Row i of the condensed distance matrix starts at i * n - i * (i + 1) / 2.
    rows = np.arange(n)
    starts = rows * n - rows * (rows + 1) // 2
    i = int(np.searchsorted(starts, k, side="right") - 1)
    return i, int(k - starts[i] + i + 1)


def max_diameter_mm(mask: BoolArray, affine: FloatArray) -> float:
    """Largest 3D diameter (maximum Feret diameter) of a non-empty ``mask`` in mm.

    The farthest pair among the convex-hull vertices (``scipy.spatial.ConvexHull``) of the
    boundary face centres (:func:`boundary_points`), so a lone voxel measures its longest side.
    """
    vertices = _hull_vertices(boundary_points(mask, affine))
    i, j = _farthest_pair(vertices)
    return float(np.linalg.norm(vertices[j] - vertices[i]))
