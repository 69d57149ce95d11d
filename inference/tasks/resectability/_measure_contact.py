"""Circumferential tumor-vessel contact: centreline tracking and perpendicular cross-sections.

See :mod:`inference.tasks.resectability.measurements` for the method as a whole; this module holds
its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from inference.tasks.resectability._measure_fields import DistanceField, FloatArray

__all__ = ["ContactSettings", "Section", "VesselModel", "contact_sections", "section_angle"]

# Safety bounds on the tracking loops (a vessel within the region is far shorter).
_MAX_STEPS = 1000
_MAX_TRACKS = 50


@dataclass(frozen=True)
class ContactSettings:
    """Parameters of the contact-angle read-out; the defaults are the documented method.

    Parameters
    ----------
    rays
        Rays cast from the centre of each cross-section (angular resolution 360 / rays).
    ring_mm
        Distances beyond the vessel wall, along each ray, where tumor is looked for; a ray
        touches the tumor if any of them lies in it.
    radial_step_mm
        Step along each ray when searching for the vessel wall.
    track_step_mm
        Spacing of consecutive cross-sections along the centreline.
    lattice_mm
        Bounds of the isotropic lattice step used to resample a vessel for its centreline
        (the finest in-plane spacing, clipped to these bounds, and at most half the radius).
    min_valid_rays
        Fraction of rays that must find the vessel wall for a cross-section to count.
    roi_margin_mm
        Margin around the tumor's bounding box within which vessels are analysed.
    """

    rays: int = 360
    ring_mm: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    radial_step_mm: float = 0.25
    track_step_mm: float = 1.0
    lattice_mm: tuple[float, float] = (0.5, 1.0)
    min_valid_rays: float = 0.9
    roi_margin_mm: float = 35.0

    def __post_init__(self) -> None:
        if self.rays < 8 or not self.ring_mm or min(self.ring_mm) <= 0.0:
            raise ValueError("need at least 8 rays and positive ring distances")
        if min(self.radial_step_mm, self.track_step_mm, *self.lattice_mm) <= 0.0:
            raise ValueError("steps must be positive")
        if not 0.0 < self.min_valid_rays <= 1.0:
            raise ValueError("min_valid_rays must be within (0, 1]")


@dataclass(frozen=True, eq=False)
class VesselModel:
    """One vessel near the tumor: its distance field and an isotropic resampling of it.

    Parameters
    ----------
    field
        Signed distance to the vessel wall (mm, negative inside).
    points
        World positions of the isotropic lattice points inside the vessel.
    tree
        KD-tree over ``points``.
    radius
        Largest inscribed radius in mm (an upper bound of the lumen radius).
    lattice_mm
        Step of the isotropic lattice.
    """

    field: DistanceField
    points: FloatArray
    tree: cKDTree
    radius: float
    lattice_mm: float

    @property
    def pca_radius(self) -> float:
        """Radius of the neighbourhood whose principal axis gives the local direction."""
        return max(2.0 * self.radius, 3.0)

    def reach(self, settings: ContactSettings) -> float:
        """Tumor distance of a section centre beyond which the tumor cannot reach its ring."""
        return self.radius + max(settings.ring_mm) + 1.0


@dataclass(frozen=True)
class Section:
    """A cross-section: centre on the centreline and unit vessel direction (world mm)."""

    centre: FloatArray
    direction: FloatArray


def _principal_axis(points: FloatArray, previous: FloatArray | None) -> FloatArray:
    """Unit direction of largest spread, oriented like ``previous`` when given."""
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axis: FloatArray = vectors[:, -1]
    if previous is not None and float(axis @ previous) < 0.0:
        axis = -axis
    return axis


def _fit(vessel: VesselModel, guess: FloatArray, previous: FloatArray | None) -> Section | None:
    """Centre and direction of the vessel's cross-section through ``guess``.

    The direction is the principal axis of the lumen within :attr:`VesselModel.pca_radius`;
    the centre is the centroid of the lumen slab (one lattice step thick) perpendicular to it,
    which pulls an off-axis guess onto the centreline. Two rounds, each around the new centre.
    """
    centre, direction = guess, previous
    for _ in range(2):
        near = vessel.points[vessel.tree.query_ball_point(centre, vessel.pca_radius)]
        if len(near) < 8:
            return None
        direction = _principal_axis(near, direction)
        offset = near - centre
        along = offset @ direction
        across = np.linalg.norm(offset - along[:, None] * direction, axis=1)
        slab = near[(np.abs(along) <= vessel.lattice_mm) & (across <= 2.2 * vessel.radius)]
        if len(slab) < 3:
            return None
        centre = slab.mean(axis=0)
    assert direction is not None
    return Section(centre, direction)


def _walk(
    vessel: VesselModel,
    start: Section,
    sign: float,
    tumor: DistanceField,
    reach: float,
    settings: ContactSettings,
) -> list[Section]:
    """Sections every ``track_step_mm`` from ``start`` one way, while near the tumor."""
    sections: list[Section] = []
    current = start
    for _ in range(_MAX_STEPS):
        guess = current.centre + sign * settings.track_step_mm * current.direction
        found = _fit(vessel, guess, current.direction)
        if found is None:
            break
        advance = float((found.centre - current.centre) @ current.direction) * sign
        inside = float(vessel.field.at(found.centre)) < 0.0
        near = float(tumor.at(found.centre)) <= reach
        if advance < 0.3 * settings.track_step_mm or not inside or not near:
            break
        sections.append(found)
        current = found
    return sections


def _covered(
    seeds: FloatArray, sections: list[Section], vessel: VesselModel, half_step: float
) -> npt.NDArray[np.bool_]:
    """Which seeds lie in the lumen near some section (within a radius along the vessel).

    A radius rather than half a step along, so the end caps beyond a track's last sections
    count as covered too.
    """
    centres = np.array([s.centre for s in sections])
    directions = np.array([s.direction for s in sections])
    covered = np.zeros(len(seeds), dtype=bool)
    for start in range(0, len(seeds), 2048):
        offset = seeds[start : start + 2048, None, :] - centres[None, :, :]
        along = np.einsum("stk,tk->st", offset, directions)
        across2 = np.einsum("stk,stk->st", offset, offset) - along**2
        inside = (np.abs(along) <= max(half_step + vessel.lattice_mm, vessel.radius)) & (
            across2 <= (1.5 * vessel.radius + vessel.lattice_mm) ** 2
        )
        covered[start : start + 2048] = inside.any(axis=1)
    return covered


def contact_sections(
    vessel: VesselModel, tumor: DistanceField, settings: ContactSettings
) -> list[list[Section]]:
    """Centreline tracks through every part of the vessel that the tumor could touch.

    Seeds are the lattice points of the lumen within :meth:`VesselModel.reach` of the tumor,
    nearest first; from the first seed not yet covered, the centreline is tracked both ways
    until it leaves the tumor's reach (by one radius more, as a seed off the axis may be nearer
    the tumor than its section's centre), and so on.

    Parameters
    ----------
    vessel
        The vessel near the tumor.
    tumor
        Signed distance to the tumor.
    settings
        Step along the centreline and ring distances.

    Returns
    -------
    list of list of Section
        One ordered list of cross-sections per track.
    """
    reach = vessel.reach(settings)
    distance = tumor.at(vessel.points)
    order = np.argsort(distance)
    seeds = vessel.points[order[distance[order] <= reach]]
    # A seed off the axis may be closer to the tumor than its section's centre.
    reach += vessel.radius + 1.0
    remaining = np.ones(len(seeds), dtype=bool)
    tracks: list[list[Section]] = []
    while remaining.any() and len(tracks) < _MAX_TRACKS:
        seed = seeds[int(np.argmax(remaining))]
        first = _fit(vessel, seed, None)
        if first is None:
            remaining &= np.linalg.norm(seeds - seed, axis=1) > vessel.radius
            continue
        back = _walk(vessel, first, -1.0, tumor, reach, settings)
        ahead = _walk(vessel, first, 1.0, tumor, reach, settings)
        track = [*back[::-1], first, *ahead]
        tracks.append(track)
        remaining &= ~_covered(seeds, track, vessel, 0.5 * settings.track_step_mm)
        remaining &= np.linalg.norm(seeds - seed, axis=1) > vessel.radius
    return tracks


def _basis(direction: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Two unit vectors completing ``direction`` to an orthonormal frame."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(direction, u)


def _wall_distance(
    vessel: VesselModel, centre: FloatArray, rays: FloatArray, settings: ContactSettings
) -> npt.NDArray[np.float64]:
    """Distance from ``centre`` to the vessel wall along each ray (NaN where not found)."""
    step = settings.radial_step_mm
    count = math.ceil((2.5 * vessel.radius + 2.0) / step)
    radii = step * np.arange(count + 1)
    points = centre + radii[None, :, None] * rays[:, None, :]
    values = vessel.field.at(points).astype(np.float64)
    values[:, 0] = float(vessel.field.at(centre))
    outside = values >= 0.0
    first = np.argmax(outside, axis=1)
    found = outside.any(axis=1) & (first > 0)
    j = np.where(found, first, 1)
    rows = np.arange(len(rays))
    before, after = values[rows, j - 1], values[rows, j]
    wall = radii[j - 1] + step * (-before / np.maximum(after - before, 1e-6))
    return np.where(found, wall, np.nan)


def section_angle(
    vessel: VesselModel, tumor: DistanceField, section: Section, settings: ContactSettings
) -> float | None:
    """Contact angle (degrees) of one cross-section; ``None`` if the section is unusable.

    Rays leave the centre in the plane perpendicular to the vessel; each finds the wall (the
    zero of the vessel's distance field) and looks for tumor at ``ring_mm`` beyond it. The
    angle is 360 times the fraction of rays that touch tumor.

    Parameters
    ----------
    vessel
        The vessel (its distance field gives the wall).
    tumor
        Signed distance to the tumor.
    section
        Centre and direction of the cross-section.
    settings
        Number of rays, radial step, ring distances and the share of rays that must find
        the wall.

    Returns
    -------
    float or None
        Degrees, 0-360; ``None`` if the centre is outside the lumen or too few rays find
        the wall.
    """
    if float(vessel.field.at(section.centre)) >= 0.0:
        return None
    u, w = _basis(section.direction)
    theta = np.linspace(0.0, 2.0 * np.pi, settings.rays, endpoint=False)
    rays = np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * w
    wall = _wall_distance(vessel, section.centre, rays, settings)
    valid = np.isfinite(wall)
    if valid.mean() < settings.min_valid_rays:
        return None
    ring = np.asarray(settings.ring_mm)
    radii = wall[valid, None] + ring[None, :]
    points = section.centre + radii[:, :, None] * rays[valid, None, :]
    touching = (tumor.at(points) < 0.0).any(axis=1)
    return 360.0 * float(touching.sum()) / float(valid.sum())
