"""The in-memory 3D volume and its canonical orientation.

Convention used everywhere in the node: ``array[i, j, k]`` with a 4x4 ``affine`` mapping voxel
indices to world millimetres in NIfTI's RAS+ frame (+x towards the patient's right, +y anterior,
+z superior). DICOM's LPS+ patient coordinates (PS3.3 C.7.6.2.1.1) relate to it by
``(x, y, z)_RAS = (-x, -y, z)_LPS``. The *canonical* orientation is nibabel's "closest
canonical" RAS: axes permuted and flipped (never interpolated) so that ``i`` runs towards the
patient's right, ``j`` anterior and ``k`` superior (:func:`to_canonical`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = [
    "LPS_TO_RAS",
    "Volume",
    "nonzero_box",
    "read_nifti",
    "to_canonical",
    "value_counts",
    "write_nifti",
]

#: Values per ``np.bincount`` call in :func:`value_counts`.
_COUNT_CHUNK = 1 << 20

LPS_TO_RAS: npt.NDArray[np.float64] = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image on a regular grid.

    Parameters
    ----------
    array
        Voxel values, shape ``(I, J, K)``.
    affine
        4x4 matrix from voxel index ``(i, j, k, 1)`` to RAS+ world millimetres.
    """

    array: npt.NDArray[np.generic]
    affine: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"volume must be 3D, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if abs(np.linalg.det(self.affine[:3, :3])) < 1e-9:
            raise ValueError("affine is singular")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``i``, ``j``, ``k``."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape."""
        i, j, k = self.array.shape
        return (int(i), int(j), int(k))

    def world_to_voxel(self, points_ras: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map ``(N, 3)`` RAS+ world points to continuous voxel indices."""
        pts = np.atleast_2d(np.asarray(points_ras, dtype=np.float64))
        homo = np.c_[pts, np.ones(len(pts))]
        result: npt.NDArray[np.float64] = (np.linalg.inv(self.affine) @ homo.T).T[:, :3]
        return result

    def voxel_to_world(self, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map ``(N, 3)`` voxel indices to RAS+ world millimetres."""
        idx = np.atleast_2d(np.asarray(indices, dtype=np.float64))
        homo = np.c_[idx, np.ones(len(idx))]
        result: npt.NDArray[np.float64] = (self.affine @ homo.T).T[:, :3]
        return result


def to_canonical(volume: Volume) -> Volume:
    """Reorient to the closest canonical (RAS+) axis order by flips and permutations only.

    Voxel values are never interpolated, so the result is exact; the affine is updated so every
    voxel keeps its world position.
    """
    ornt = nib.orientations.io_orientation(volume.affine)
    target = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(ornt, target)
    array = nib.orientations.apply_orientation(volume.array, transform)
    inv = nib.orientations.inv_ornt_aff(transform, volume.array.shape)
    affine = volume.affine @ inv
    return Volume(np.ascontiguousarray(array), affine.astype(np.float64))


def read_nifti(path: Path) -> Volume:
    """Read a NIfTI-1/2 file as a :class:`Volume` (in its stored orientation).

    Raises
    ------
    ValueError
        If the file is not a readable 3D NIfTI image.
    """
    try:
        image = cast(Any, nib.load(str(path)))
        array = np.asanyarray(image.dataobj)
    except (OSError, nib.filebasedimages.ImageFileError, EOFError) as exc:
        raise ValueError(f"cannot read NIfTI {path}: {exc}") from exc
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    return Volume(np.asarray(array), np.asarray(image.affine, dtype=np.float64))


def write_nifti(volume: Volume, path: Path) -> None:
    """Write ``volume`` as compressed NIfTI-1 (qform and sform set to the affine)."""
    image = nib.Nifti1Image(volume.array, volume.affine)
    image.set_qform(volume.affine, code=1)
    image.set_sform(volume.affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))


def value_counts(values: npt.NDArray[np.generic], length: int) -> npt.NDArray[np.int64]:
    """How often each of ``0 .. length - 1`` occurs in ``values`` (integers, none negative).

    Values from ``length`` up are not counted. The array is counted in chunks of 1 Mi values:
    ``np.bincount`` widens its input to int64, which for a whole 300-slice label map is a
    550 MB copy (about a second with its page faults); a chunk's copy stays in cache (4 Mi
    chunks measured 3x slower).
    """
    flat = values.reshape(-1)
    counts = np.zeros(length, dtype=np.int64)
    for begin in range(0, flat.size, _COUNT_CHUNK):
        counts += np.bincount(flat[begin : begin + _COUNT_CHUNK], minlength=length)[:length]
    return counts


def nonzero_box(
    array: npt.NDArray[np.generic], margin: tuple[int, int, int] = (0, 0, 0)
) -> tuple[slice, slice, slice] | None:
    """The bounding box of the non-zero voxels of a 3D array, grown by ``margin`` voxels.

    The box is clipped to the array; ``None`` when every voxel is zero. The last axis is
    found first, in one pass over the array, and the others only within its extent, so a
    small structure in a large grid costs little more than that pass.
    """
    start = [0, 0, 0]
    stop = list(array.shape)
    part = array
    for axis in (2, 0, 1):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(part.any(axis=others))
        if len(hits) == 0:
            return None
        first, last = start[axis] + int(hits[0]), start[axis] + int(hits[-1])
        window: list[slice] = [slice(None)] * 3
        window[axis] = slice(int(hits[0]), int(hits[-1]) + 1)
        part = part[tuple(window)]
        start[axis], stop[axis] = first, last + 1
    return (
        slice(max(start[0] - margin[0], 0), min(stop[0] + margin[0], array.shape[0])),
        slice(max(start[1] - margin[1], 0), min(stop[1] + margin[1], array.shape[1])),
        slice(max(start[2] - margin[2], 0), min(stop[2] + margin[2], array.shape[2])),
    )
