"""Stacking DICOM image planes into one regular grid (strict geometry).

Rules from PS3.3 C.7.6.2.1.1 (Image Position and Image Orientation): ImageOrientationPatient
holds the direction cosines of the first row (direction of increasing column index) and of the
first column (direction of increasing row index) in the patient's LPS+ frame; ImagePositionPatient
is the centre of the first transmitted pixel; PixelSpacing (C.7.6.2.1.1, PS3.3 10.7.1.3) is
``row spacing \\ column spacing``, i.e. the distance between row centres first. The slice order
comes from the position along the normal ``row x column``, never from InstanceNumber, and the
slice step from the positions themselves, never from SliceThickness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from inference._volume_errors import (
    DuplicateSliceError,
    GantryTiltError,
    InconsistentShapeError,
    InconsistentSpacingError,
    MissingGeometryError,
    MissingSliceError,
    MixedOrientationError,
)

__all__ = ["PlaneGeometry", "StackGeometry", "stack_geometry"]

#: Largest allowed difference of a direction cosine between slices of one stack.
ORIENTATION_TOLERANCE: Final = 1e-3
#: Largest allowed deviation of a cosine vector from unit length / orthogonality.
UNIT_TOLERANCE: Final = 1e-2
#: Relative tolerance on PixelSpacing between slices.
PIXEL_SPACING_RTOL: Final = 1e-3
#: Steps shorter than this (mm) are duplicate positions.
DUPLICATE_STEP_MM: Final = 1e-2
#: A step longer than this many median steps is a gap with missing slices.
MISSING_GAP_FACTOR: Final = 1.5
#: Largest slice-position deviation from the regular grid, as a fraction of the step.
POSITION_TOLERANCE_FRACTION: Final = 0.1
#: Largest in-plane shear of slice positions, as a fraction of the smallest pixel spacing.
SHEAR_TOLERANCE_FRACTION: Final = 0.1


@dataclass(frozen=True)
class PlaneGeometry:
    """Geometry of one image plane (one single-frame instance or one frame).

    Parameters
    ----------
    orientation
        ImageOrientationPatient: row cosine then column cosine (LPS+).
    position
        ImagePositionPatient of the first pixel's centre (LPS+ mm).
    pixel_spacing
        PixelSpacing as stored: ``(row spacing, column spacing)`` in mm.
    rows, columns
        Rows and Columns.
    """

    orientation: tuple[float, float, float, float, float, float]
    position: tuple[float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int


@dataclass(frozen=True, eq=False)
class StackGeometry:
    """A validated regular stack of planes.

    Parameters
    ----------
    order
        Indices into the input planes, sorted by increasing position along the slice normal.
    orientation
        The common ImageOrientationPatient, each cosine normalised.
    pixel_spacing
        The common ``(row spacing, column spacing)`` in mm.
    slice_step_mm
        Mean distance between neighbouring slices along the normal (positive).
    affine_lps
        4x4 map from ``(column, row, slice)`` indices (slices in ``order``) to LPS+ mm.
    rows, columns
        The common Rows and Columns.
    """

    order: tuple[int, ...]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    slice_step_mm: float
    affine_lps: npt.NDArray[np.float64]
    rows: int
    columns: int


def stack_geometry(
    planes: Sequence[PlaneGeometry], *, single_slice_step_mm: float | None = None
) -> StackGeometry:
    """Validate that ``planes`` form one regular grid and build its affine.

    Parameters
    ----------
    planes
        One entry per slice, in any order.
    single_slice_step_mm
        Slice extent to use when there is only one plane (SpacingBetweenSlices or
        SliceThickness); 1 mm when ``None``.

    Returns
    -------
    StackGeometry
        The sort order and the voxel-to-LPS affine.

    Raises
    ------
    InconsistentShapeError, MissingGeometryError, MixedOrientationError, GantryTiltError,
    DuplicateSliceError, MissingSliceError, InconsistentSpacingError
        When the planes do not form one regular, orthogonal stack.
    """
    if not planes:
        raise MissingGeometryError("no image planes to stack")
    first = planes[0]
    sizes = sorted({(p.rows, p.columns) for p in planes})
    if len(sizes) > 1:
        shown = ", ".join(f"{r}x{c}" for r, c in sizes[:4])
        raise InconsistentShapeError(f"slices differ in Rows x Columns: {shown}")
    row_cos, col_cos = _unit_cosines(first.orientation)
    _check_orientations(planes, first.orientation)
    spacing = _common_pixel_spacing(planes)
    normal = np.cross(row_cos, col_cos)

    positions = np.array([p.position for p in planes], dtype=np.float64)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    positions = positions[order]
    distances = distances[order]

    if len(planes) == 1:
        step = float(single_slice_step_mm) if single_slice_step_mm else 1.0
        if not math.isfinite(step) or step <= 0:
            step = 1.0
    else:
        _check_shear(positions, normal, min(spacing))
        step = _check_steps(distances)

    affine = np.eye(4)
    affine[:3, 0] = row_cos * spacing[1]
    affine[:3, 1] = col_cos * spacing[0]
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[0]
    orientation = (*(float(v) for v in row_cos), *(float(v) for v in col_cos))
    return StackGeometry(
        order=tuple(int(i) for i in order),
        orientation=(
            orientation[0],
            orientation[1],
            orientation[2],
            orientation[3],
            orientation[4],
            orientation[5],
        ),
        pixel_spacing=spacing,
        slice_step_mm=step,
        affine_lps=affine,
        rows=first.rows,
        columns=first.columns,
    )


def _unit_cosines(
    orientation: Sequence[float],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    values = np.asarray(orientation, dtype=np.float64)
    if values.shape != (6,) or not np.all(np.isfinite(values)):
        raise MissingGeometryError("ImageOrientationPatient must hold 6 finite numbers")
    row_cos, col_cos = values[:3], values[3:]
    row_norm, col_norm = float(np.linalg.norm(row_cos)), float(np.linalg.norm(col_cos))
    if abs(row_norm - 1.0) > UNIT_TOLERANCE or abs(col_norm - 1.0) > UNIT_TOLERANCE:
        raise MissingGeometryError(
            f"ImageOrientationPatient cosines are not unit vectors "
            f"(lengths {row_norm:.4f}, {col_norm:.4f})"
        )
    row_cos, col_cos = row_cos / row_norm, col_cos / col_norm
    dot = float(row_cos @ col_cos)
    if abs(dot) > UNIT_TOLERANCE:
        raise MissingGeometryError(
            f"ImageOrientationPatient row and column cosines are not orthogonal (dot {dot:.4f})"
        )
    # Remove the tiny non-orthogonality left by rounded cosines so the affine is a rotation.
    col_cos = col_cos - dot * row_cos
    return row_cos, col_cos / np.linalg.norm(col_cos)


def _fmt_orientation(orientation: Sequence[float]) -> str:
    return "\\".join(f"{v:.4g}" for v in orientation)


def _check_orientations(planes: Sequence[PlaneGeometry], reference: Sequence[float]) -> None:
    ref = np.asarray(reference, dtype=np.float64)
    for plane in planes:
        other = np.asarray(plane.orientation, dtype=np.float64)
        if other.shape != ref.shape or float(np.max(np.abs(other - ref))) > ORIENTATION_TOLERANCE:
            raise MixedOrientationError(
                "slices of one series have different ImageOrientationPatient: "
                f"{_fmt_orientation(reference)} and {_fmt_orientation(plane.orientation)}"
            )


def _common_pixel_spacing(planes: Sequence[PlaneGeometry]) -> tuple[float, float]:
    row_sp, col_sp = planes[0].pixel_spacing
    if not (math.isfinite(row_sp) and math.isfinite(col_sp)) or row_sp <= 0 or col_sp <= 0:
        raise MissingGeometryError(f"PixelSpacing must be positive, got {row_sp}\\{col_sp}")
    for plane in planes:
        r, c = plane.pixel_spacing
        if not (
            math.isclose(r, row_sp, rel_tol=PIXEL_SPACING_RTOL)
            and math.isclose(c, col_sp, rel_tol=PIXEL_SPACING_RTOL)
        ):
            raise InconsistentSpacingError(
                f"PixelSpacing differs between slices: {row_sp:g}\\{col_sp:g} and {r:g}\\{c:g}"
            )
    return (float(row_sp), float(col_sp))


def _check_shear(
    positions: npt.NDArray[np.float64], normal: npt.NDArray[np.float64], pixel_mm: float
) -> None:
    """Positions must advance along the normal: an in-plane drift means a sheared grid."""
    offsets = positions - positions[0]
    along = offsets @ normal
    in_plane = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    worst = int(np.argmax(in_plane))
    if in_plane[worst] > SHEAR_TOLERANCE_FRACTION * pixel_mm:
        angle = math.degrees(math.atan2(float(in_plane[worst]), abs(float(along[worst]))))
        raise GantryTiltError(
            f"slice positions drift {in_plane[worst]:.2f} mm in-plane over "
            f"{abs(float(along[worst])):.2f} mm along the normal (about {angle:.1f} deg "
            "gantry tilt or oblique stack); resample to an orthogonal grid first"
        )


def _check_steps(distances: npt.NDArray[np.float64]) -> float:
    """Return the mean step along the normal after checking the steps are regular."""
    steps = np.diff(distances)
    dup = np.flatnonzero(steps < DUPLICATE_STEP_MM)
    if dup.size:
        raise DuplicateSliceError(
            f"{dup.size + 1} slices share a position ({distances[dup[0]]:.3f} mm along the "
            "slice normal); several acquisitions or duplicate instances in one series"
        )
    median = float(np.median(steps))
    gaps = np.flatnonzero(steps > MISSING_GAP_FACTOR * median)
    if gaps.size:
        k = int(gaps[0])
        missing = round(float(steps[k]) / median) - 1
        raise MissingSliceError(
            f"gap of {steps[k]:.3f} mm between sorted slices {k} and {k + 1} (median step "
            f"{median:.3f} mm): about {max(missing, 1)} slice(s) missing"
            + (f", {gaps.size} gaps in all" if gaps.size > 1 else "")
        )
    n = len(distances)
    mean = float(distances[-1] - distances[0]) / (n - 1)
    residual = distances - (distances[0] + mean * np.arange(n))
    worst = float(np.max(np.abs(residual)))
    if worst > POSITION_TOLERANCE_FRACTION * mean:
        raise InconsistentSpacingError(
            f"slice positions deviate up to {worst:.3f} mm from a regular {mean:.3f} mm grid "
            f"(steps {float(steps.min()):.3f}-{float(steps.max()):.3f} mm)"
        )
    return mean
