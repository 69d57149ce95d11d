"""The held-out generator's tumor and its exact tumor-vessel contact angles.

A tumor is a core superquadric (round or lobulated) in the pancreas plus, for each key vessel
it is meant to touch, a *sleeve*: the part of a shell around that vessel (from its wall
outwards) within an angular wedge facing the core and a stretch along the centreline, joined to
the core by a straight tube. Around every key vessel a fat plane of :data:`FAT_PLANE_MM` is
kept free of tumor outside the sleeve.

The truth is not the drawn angle but what the finished geometry shows: on cross-sections of
each key vessel every millimetre along its centreline, 360 rays from the centre look for the
tumor label 0.5-2 mm beyond the wall, where the final label at a point (pancreas, ducts, tumor,
then the vessels painted over it) is evaluated on the continuous solids. The section angle is
the fraction of touching rays times 360; along the vessel, each section's angle is the median
of it and its neighbours, and the vessel's angle is the largest of these (the definition of
``docs/method.md``, read off the solids instead of a voxel map).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from pancreas_contracts.nccn import ARTERIAL_VESSELS, VENOUS_VESSELS
from pancreas_contracts.result import KEY_VESSEL_LABELS, KEY_VESSELS
from phantom.holdout._body import SITES, Anatomy
from phantom.holdout._sdf import FloatArray, Ripple, Shape, Superquadric, Tube, rotation_xyz

__all__ = [
    "FAT_PLANE_MM",
    "Sleeve",
    "TumorDesign",
    "contact_angles",
    "design_tumor",
]

FAT_PLANE_MM = 3.0
_RING_MM = (0.5, 1.0, 1.5, 2.0)
_RAYS = 360
# Site probabilities by intended category (head, uncinate, body, tail): the tail reaches no
# key vessel, so borderline and locally advanced tumors sit elsewhere.
_SITE_P = ((0.45, 0.1, 0.2, 0.25), (0.5, 0.2, 0.3, 0.0), (0.3, 0.2, 0.5, 0.0))
# How far (mm beyond the core's radius) a key vessel may lie and still be reached.
_REACH_MM = (18.0, 26.0, 30.0)
LabelAt = Callable[[FloatArray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Sleeve:
    """Tumor hugging ``angle_deg`` of one key vessel's wall over a stretch of its centreline."""

    vessel: str
    tube: Tube
    centre_index: int
    half_length_mm: float
    angle_deg: float
    width_mm: float
    direction: FloatArray

    def sdf(self, points: FloatArray) -> FloatArray:
        dist, index = self.tube.nearest(points)
        radius = self.tube.radii[index]
        radial = np.maximum(radius - dist, dist - radius - self.width_mm)
        step = self.tube.length / (len(self.tube.points) - 1)
        along = np.abs(index - self.centre_index) * step - self.half_length_mm
        result: FloatArray = np.maximum(radial, along)
        if self.angle_deg >= 360.0:
            return result
        tangents = self.tube.tangents()[index]
        offset = points - self.tube.points[index]
        offset -= np.sum(offset * tangents, axis=1, keepdims=True) * tangents
        facing = self.direction - np.outer(tangents @ self.direction, np.ones(3)) * tangents
        facing /= np.maximum(np.linalg.norm(facing, axis=1, keepdims=True), 1e-9)
        cos = np.sum(offset * facing, axis=1) / np.maximum(np.linalg.norm(offset, axis=1), 1e-9)
        beyond = np.arccos(np.clip(cos, -1.0, 1.0)) - math.radians(self.angle_deg / 2.0)
        wedge = dist * np.sin(np.clip(beyond, -math.pi / 2, math.pi / 2))
        combined: FloatArray = np.maximum(result, wedge)
        return combined

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        step = self.tube.length / (len(self.tube.points) - 1)
        half = int(self.half_length_mm / step) + 1
        part = self.tube.points[max(0, self.centre_index - half) : self.centre_index + half + 1]
        reach = float(self.tube.radii.max()) + self.width_mm
        return part.min(axis=0) - reach, part.max(axis=0) + reach

    @property
    def anchor(self) -> FloatArray:
        """Middle of the sleeve, where the stalk from the core arrives."""
        radius = float(self.tube.radii[self.centre_index])
        result: FloatArray = self.tube.points[self.centre_index] + self.direction * (
            radius + 0.5 * self.width_mm
        )
        return result


