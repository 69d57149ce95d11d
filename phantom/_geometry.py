"""Voxel grid, bounding boxes and shape rasterisation in world LPS millimetres.

Every shape is rasterised at voxel centres and only inside its own bounding box, so a small
structure costs only its own voxels, never a full-volume pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
UInt8Array = npt.NDArray[np.uint8]
Bounds = tuple[FloatArray, FloatArray]


def as_point(values: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as a float64 vector of length 3."""
    point = np.asarray(values, dtype=np.float64).reshape(3)
    return point


@dataclass(frozen=True, eq=False)
class Box:
    """A rectangular part of a :class:`Grid` with the world coordinates of its voxel centres.

    ``x``, ``y`` and ``z`` are float32 arrays shaped to broadcast against the box
    (``(1, 1, nx)``, ``(1, ny, 1)`` and ``(nz, 1, 1)``).
    """

    index: tuple[slice, slice, slice]
    x: Float32Array
    y: Float32Array
    z: Float32Array

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the box in array order ``(nz, ny, nx)``."""
        return (self.z.shape[0], self.y.shape[1], self.x.shape[2])

    def offsets(self, center: FloatArray) -> tuple[Float32Array, Float32Array, Float32Array]:
        """Broadcastable ``(x, y, z)`` offsets of the voxel centres from ``center``."""
        return (
            self.x - np.float32(center[0]),
            self.y - np.float32(center[1]),
            self.z - np.float32(center[2]),
        )

    def project(self, origin: FloatArray, direction: FloatArray) -> Float32Array:
        """Signed distance of every voxel centre along ``direction`` from ``origin``."""
        dx, dy, dz = self.offsets(origin)
        result: Float32Array = (
            dx * np.float32(direction[0])
            + dy * np.float32(direction[1])
            + dz * np.float32(direction[2])
        )
        return result


@dataclass(frozen=True)
class Grid:
    """An axial voxel grid: array index ``[k, r, c]`` with ``z`` increasing along ``k``.

    Parameters
    ----------
    shape
        Array shape ``(nz, ny, nx)`` (slices, rows, columns).
    spacing
        Voxel size ``(dx, dy, dz)`` in mm.
    origin
        World LPS position ``(x, y, z)`` of the centre of voxel ``[0, 0, 0]``.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axis(self, which: int) -> Float32Array:
        """World coordinates of the voxel centres along ``x`` (0), ``y`` (1) or ``z`` (2)."""
        count = self.shape[2 - which]
        values = self.origin[which] + self.spacing[which] * np.arange(count, dtype=np.float64)
        return values.astype(np.float32)

    def box(self, lo: FloatArray, hi: FloatArray) -> Box | None:
        """The part of the grid whose voxel centres lie in ``[lo, hi]``; ``None`` if empty."""
        bounds: list[slice] = []
        for which in (2, 1, 0):
            count = self.shape[2 - which]
            start = (float(lo[which]) - self.origin[which]) / self.spacing[which]
            stop = (float(hi[which]) - self.origin[which]) / self.spacing[which]
            first = max(0, math.ceil(start)) if math.isfinite(start) else 0
            last = min(count - 1, math.floor(stop)) if math.isfinite(stop) else count - 1
            if last < first:
                return None
            bounds.append(slice(first, last + 1))
        z_sl, y_sl, x_sl = bounds
        return Box(
            index=(z_sl, y_sl, x_sl),
            x=self.axis(0)[x_sl].reshape(1, 1, -1),
            y=self.axis(1)[y_sl].reshape(1, -1, 1),
            z=self.axis(2)[z_sl].reshape(-1, 1, 1),
        )

    def center(self) -> FloatArray:
        """World position of the centre of the grid."""
        return np.array(
            [
                o + s * (n - 1) / 2.0
                for o, s, n in zip(self.origin, self.spacing, self.shape[::-1], strict=True)
            ]
        )

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0


class Shape(Protocol):
    """Anything that can be rasterised at voxel centres inside a box."""

    def bounds(self) -> Bounds:
        """World ``(lo, hi)`` corners of an axis-aligned box that contains the shape."""

    def mask(self, box: Box) -> BoolArray:
        """Which voxel centres of ``box`` lie inside the shape."""


@dataclass(frozen=True, eq=False)
class Ellipsoid:
    """An ellipsoid with principal ``axes`` (columns, unit vectors) and ``semi`` axes in mm."""

    center: FloatArray
    axes: FloatArray
    semi: FloatArray

    def bounds(self) -> Bounds:
        reach = np.sqrt(((self.axes * self.semi) ** 2).sum(axis=1))
        return self.center - reach, self.center + reach

    def mask(self, box: Box) -> BoolArray:
        total: Float32Array | None = None
        for i in range(3):
            term = (box.project(self.center, self.axes[:, i]) / np.float32(self.semi[i])) ** 2
            total = term if total is None else total + term
        assert total is not None
        return np.asarray(total <= 1.0)


