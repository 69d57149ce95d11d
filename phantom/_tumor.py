"""The tumor: NCCN ground truth, contact angles and their exact construction.

A tumor is a core ellipsoid in the pancreas, plus for every key vessel with a contact angle
``theta > 0`` an annular sector ("cuff") of a few mm around that vessel spanning ``theta``
degrees and facing the core, joined to the core by a short bridge. Around every key vessel a
thin shell (:data:`FAT_PLANE_MM`) is then cleared of tumor everywhere outside its cuff, so the
tumor touches exactly the constructed arc of each vessel wall and nothing else: a preserved fat
plane, as radiologists read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pancreas_contracts.nccn import ARTERIAL_VESSELS, VENOUS_VESSELS, nccn_rule_category
from pancreas_contracts.result import KEY_VESSEL_LABELS
from pancreas_contracts.result import KEY_VESSELS as RESULT_KEY_VESSELS
from phantom._anatomy import Anatomy, Vessel
from phantom._geometry import (
    BoolArray,
    Bounds,
    Box,
    Capsule,
    Ellipsoid,
    Float32Array,
    FloatArray,
    Grid,
    Shape,
    rotation,
    segment_coordinates,
    union_bounds,
)
from phantom._variation import TumorLook

# The key vessels, their labels and the NCCN rule are the shared contracts': the phantom's
# ground truth and the product's measurement cannot follow different rules.
KEY_VESSELS: tuple[str, ...] = RESULT_KEY_VESSELS
ARTERIAL: tuple[str, ...] = ARTERIAL_VESSELS
VENOUS: tuple[str, ...] = VENOUS_VESSELS
VESSEL_LABELS: Mapping[str, str] = KEY_VESSEL_LABELS
TUMOR_LOCATIONS: tuple[str, ...] = ("head", "body")
FAT_PLANE_MM = 3.0


def sample_location(target: int, rng: np.random.Generator) -> str:
    """Head or body: head tumors dominate, body tumors are commoner when locally advanced."""
    p_head = (0.72, 0.62, 0.45)[target]
    return "head" if rng.random() < p_head else "body"


def _draw(rng: np.random.Generator, lo: int, hi: int) -> float:
    """An angle in ``[lo, hi]`` on a 5-degree step."""
    return float(5 * rng.integers(lo // 5, hi // 5 + 1))


def _any_contact(rng: np.random.Generator) -> float:
    """Some contact, kept clear of the 180-degree threshold."""
    return _draw(rng, 30, 160) if rng.random() < 0.5 else _draw(rng, 200, 360)


def sample_angles(target: int, location: str, rng: np.random.Generator) -> dict[str, float]:
    """Contact angles whose NCCN rule category is ``target``.

    Head tumors reach the SMA, the common hepatic artery and the veins; body tumors also the
    celiac trunk. Angles lie on 5-degree steps, at least 30 degrees when non-zero, and at least
    20 degrees away from the 180-degree threshold.
    """
    arterial = ("SMA", "CHA") if location == "head" else ARTERIAL
    angles = dict.fromkeys(KEY_VESSELS, 0.0)
    if target == 0:
        for v in VENOUS:
            if rng.random() < (0.45 if location == "head" else 0.25):
                angles[v] = _draw(rng, 30, 150)
    elif target == 1 and rng.random() < 0.5:
        count = 2 if rng.random() < 0.25 else 1
        for v in rng.choice(np.array(arterial), size=count, replace=False):
            angles[str(v)] = _draw(rng, 30, 160)
        for v in VENOUS:
            if rng.random() < 0.6:
                angles[v] = _any_contact(rng)
    elif target == 1:
        first, second = rng.permutation(np.array(VENOUS))
        angles[str(first)] = _draw(rng, 200, 360)
        if rng.random() < 0.5:
            angles[str(second)] = _any_contact(rng)
    else:
        main = str(rng.choice(np.array(arterial)))
        angles[main] = _draw(rng, 200, 360)
        for v in arterial:
            if v != main and rng.random() < 0.4:
                angles[v] = _any_contact(rng)
        for v in VENOUS:
            if rng.random() < 0.6:
                angles[v] = _any_contact(rng)
    if nccn_rule_category(angles) != target:
        raise AssertionError("angle sampler disagrees with the NCCN rule")  # pragma: no cover
    return angles


@dataclass(frozen=True, eq=False)
class Cuff:
    """An annular sector of tumor around one straight segment of a key vessel.

    Parameters
    ----------
    vessel
        Vessel key (``"SMA"``...).
    p0, p1
        The vessel segment carrying the cuff.
    t_center, half_length
        Axial extent along ``p0 -> p1`` in mm.
    angle_deg
        Angular span, centred on ``direction``.
    r_in, r_out
        Radial extent in mm; ``r_in`` is the vessel radius, so the cuff touches the wall.
    direction
        Unit vector perpendicular to the segment, pointing at the tumor core.
    """

    vessel: str
    p0: FloatArray
    p1: FloatArray
    t_center: float
    half_length: float
    angle_deg: float
    r_in: float
    r_out: float
    direction: FloatArray

    @property
    def unit(self) -> FloatArray:
        """Unit vector along the segment."""
        d = self.p1 - self.p0
        result: FloatArray = d / np.linalg.norm(d)
        return result

    @property
    def anchor(self) -> FloatArray:
        """The middle of the cuff (where the bridge from the core arrives)."""
        mid = 0.5 * (self.r_in + self.r_out)
        result: FloatArray = self.p0 + self.t_center * self.unit + mid * self.direction
        return result

    def bounds(self) -> Bounds:
        a = self.p0 + (self.t_center - self.half_length) * self.unit
        b = self.p0 + (self.t_center + self.half_length) * self.unit
        return np.minimum(a, b) - self.r_out, np.maximum(a, b) + self.r_out

    def sector(self, box: Box, t: Float32Array, rho2: Float32Array) -> BoolArray:
        """Voxels within the cuff's axial extent and angular span (any radius)."""
        along = np.abs(t - np.float32(self.t_center)) <= self.half_length
        if self.angle_deg >= 360.0:
            return np.asarray(along)
        rho = np.sqrt(rho2)
        facing = box.project(self.p0, self.direction)
        limit = np.float32(math.cos(math.radians(self.angle_deg / 2.0)))
        return np.asarray(along & (facing >= limit * rho))

    def mask(self, box: Box) -> BoolArray:
        t, rho2, _ = segment_coordinates(box, self.p0, self.p1)
        radial = (rho2 > self.r_in**2) & (rho2 <= self.r_out**2)
        return np.asarray(radial & self.sector(box, t, rho2))