@dataclass(frozen=True, eq=False)
class TumorDesign:
    """One tumor: core, sleeves, stalks and the key vessels whose fat plane is kept.

    Parameters
    ----------
    site
        One of :data:`~phantom.holdout._body.SITES`.
    core
        The tumor mass.
    sleeves
        One per vessel meant to be touched.
    stalks
        Straight tubes from the core to each sleeve.
    key_tubes
        Key vessel (``"SMA"``...) -> tube.
    attenuation, shape
        ``"hypo"`` or ``"iso"``; ``"round"`` or ``"lobulated"``.
    diameter_mm
        Largest drawn diameter of the core.
    """

    site: str
    core: Superquadric
    sleeves: tuple[Sleeve, ...]
    stalks: tuple[Tube, ...]
    key_tubes: Mapping[str, Tube]
    attenuation: str
    shape: str
    diameter_mm: float

    def _clearance(self, key: str, points: FloatArray) -> FloatArray:
        tube = self.key_tubes[key]
        dist, index = tube.nearest(points)
        result: FloatArray = dist - tube.radii[index] - FAT_PLANE_MM
        for sleeve in self.sleeves:
            if sleeve.vessel == key:
                result = np.maximum(result, -sleeve.sdf(points))
        return result

    def sdf(self, points: FloatArray) -> FloatArray:
        parts: list[Shape] = [self.core, *self.sleeves, *self.stalks]
        solid = self.core.sdf(points)
        for part in parts[1:]:
            solid = np.minimum(solid, part.sdf(points))
        for key in self.key_tubes:
            solid = np.maximum(solid, -self._clearance(key, points))
        return solid

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        parts: list[Shape] = [self.core, *self.sleeves, *self.stalks]
        boxes = [p.bounds() for p in parts]
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        return lo, hi


def _draw_angle(rng: np.random.Generator, encasing: bool) -> float:
    """A contact angle kept 20 degrees or more clear of the 180-degree threshold."""
    if not encasing:
        return round(float(rng.uniform(25.0, 160.0)), 1)
    return 360.0 if rng.random() < 0.2 else round(float(rng.uniform(200.0, 330.0)), 1)


def _plan_angles(rng: np.random.Generator, target: int, near: list[str]) -> dict[str, float]:
    """Drawn sleeve angles by key vessel for the intended NCCN category ``target``."""
    arteries = [v for v in near if v in ARTERIAL_VESSELS]
    veins = [v for v in near if v in VENOUS_VESSELS]
    angles: dict[str, float] = {}
    if target == 2 and arteries:
        # The celiac trunk has the shortest free stretch; favour it when it is in reach.
        weights = np.array([2.0 if v == "CA" else 1.0 for v in arteries])
        main = str(rng.choice(arteries, p=weights / weights.sum()))
        angles[main] = _draw_angle(rng, True)
        for v in veins:
            if rng.random() < 0.5:
                angles[v] = _draw_angle(rng, bool(rng.random() < 0.5))
    elif target >= 1 and (arteries or veins):
        if arteries and (not veins or rng.random() < 0.5):
            angles[str(rng.choice(arteries))] = _draw_angle(rng, False)
        else:
            angles[str(rng.choice(veins))] = _draw_angle(rng, True)
    else:
        for v in veins:
            if rng.random() < 0.5:
                angles[v] = _draw_angle(rng, False)
    return angles


def _free_samples(tube: Tube, others: Mapping[str, tuple[Tube, bool]]) -> np.ndarray:
    """Per centreline sample: whether no other vessel (nor a key vessel's fat plane) reaches
    the ring 2.5 mm around the wall there (a sleeve centred there is not cut)."""
    free = np.ones(len(tube.points), dtype=bool)
    for other, is_key in others.values():
        need = tube.radii + 2.5 + (FAT_PLANE_MM if is_key else 0.0)
        dist, index = other.nearest(tube.points, beyond_mm=30.0)
        free &= dist - other.radii[index] > need
    return free


