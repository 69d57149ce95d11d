"""Signed-distance primitives of the held-out generator (body-frame millimetres).

Every shape answers ``sdf(points)`` for an ``(n, 3)`` array: negative inside, positive outside,
in mm. Organs are deformed superquadrics (exact distance is not needed for them: only the sign
and a rough bound matter); tubular structures are tubes of varying radius around a densely
sampled centreline, whose distance is the distance to the nearest sample (a KD-tree), exact to
well under a tenth of a millimetre at the sampling used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

__all__ = [
    "Blend",
    "FloatArray",
    "Ripple",
    "Shape",
    "Superquadric",
    "Tube",
    "rotation_xyz",
    "spline_points",
]

_SAMPLE_MM = 0.25
# Beyond this distance past a tube's wall only "outside" matters (renderer, contact rays).
_FAR_MM = 8.0


class Shape(Protocol):
    """A solid with a signed distance and a bounding box."""

    def sdf(self, points: FloatArray) -> FloatArray:
        """Signed distance in mm (negative inside) of each row of ``points``."""
        ...

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        """Axis-aligned box (low, high corners) holding the solid."""
        ...


def rotation_xyz(angles_rad: tuple[float, float, float]) -> FloatArray:
    """Rotation matrix ``Rz @ Ry @ Rx`` of the three angles."""
    ax, ay, az = angles_rad
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    result: FloatArray = rz @ ry @ rx
    return result


@dataclass(frozen=True)
class Ripple:
    """A smooth random displacement of a surface: a sum of a few plane waves (mm).

    Parameters
    ----------
    directions
        ``(m, 3)`` unit wave vectors.
    wavelengths, phases, amplitudes
        One per wave (mm, radians, mm).
    """

    directions: FloatArray
    wavelengths: FloatArray
    phases: FloatArray
    amplitudes: FloatArray

    @classmethod
    def draw(
        cls, rng: np.random.Generator, amplitude: float, wavelength: tuple[float, float]
    ) -> Ripple:
        """Four waves of random direction with total amplitude at most ``amplitude``."""
        d = rng.normal(size=(4, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        amps = rng.uniform(0.5, 1.0, 4)
        return cls(
            d,
            rng.uniform(*wavelength, 4),
            rng.uniform(0.0, 2.0 * math.pi, 4),
            amplitude * amps / amps.sum(),
        )

    @property
    def bound(self) -> float:
        """Largest displacement in mm."""
        return float(self.amplitudes.sum())

    def at(self, points: FloatArray) -> FloatArray:
        """Displacement at each point."""
        arg = (points @ self.directions.T) * (2.0 * math.pi / self.wavelengths) + self.phases
        result: FloatArray = np.sin(arg) @ self.amplitudes
        return result


@dataclass(frozen=True)
class Superquadric:
    """A rotated superquadric ``sum |x_i / a_i| ** p = 1`` with an optional surface ripple.

    The distance is approximated by ``(norm_p(x / a) - 1) * min(a)`` (a lower bound for an
    ellipsoid, close for the rounded shapes used here); the ripple shifts the surface.
    """

    centre: FloatArray
    semi_axes: FloatArray
    rotation: FloatArray = field(default_factory=lambda: np.eye(3))
    power: float = 2.0
    ripple: Ripple | None = None
    infinite_z: bool = False

    def sdf(self, points: FloatArray) -> FloatArray:
        local = (points - self.centre) @ self.rotation
        scaled = np.abs(local / self.semi_axes)
        if self.infinite_z:
            scaled[:, 2] = 0.0
        powered = scaled * scaled if self.power == 2.0 else scaled**self.power
        norm = np.sum(powered, axis=1) ** (1.0 / self.power)
        axes = self.semi_axes[:2] if self.infinite_z else self.semi_axes
        result: FloatArray = (norm - 1.0) * float(axes.min())
        if self.ripple is not None:
            result = result - self.ripple.at(points)
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        extent = np.abs(self.rotation) @ self.semi_axes * (1.3 if self.power > 2 else 1.0)
        extent = extent + (self.ripple.bound if self.ripple is not None else 0.0)
        if self.infinite_z:
            extent = extent.copy()
            extent[2] = 1e6
        return self.centre - extent, self.centre + extent


def spline_points(nodes: FloatArray, step_mm: float = _SAMPLE_MM) -> FloatArray:
    """Points every ``step_mm`` (about) along a cubic spline through ``nodes``.

    The spline is parameterised by chord length, so the nodes are passed in order.
    """
    chords = np.linalg.norm(np.diff(nodes, axis=0), axis=1)
    knots = np.concatenate([[0.0], np.cumsum(chords)])
    curve = CubicSpline(knots, nodes, bc_type="natural")
    # Oversample, then resample by arc length so the spacing is even.
    dense = curve(np.linspace(0.0, knots[-1], max(8, int(4 * knots[-1] / step_mm))))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    count = max(2, int(arc[-1] / step_mm) + 1)
    targets = np.linspace(0.0, arc[-1], count)
    result: FloatArray = np.stack([np.interp(targets, arc, dense[:, i]) for i in range(3)], 1)
    return result


@dataclass(frozen=True, eq=False)
class Tube:
    """A tube of varying radius around a sampled centreline.

    Parameters
    ----------
    points
        ``(n, 3)`` centreline samples, evenly spaced (see :func:`spline_points`).
    radii
        Radius in mm at each sample.
    """

    points: FloatArray
    radii: FloatArray
    tree: cKDTree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.points) != len(self.radii) or len(self.points) < 2:
            raise ValueError("a tube needs at least two samples, one radius each")
        object.__setattr__(self, "tree", cKDTree(self.points))

    @classmethod
    def through(cls, nodes: FloatArray, radius: tuple[float, float]) -> Tube:
        """A tube along the spline through ``nodes``, radius linear from first to last."""
        points = spline_points(nodes)
        return cls(points, np.linspace(radius[0], radius[1], len(points)))

    @property
    def length(self) -> float:
        """Centreline length in mm."""
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())

    def tangents(self) -> FloatArray:
        """Unit tangent at each sample."""
        t = np.gradient(self.points, axis=0)
        result: FloatArray = t / np.linalg.norm(t, axis=1, keepdims=True)
        return result

    def nearest(
        self, points: FloatArray, beyond_mm: float = _FAR_MM
    ) -> tuple[FloatArray, IntArray]:
        """Distance to the centreline and index of the nearest sample, per point.

        Distances are exact up to ``beyond_mm`` past the widest radius; farther points get that
        bound (still a lower bound of their distance) and the index of the first sample.
        """
        bound = float(self.radii.max()) + beyond_mm
        dist, index = self.tree.query(points, distance_upper_bound=bound, workers=1)
        far = ~np.isfinite(dist)
        dist = np.where(far, bound, dist)
        index = np.where(far, 0, index)
        return np.asarray(dist, dtype=np.float64), np.asarray(index, dtype=np.intp)

    def sdf(self, points: FloatArray) -> FloatArray:
        dist, index = self.nearest(points)
        result: FloatArray = dist - self.radii[index]
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        r = float(self.radii.max())
        return self.points.min(axis=0) - r, self.points.max(axis=0) + r

    def index_at(self, fraction: float) -> int:
        """Sample index at ``fraction`` (0-1) of the length."""
        return round(fraction * (len(self.points) - 1))


@dataclass(frozen=True)
class Blend:
    """Union of shapes, smoothed over ``smooth_mm`` (polynomial smooth minimum)."""

    parts: tuple[Shape, ...]
    smooth_mm: float = 0.0

    def sdf(self, points: FloatArray) -> FloatArray:
        result = self.parts[0].sdf(points)
        k = self.smooth_mm
        for part in self.parts[1:]:
            other = part.sdf(points)
            if k <= 0.0:
                result = np.minimum(result, other)
                continue
            h = np.clip(0.5 + 0.5 * (other - result) / k, 0.0, 1.0)
            result = other + (result - other) * h - k * h * (1.0 - h)
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        boxes = [p.bounds() for p in self.parts]
        lo = np.min([b[0] for b in boxes], axis=0) - self.smooth_mm
        hi = np.max([b[1] for b in boxes], axis=0) + self.smooth_mm
        return lo, hi