@dataclass(frozen=True, eq=False)
class EllipticCylinder:
    """A cylinder with elliptical cross-section along ``axes[:, 2]``, ``half_height`` each way."""

    center: FloatArray
    axes: FloatArray
    semi: tuple[float, float]
    half_height: float

    def bounds(self) -> Bounds:
        semi = np.array([self.semi[0], self.semi[1], self.half_height])
        reach = np.abs(self.axes * semi).sum(axis=1)
        return self.center - reach, self.center + reach

    def mask(self, box: Box) -> BoolArray:
        u = box.project(self.center, self.axes[:, 0]) / np.float32(self.semi[0])
        v = box.project(self.center, self.axes[:, 1]) / np.float32(self.semi[1])
        w = box.project(self.center, self.axes[:, 2])
        return np.asarray((u * u + v * v <= 1.0) & (np.abs(w) <= self.half_height))


@dataclass(frozen=True, eq=False)
class Capsule:
    """Points within ``r0..r1`` (linearly along the segment) of the segment ``p0``-``p1``."""

    p0: FloatArray
    p1: FloatArray
    r0: float
    r1: float

    def bounds(self) -> Bounds:
        r = max(self.r0, self.r1)
        return np.minimum(self.p0, self.p1) - r, np.maximum(self.p0, self.p1) + r

    def mask(self, box: Box) -> BoolArray:
        t, rho2, length = segment_coordinates(box, self.p0, self.p1)
        tc = np.clip(t, 0.0, length)
        beyond = t - tc
        radius = self.r0 + (self.r1 - self.r0) * (tc / np.float32(max(length, 1e-6)))
        return np.asarray(rho2 + beyond * beyond <= radius * radius)


@dataclass(frozen=True, eq=False)
class HalfSpace:
    """Points on the side of the plane through ``point`` that ``normal`` points away from."""

    point: FloatArray
    normal: FloatArray

    def bounds(self) -> Bounds:
        unbounded = np.full(3, math.inf)
        return -unbounded, unbounded

    def mask(self, box: Box) -> BoolArray:
        return np.asarray(box.project(self.point, self.normal) <= 0.0)


@dataclass(frozen=True, eq=False)
class Intersection:
    """Points inside every one of ``parts``."""

    parts: tuple[Shape, ...]

    def bounds(self) -> Bounds:
        lo = np.max([p.bounds()[0] for p in self.parts], axis=0)
        hi = np.min([p.bounds()[1] for p in self.parts], axis=0)
        return lo, hi

    def mask(self, box: Box) -> BoolArray:
        result = self.parts[0].mask(box)
        for part in self.parts[1:]:
            result &= part.mask(box)
        return result


def segment_coordinates(
    box: Box, p0: FloatArray, p1: FloatArray
) -> tuple[Float32Array, Float32Array, float]:
    """Axial position ``t`` and squared radial distance of voxel centres to a segment's line.

    Returns
    -------
    t
        Signed distance along ``p0 -> p1`` of each voxel's projection, from ``p0``.
    rho2
        Squared distance of each voxel centre to the infinite line through the segment.
    length
        Length of the segment in mm.
    """
    direction = p1 - p0
    length = float(np.linalg.norm(direction))
    unit = direction / max(length, 1e-9)
    dx, dy, dz = box.offsets(p0)
    t = dx * np.float32(unit[0]) + dy * np.float32(unit[1]) + dz * np.float32(unit[2])
    rho2 = np.maximum(dx * dx + dy * dy + dz * dz - t * t, np.float32(0.0))
    return t, rho2, length


def tube(points: FloatArray, radii: npt.ArrayLike) -> tuple[Capsule, ...]:
    """A polyline tube as capsules, one per segment (radius interpolated along each)."""
    r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(points),))
    return tuple(
        Capsule(points[i], points[i + 1], float(r[i]), float(r[i + 1]))
        for i in range(len(points) - 1)
    )


def union_bounds(shapes: tuple[Shape, ...]) -> Bounds:
    """Bounds that contain every shape."""
    lo = np.min([s.bounds()[0] for s in shapes], axis=0)
    hi = np.max([s.bounds()[1] for s in shapes], axis=0)
    return lo, hi


def paint(grid: Grid, volume: UInt8Array, shape: Shape, value: int) -> None:
    """Set the voxels of ``volume`` inside ``shape`` to ``value``."""
    box = grid.box(*shape.bounds())
    if box is None:
        return
    inside = shape.mask(box)
    volume[box.index][inside] = value


def rotation(angles_deg: npt.ArrayLike) -> FloatArray:
    """Rotation matrix for extrinsic rotations about ``x``, ``y`` then ``z`` (degrees)."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    result: FloatArray = rz @ ry @ rx
    return result