def _sleeve(
    rng: np.random.Generator,
    key: str,
    tube: Tube,
    others: Mapping[str, tuple[Tube, bool]],
    centre: FloatArray,
) -> Sleeve | None:
    """A sleeve (angle still 0) on the free stretch of ``tube`` nearest the core, if any."""
    step = tube.length / (len(tube.points) - 1)
    half_length = float(rng.uniform(4.0, 8.0))
    width = float(rng.uniform(3.5, 6.0))
    margin = int(half_length / step) + 1
    free = _free_samples(tube, others)
    # The middle 4 mm of the sleeve must be free: the read-out takes the largest angle along it.
    core = int(2.0 / step)
    window = np.convolve(free, np.ones(2 * core + 1), mode="same") >= 2 * core + 1
    window[:margin] = False
    window[len(window) - margin :] = False
    if not window.any():
        return None
    candidates = np.flatnonzero(window)
    index = int(candidates[np.argmin(np.linalg.norm(tube.points[candidates] - centre, axis=1))])
    return Sleeve(key, tube, index, half_length, 0.0, width, _facing(tube, index, centre))


def _facing(tube: Tube, index: int, centre: FloatArray) -> FloatArray:
    """Unit vector from the centreline sample ``index`` towards ``centre``, across the tube."""
    tangent = tube.tangents()[index]
    toward = centre - tube.points[index]
    toward -= float(toward @ tangent) * tangent
    norm = float(np.linalg.norm(toward))
    if norm < 1e-3:
        toward = np.cross(tangent, np.array([0.0, 0.0, 1.0]))
        norm = float(np.linalg.norm(toward))
    result: FloatArray = toward / norm
    return result


def _drawn_towards(centre: FloatArray, sleeves: list[Sleeve], radius: float) -> FloatArray:
    """The core's centre moved towards its widest sleeve, so the mass itself reaches it.

    A tumor encasing a vessel is one mass, not a ring on a stalk; the move is capped so the
    core stays on the pancreas.
    """
    if not sleeves:
        return centre
    widest = max(sleeves, key=lambda s: s.angle_deg)
    point = widest.tube.points[widest.centre_index]
    offset = point - centre
    gap = float(np.linalg.norm(offset)) - float(widest.tube.radii[widest.centre_index])
    move = min(gap - 0.6 * radius, 0.5 * radius + 5.0)
    if move <= 0.0:
        return centre
    result: FloatArray = centre + offset / float(np.linalg.norm(offset)) * move
    return result


def _sleeve_options(
    rng: np.random.Generator, anatomy: Anatomy, centre: FloatArray, reach: float
) -> dict[str, Sleeve]:
    """Key vessel -> where a sleeve could go, for the vessels with a free stretch in reach."""
    key_labels = set(KEY_VESSEL_LABELS.values())
    options = {}
    for key in KEY_VESSELS:
        own = anatomy.vessels[KEY_VESSEL_LABELS[key]]
        others = {n: (t, n in key_labels) for n, t in anatomy.vessels.items() if t is not own}
        sleeve = _sleeve(rng, key, own, others, centre)
        if sleeve is None:
            continue
        point = own.points[sleeve.centre_index]
        gap = float(np.linalg.norm(point - centre)) - float(own.radii[sleeve.centre_index])
        if gap <= reach:
            options[key] = sleeve
    return options


def _core(
    rng: np.random.Generator, centre: FloatArray, diameter: float, lobulated: bool
) -> Superquadric:
    a = diameter / 2.0
    axes = np.array([a, a * rng.uniform(0.7, 1.0), a * rng.uniform(0.7, 1.0)])
    angles = (rng.uniform(0, math.pi), rng.uniform(0, math.pi), rng.uniform(0, math.pi))
    ripple = Ripple.draw(rng, 0.15 * a, (0.6 * a, 1.4 * a)) if lobulated else None
    return Superquadric(centre, axes, rotation_xyz(angles), 2.0, ripple)