@dataclass(frozen=True, eq=False)
class TumorDesign:
    """Everything needed to rasterise one tumor (world LPS millimetres).

    ``clear`` is ``False`` when some cuff could not be placed where nothing else touches its
    contact zone (the drawn contact could then fall short of the constructed angle).
    """

    core: Ellipsoid
    cuffs: tuple[Cuff, ...]
    bridges: tuple[Capsule, ...]
    clear: bool = True
    lobes: tuple[Shape, ...] = ()

    def shapes(self) -> tuple[Shape, ...]:
        """All positive parts of the tumor (``lobes``: wide-variation lobules and strands)."""
        return (self.core, *self.lobes, *self.bridges, *self.cuffs)


def _base_point(anatomy: Anatomy, location: str, rng: np.random.Generator) -> FloatArray:
    if location == "head":
        local = np.array([-25.0, -36.0, -18.0]) + rng.uniform([-4, -3, -5], [4, 3, 5])
    elif location == "body":
        local = np.array([18.0, -40.0, 1.0]) + rng.uniform([-7, -3, -3], [7, 3, 3])
    elif location == "uncinate":
        local = np.array([-13.0, -22.0, -27.0]) + rng.uniform([-3, -2, -3], [3, 2, 3])
    else:  # tail (wide variation)
        local = np.array([62.0, -19.0, 13.0]) + rng.uniform([-6, -3, -3], [6, 3, 3])
    return anatomy.local(local)


