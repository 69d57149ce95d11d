"""Signed distance fields of label-map structures, sampled anywhere in world millimetres.

A binary mask on its (possibly anisotropic) voxel grid becomes a signed Euclidean distance map
in mm (negative inside, zero half-way between the last voxel centre inside and the first
outside); trilinear interpolation of that map between voxel centres is *shape-based
interpolation*: with 3 mm slices a vessel's outline between two slices follows the in-plane
outlines of both rather than jumping half-way, as nearest-neighbour resampling would.

Only a crop of the volume is ever transformed: a box around the structure of interest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import nonzero_box

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Crop = tuple[slice, slice, slice]

#: Field value returned outside the crop: "far outside the structure".
OUTSIDE_MM = 1.0e3


def spacing_of(affine: FloatArray) -> FloatArray:
    """Voxel size in mm along each array axis of a 4x4 voxel-to-world ``affine``."""
    result: FloatArray = np.linalg.norm(affine[:3, :3], axis=0)
    return result


def bounding_crop(
    mask: npt.NDArray[np.generic], spacing: FloatArray, margin_mm: float
) -> Crop | None:
    """The index box of ``mask``'s non-zero voxels grown by ``margin_mm`` (clipped to the array).

    Parameters
    ----------
    mask
        3D array (boolean, or a label map: its non-zero voxels).
    spacing
        Voxel size in mm per axis.
    margin_mm
        Margin added on every side, in mm (rounded up to whole voxels per axis).

    Returns
    -------
    tuple of slice or None
        ``None`` if ``mask`` has no non-zero voxel.
    """
    pad = [math.ceil(margin_mm / float(spacing[axis])) for axis in range(3)]
    return nonzero_box(mask, (pad[0], pad[1], pad[2]))


def crop_affine(affine: FloatArray, crop: Crop) -> FloatArray:
    """Voxel-to-world affine of ``array[crop]`` given the whole array's ``affine``."""
    shift = np.eye(4)
    shift[:3, 3] = [s.start or 0 for s in crop]
    result: FloatArray = affine @ shift
    return result


def signed_distance(mask: BoolArray, spacing: FloatArray) -> npt.NDArray[np.float32]:
    """Signed distance in mm between voxel centres: ``-d`` inside, ``+d`` outside.

    Inside voxels get minus their distance to the nearest outside voxel centre, outside voxels
    their distance to the nearest inside voxel centre, so the zero level lies half-way between
    neighbouring inside and outside centres. A crop with no outside voxel is inside everywhere.
    """
    sampling = tuple(float(s) for s in spacing)
    if mask.all():
        return np.full(mask.shape, -OUTSIDE_MM, dtype=np.float32)
    if not mask.any():
        return np.full(mask.shape, OUTSIDE_MM, dtype=np.float32)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    return np.asarray(outside - inside, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class DistanceField:
    """A signed distance map on a crop of the volume, sampled at world points.

    Parameters
    ----------
    values
        Signed distance in mm at the crop's voxel centres (negative inside).
    index_from_world
        4x4 matrix from RAS+ world mm to continuous crop indices.
    """

    values: npt.NDArray[np.float32]
    index_from_world: FloatArray

    @classmethod
    def of(cls, mask: BoolArray, affine: FloatArray, crop: Crop) -> DistanceField:
        """The field of ``mask[crop]`` on the volume whose voxel-to-world map is ``affine``."""
        local = crop_affine(affine, crop)
        values = signed_distance(np.ascontiguousarray(mask[crop]), spacing_of(affine))
        return cls(values, np.asarray(np.linalg.inv(local), dtype=np.float64))

    def indices(self, points: FloatArray) -> FloatArray:
        """Continuous crop indices ``(3, N)`` of world points ``(N, 3)``."""
        result: FloatArray = (
            self.index_from_world[:3, :3] @ points.T + self.index_from_world[:3, 3:]
        )
        return result

    def at(self, points: FloatArray) -> npt.NDArray[np.float32]:
        """Trilinearly interpolated signed distance (mm) at world points ``(..., 3)``.

        Points outside the crop read as far outside (:data:`OUTSIDE_MM`).
        """
        flat = points.reshape(-1, 3)
        values = ndimage.map_coordinates(
            self.values, self.indices(flat), order=1, mode="constant", cval=OUTSIDE_MM
        )
        result: npt.NDArray[np.float32] = np.asarray(values, dtype=np.float32)
        return result.reshape(points.shape[:-1])

    def inside_lattice(self, step_mm: float) -> FloatArray:
        """World positions ``(N, 3)`` of an isotropic lattice's points inside the structure.

        The lattice runs along the crop's own axes every ``step_mm`` mm (resampling the
        structure to isotropic voxels by shape-based interpolation).
        """
        world = np.asarray(np.linalg.inv(self.index_from_world), dtype=np.float64)
        spacing = spacing_of(world)
        axes = [
            np.arange(0.0, n - 1 + 1e-6, step_mm / float(s))
            for n, s in zip(self.values.shape, spacing, strict=True)
        ]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1)
        values = ndimage.map_coordinates(self.values, grid, order=1, mode="nearest")
        inside = grid[:, values < 0.0]
        result: FloatArray = (world[:3, :3] @ inside + world[:3, 3:]).T
        return result