def design_tumor(anatomy: Anatomy, target: int, rng: np.random.Generator) -> TumorDesign:
    """Draw a tumor meant to fall in NCCN category ``target`` (the geometry decides).

    Parameters
    ----------
    anatomy
        The patient's anatomy.
    target
        Intended category (0, 1, 2); lowered when the site has no vessel to make it.
    rng
        The patient's tumor stream.
    """
    site = SITES[int(rng.choice(len(SITES), p=_SITE_P[target]))]
    diameter = float(rng.uniform(15.0, 50.0))
    centre = anatomy.sites[site] + rng.uniform(-2.0, 2.0, 3)
    lobulated = bool(rng.random() < 0.5)
    key_tubes = {k: anatomy.vessels[KEY_VESSEL_LABELS[k]] for k in KEY_VESSELS}
    options = _sleeve_options(rng, anatomy, centre, diameter / 2.0 + _REACH_MM[target])
    planned = _plan_angles(rng, target, list(options))
    drawn = [replace(options[key], angle_deg=angle) for key, angle in planned.items()]
    centre = _drawn_towards(centre, drawn, diameter / 2.0)
    core = _core(rng, centre, diameter, lobulated)
    sleeves: list[Sleeve] = []
    stalks: list[Tube] = []
    for sleeve in drawn:
        sleeve = replace(sleeve, direction=_facing(sleeve.tube, sleeve.centre_index, centre))
        sleeves.append(sleeve)
        radius = min(0.5 * sleeve.width_mm, 3.0)
        stalks.append(Tube.through(np.stack([centre, sleeve.anchor]), (radius, radius)))
    return TumorDesign(
        site=site,
        core=core,
        sleeves=tuple(sleeves),
        stalks=tuple(stalks),
        key_tubes=MappingProxyType(key_tubes),
        attenuation="iso" if rng.random() < 0.25 else "hypo",
        shape="lobulated" if lobulated else "round",
        diameter_mm=diameter,
    )


def _ring(tube: Tube, index: int) -> FloatArray:
    """Ring points of one cross-section: ``(rays, rings, 3)``."""
    tangent = tube.tangents()[index]
    helper = np.array([1.0, 0.0, 0.0]) if abs(tangent[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(tangent, helper)
    u /= np.linalg.norm(u)
    v = np.cross(tangent, u)
    phi = np.arange(_RAYS) * (2.0 * math.pi / _RAYS)
    rays = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v
    radii = float(tube.radii[index]) + np.asarray(_RING_MM)
    result: FloatArray = tube.points[index] + rays[:, None, :] * radii[None, :, None]
    return result


def _median3(values: list[float]) -> list[float]:
    if len(values) < 3:
        return values
    return [float(np.median(values[i - 1 : i + 2])) for i in range(1, len(values) - 1)]


def contact_angles(design: TumorDesign, label_at: LabelAt, tumor_label: int) -> dict[str, float]:
    """Contact angle in degrees (0.1-degree steps) of the finished tumor with each key vessel.

    Parameters
    ----------
    design
        The tumor.
    label_at
        Final label at body-frame points (the painted scene).
    tumor_label
        The tumor's label value.
    """
    angles: dict[str, float] = {}
    for key, tube in design.key_tubes.items():
        reach = tube.radii + max(_RING_MM) + 1.0
        near = design.sdf(tube.points) <= reach
        indices = np.flatnonzero(near)[:: max(1, round(len(tube.points) / tube.length))]
        best = 0.0
        runs = np.split(indices, np.flatnonzero(np.diff(indices) > 8) + 1)
        for run in runs:
            section_angles = []
            for index in run:
                ring = _ring(tube, int(index))
                hits = (label_at(ring.reshape(-1, 3)) == tumor_label).reshape(ring.shape[:2])
                section_angles.append(360.0 * float(hits.any(axis=1).mean()))
            best = max([best, *_median3(section_angles)])
        angles[key] = round(best, 1)
    return angles