def _perpendicular(vector: FloatArray, axis: FloatArray) -> FloatArray:
    """``vector`` without its component along ``axis``, normalised (any normal if degenerate)."""
    v = vector - float(vector @ axis) * axis
    norm = float(np.linalg.norm(v))
    if norm < 1e-6:
        v = np.cross(axis, np.array([0.0, 0.0, 1.0]))
        if np.linalg.norm(v) < 1e-6:
            v = np.cross(axis, np.array([1.0, 0.0, 0.0]))
        norm = float(np.linalg.norm(v))
    result: FloatArray = v / norm
    return result


def _polyline_distance(points: FloatArray, line: FloatArray, skip: int | None = None) -> FloatArray:
    """Distance of each point to a polyline (segment ``skip`` left out)."""
    best = np.full(len(points), np.inf)
    for i in range(len(line) - 1):
        if i == skip:
            continue
        a, b = line[i], line[i + 1]
        d = b - a
        t = np.clip(((points - a) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * d), axis=1))
    return best


def _ring_points(p0: FloatArray, unit: FloatArray, t: float, radius: float) -> FloatArray:
    """Points of the contact zone around the axis at ``t`` (3 mm slab, two radii, 16 angles)."""
    u = _perpendicular(np.array([0.0, 0.0, 1.0]), unit)
    w = np.cross(unit, u)
    psi = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    circle = np.cos(psi)[:, None] * u + np.sin(psi)[:, None] * w
    pts = [
        p0 + s * unit + rho * circle
        for s in (t - 1.5, t, t + 1.5)
        for rho in (radius + 0.3, radius + FAT_PLANE_MM)
    ]
    return np.concatenate(pts)


def _is_clear(anatomy: Anatomy, vessel: Vessel, seg: int, t: float) -> bool:
    """Whether a cuff centred at ``t`` keeps its contact zone free of everything else.

    Other vessels are painted over the tumor and other key vessels' fat planes are cleared of
    it, so either would make the drawn contact smaller than the constructed angle.
    """
    p0, p1 = vessel.points[seg], vessel.points[seg + 1]
    unit = (p1 - p0) / np.linalg.norm(p1 - p0)
    pts = _ring_points(p0, unit, t, vessel.radius)
    keys = set(VESSEL_LABELS.values())
    for other in anatomy.vessels.values():
        if other.label == vessel.label:
            margin = other.radius + FAT_PLANE_MM + 0.3
            joints = np.linalg.norm(pts[:, None, :] - other.points[None], axis=2).min(axis=1)
            distance = np.minimum(_polyline_distance(pts, other.points, skip=seg), joints)
        else:
            margin = other.radius + (FAT_PLANE_MM if other.label in keys else 0.0) + 0.3
            distance = _polyline_distance(pts, other.points)
        if bool((distance <= margin).any()):
            return False
    return True


class _Spot(NamedTuple):
    """A candidate cuff centre: ``t`` mm along segment ``seg``, within window ``[lo, hi]``."""

    distance: float
    seg: int
    t: float
    lo: float
    hi: float


def _spots(
    vessel: Vessel, windows: tuple[tuple[int, float, float], ...], base: FloatArray
) -> list[_Spot]:
    """Candidate centres every 1 mm in the vessel's windows, nearest to ``base`` first."""
    spots = []
    for seg, lo, hi in windows:
        p0, p1 = vessel.points[seg], vessel.points[seg + 1]
        seg_len = float(np.linalg.norm(p1 - p0))
        hi = max(lo, min(hi, seg_len - 2.0))
        unit = (p1 - p0) / seg_len
        for t in np.arange(lo + 1.5, hi - 1.5 + 1e-6, 1.0):
            distance = float(np.linalg.norm(base - (p0 + t * unit)))
            spots.append(_Spot(distance, seg, float(t), lo, hi))
        if not spots:
            middle = 0.5 * (lo + hi)
            spots.append(
                _Spot(float(np.linalg.norm(base - (p0 + middle * unit))), seg, middle, lo, hi)
            )
    return sorted(spots)


def _place_cuff(
    anatomy: Anatomy,
    key: str,
    angle: float,
    base: FloatArray,
    rng: np.random.Generator,
    length_mm: tuple[float, float] = (10.0, 20.0),
) -> tuple[Cuff, bool]:
    """A cuff on the clear stretch of ``key`` nearest the tumor; ``False`` if none is clear."""
    vessel = anatomy.vessels[VESSEL_LABELS[key]]
    half_length = float(rng.uniform(*length_mm)) / 2.0
    thickness = float(rng.uniform(3.5, 6.0))
    spots = _spots(vessel, anatomy.cuff_windows[vessel.label], base)
    chosen = next((s for s in spots if _is_clear(anatomy, vessel, s.seg, s.t)), None)
    spot = chosen if chosen is not None else spots[0]
    start, stop = max(spot.lo, spot.t - half_length), min(spot.hi, spot.t + half_length)
    p0, p1 = vessel.points[spot.seg], vessel.points[spot.seg + 1]
    unit = (p1 - p0) / np.linalg.norm(p1 - p0)
    center = 0.5 * (start + stop)
    direction = _perpendicular(base - (p0 + center * unit), unit)
    r = vessel.radius
    cuff = Cuff(key, p0, p1, center, 0.5 * (stop - start), angle, r, r + thickness, direction)
    return cuff, chosen is not None


def _lobes(core: Ellipsoid, shape: str, rng: np.random.Generator) -> tuple[Shape, ...]:
    """Lobules on the core's surface, or strands reaching out from it (infiltrating)."""
    mean = float(core.semi.mean())
    directions = rng.normal(size=(int(rng.integers(2, 5)) if shape == "lobulated" else 5, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    parts: list[Shape] = []
    for d in directions:
        surface = core.center + core.axes @ (d * core.semi)
        if shape == "lobulated":
            semi = mean * rng.uniform(0.35, 0.6, 3)
            parts.append(Ellipsoid(surface, core.axes, semi))
        else:
            tip = surface + d * float(rng.uniform(6.0, 16.0))
            parts.append(Capsule(core.center, tip, float(rng.uniform(1.5, 3.0)), 0.8))
    return tuple(parts)


def _core_semi(
    anatomy: Anatomy, target: int, look: TumorLook | None, rng: np.random.Generator
) -> FloatArray:
    if look is None:
        size = ((8.0, 13.0), (9.0, 15.0), (11.0, 17.0))[target]
        semi: FloatArray = float(rng.uniform(*size)) * rng.uniform(0.8, 1.2, 3)
        return semi * anatomy.placement.scale
    spread = (0.9, 1.1) if look.shape == "round" else (0.75, 1.25)
    semi = 0.5 * look.diameter_mm * rng.uniform(*spread, 3)
    return semi


def _cuff_length(look: TumorLook | None) -> tuple[float, float]:
    """Axial length range of a cuff: longer along an infiltrating tumor, shorter by a small one."""
    if look is not None and look.small:
        return (6.0, 12.0)
    if look is not None and look.shape == "infiltrating":
        return (16.0, 30.0)
    return (10.0, 20.0)


def design_tumor(
    anatomy: Anatomy,
    location: str,
    angles: Mapping[str, float],
    target: int,
    rng: np.random.Generator,
    look: TumorLook | None = None,
) -> TumorDesign:
    """Lay out a tumor in ``location`` with exactly the contact ``angles``.

    The core starts at a typical head or body position (wide variation: also uncinate or
    tail) and is pulled part of the way towards the vessels it must reach; its size grows with
    the category, or is ``look``'s diameter. A lobulated tumor gets lobules on its surface, an
    infiltrating one strands reaching into the fat and longer cuffs along its vessels; a small
    one (``look.small``) shorter cuffs and a core pulled closer to them. The fat planes still
    keep every contact angle exact.
    """
    base = _base_point(anatomy, location, rng)
    length = _cuff_length(look)
    placed = [
        _place_cuff(anatomy, key, float(angles[key]), base, rng, length)
        for key in KEY_VESSELS
        if float(angles.get(key, 0.0)) > 0.0
    ]
    cuffs = tuple(cuff for cuff, _ in placed)
    center = base
    if cuffs:
        # A small tumor sits closer to the vessels it touches, so that it stays small.
        pull = float(
            rng.uniform(*((0.45, 0.6) if look is not None and look.small else (0.25, 0.45)))
        )
        center = base + pull * (np.mean([c.anchor for c in cuffs], axis=0) - base)
    semi = _core_semi(anatomy, target, look, rng)
    axes = anatomy.placement.axes(rotation(rng.uniform(-25.0, 25.0, 3)))
    core = Ellipsoid(center, axes, semi)
    bridge_r = float(rng.uniform(4.0, 6.0))
    bridges = tuple(Capsule(center, c.anchor, bridge_r, 0.8 * bridge_r) for c in cuffs)
    lobes = _lobes(core, look.shape, rng) if look is not None and look.shape != "round" else ()
    return TumorDesign(core, cuffs, bridges, all(clear for _, clear in placed), lobes)


def _overlaps(bounds: Bounds, box_lo: FloatArray, box_hi: FloatArray) -> bool:
    return bool(np.all(bounds[0] <= box_hi) and np.all(bounds[1] >= box_lo))


def _fat_plane(
    box: Box, vessel: Vessel, cuff: Cuff | None, lo: FloatArray, hi: FloatArray
) -> BoolArray:
    """The shell of width :data:`FAT_PLANE_MM` around ``vessel`` outside its cuff's sector."""
    r_in2, r_out2 = vessel.radius**2, (vessel.radius + FAT_PLANE_MM) ** 2
    shell = np.zeros(box.shape, dtype=bool)
    reach = vessel.radius + FAT_PLANE_MM
    for i in range(len(vessel.points) - 1):
        p0, p1 = vessel.points[i], vessel.points[i + 1]
        if not _overlaps((np.minimum(p0, p1) - reach, np.maximum(p0, p1) + reach), lo, hi):
            continue
        t, rho2, length = segment_coordinates(box, p0, p1)
        part = (t >= 0.0) & (t <= length) & (rho2 > r_in2) & (rho2 <= r_out2)
        if cuff is not None and np.array_equal(cuff.p0, p0) and np.array_equal(cuff.p1, p1):
            part &= ~cuff.sector(box, t, rho2)
        shell |= part
    for point in vessel.points:
        if not _overlaps((point - reach, point + reach), lo, hi):
            continue
        dx, dy, dz = box.offsets(point)
        d2 = dx * dx + dy * dy + dz * dz
        shell |= (d2 > r_in2) & (d2 <= r_out2)
    return shell


def rasterize_tumor(
    grid: Grid, anatomy: Anatomy, design: TumorDesign
) -> tuple[Box, BoolArray] | None:
    """The tumor's voxels: ``(box, mask)``, or ``None`` if it lies outside the grid."""
    lo, hi = union_bounds(design.shapes())
    box = grid.box(lo, hi)
    if box is None:
        return None
    mask = np.zeros(box.shape, dtype=bool)
    for shape in design.shapes():
        mask |= shape.mask(box)
    cuffs = {c.vessel: c for c in design.cuffs}
    for key in KEY_VESSELS:
        vessel = anatomy.vessels[VESSEL_LABELS[key]]
        mask &= ~_fat_plane(box, vessel, cuffs.get(key), lo, hi)
    return box, mask
