"""The phantom's anatomy: a local design in patient LPS millimetres, varied and placed per patient.

The local frame has its origin on the aortic axis at the level of the SMA origin; ``+x`` is the
patient's left, ``+y`` posterior, ``+z`` superior. Every control point is jittered a little,
the whole design is scaled, slightly rotated and shifted by several centimetres, so the pancreas
sits somewhere different in every scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

import numpy as np

from phantom._geometry import (
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    FloatArray,
    HalfSpace,
    Intersection,
    Shape,
    as_point,
    rotation,
    tube,
)
from phantom._variation import REPLACED_RHA, Body


class Material(IntEnum):
    """Tissue classes of the background image; each gets one HU value per patient."""

    AIR = 0
    FAT_SUBCUTANEOUS = 1
    MUSCLE = 2
    FAT_VISCERAL = 3
    LIVER = 4
    SPLEEN = 5
    KIDNEY = 6
    BOWEL_WALL = 7
    FLUID = 8
    GAS = 9
    BONE_CORTICAL = 10
    BONE_CANCELLOUS = 11
    DISC = 12
    CSF = 13
    PANCREAS = 14
    TUMOR = 15
    DUCT = 16
    BILE = 17
    ARTERY = 18
    PORTAL = 19
    SMV = 20
    IVC = 21
    # Wide variation only (standard HU tables leave them 0 and never paint them).
    NECROSIS = 22
    CYST = 23
    CALCIFICATION = 24
    STENT = 25
    PNET = 26
    # Lymph nodes (phantom._lymph_nodes): their HU come from the nodes' own stream, not the
    # tables, so that switching nodes on leaves every other draw as it was.
    LYMPH_NODE = 27
    NODE_HILUM = 28
    NODE_NECROSIS = 29


@dataclass(frozen=True, eq=False)
class Vessel:
    """A labelled tubular structure: a world-LPS polyline with a constant radius.

    Parameters
    ----------
    label
        Label name from :data:`pancreas_contracts.LABELS`.
    points
        ``(n, 3)`` centreline in world LPS millimetres.
    radius
        Lumen radius in mm.
    material
        Tissue class of the lumen.
    """

    label: str
    points: FloatArray
    radius: float
    material: Material

    def shapes(self) -> tuple[Capsule, ...]:
        """The capsules that make up the vessel."""
        return tube(self.points, self.radius)


@dataclass(frozen=True, eq=False)
class Placement:
    """Local design frame to world LPS: ``world = rotation @ (scale * local) + translation``."""

    rotation: FloatArray
    scale: float
    translation: FloatArray

    def point(self, local: FloatArray) -> FloatArray:
        """Map one local point (or an ``(n, 3)`` array of points) to world coordinates."""
        result: FloatArray = (self.scale * np.asarray(local)) @ self.rotation.T + self.translation
        return result

    def axes(self, local_axes: FloatArray) -> FloatArray:
        """Map local principal axes (columns) to world axes."""
        result: FloatArray = self.rotation @ local_axes
        return result


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One patient's anatomy in world coordinates.

    Parameters
    ----------
    placement
        The local-to-world transform used.
    background
        ``(shape, material)`` pairs painted in order before the labelled structures.
    pancreas
        Shapes whose union is the gland.
    pancreas_axis
        World centreline from the neck to the tail (the main duct follows it).
    vessels
        Labelled vessels by label name, in painting order (later ones win); a replaced right
        hepatic artery (wide variation) comes first, under :data:`REPLACED_RHA_KEY`.
    bile_duct_points
        World centreline of the common bile duct, hilum to ampulla.
    cuff_windows
        Per label name: ``(segment index, t_min, t_max)`` ranges (mm along the segment)
        where a tumor cuff may sit clear of branch points.
    organs
        Unlabelled organs by name (``"stomach"``, ``"duodenum"``: their outer walls), for the
        lymph nodes' attention structures; empty where not recorded.
    """

    placement: Placement
    background: tuple[tuple[Shape, Material], ...]
    pancreas: tuple[Shape, ...]
    pancreas_axis: FloatArray
    vessels: dict[str, Vessel]
    bile_duct_points: FloatArray
    cuff_windows: dict[str, tuple[tuple[int, float, float], ...]]
    organs: Mapping[str, tuple[Shape, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def local(self, point: FloatArray) -> FloatArray:
        """Map a local design point to world coordinates."""
        return self.placement.point(point)


def _design_nodes() -> dict[str, tuple[float, float, float]]:
    """Control points of the standard anatomy in the local frame (mm)."""
    return {
        "AO_top": (14, 6, 200), "AO_bot": (14, 6, -200),
        "IVC_top": (-22, 4, 200), "IVC_bot": (-20, 8, -200),
        "SMA0": (14, 6, 0), "SMA1": (14, -14, -6), "SMA2": (12, -21, -35), "SMA3": (9, -23, -110),
        "CA0": (14, 6, 13), "B": (14, -22, 18),
        "CHA1": (-6, -38, 25), "H": (-25, -46, 25),
        "PHA1": (-35, -44, 36), "PHA2": (-45, -40, 48),
        "GDA1": (-27, -51, 5), "GDA2": (-28, -53, -18),
        "SA1": (35, -22, 20), "SA2": (58, -10, 24), "SA3": (85, 8, 30),
        "SMV0": (-11, -27, -110), "SMV1": (-8, -29, -35), "C": (-4, -28, -6),
        "PV1": (-18, -30, 12), "PV2": (-38, -28, 35), "PV3": (-52, -25, 46),
        "SV1": (25, -27, -2), "SV2": (55, -15, 8), "SV3": (86, 14, 20),
        "CBD0": (-56, -36, 46), "CBD1": (-44, -34, 20), "CBD2": (-38, -29, 0),
        "CBD3": (-35, -31, -22), "CBD4": (-40, -33, -36),
        "P0": (-16, -41, -8), "P1": (0, -44, -3), "P2": (20, -40, 2),
        "P3": (45, -31, 8), "P4": (65, -16, 14), "P5": (80, -3, 20),
    }  # fmt: skip


# Nodes on the aortic axis stay there, so the aorta and its branches keep meeting at its centre.
_FIXED_NODES = frozenset({"AO_top", "AO_bot", "SMA0", "CA0"})


def _jittered_nodes(
    rng: np.random.Generator, sd: float = 1.2, limit: float = 2.5
) -> dict[str, FloatArray]:
    nodes = {name: np.asarray(p, dtype=np.float64) for name, p in _design_nodes().items()}
    for name in nodes:
        if name not in _FIXED_NODES:
            nodes[name] = nodes[name] + np.clip(rng.normal(0.0, sd, 3), -limit, limit)
    return nodes


def _vessel_table() -> tuple[tuple[str, tuple[str, ...], float, Material], ...]:
    """(label, node names, radius mm, material) in painting order: later entries win."""
    return (
        ("gda", ("H", "GDA1", "GDA2"), 1.7, Material.ARTERY),
        ("pha", ("H", "PHA1", "PHA2"), 2.3, Material.ARTERY),
        ("cha", ("B", "CHA1", "H"), 2.9, Material.ARTERY),
        ("splenic_artery", ("B", "SA1", "SA2", "SA3"), 2.6, Material.ARTERY),
        ("celiac_trunk", ("CA0", "B"), 3.8, Material.ARTERY),
        ("sma", ("SMA0", "SMA1", "SMA2", "SMA3"), 3.6, Material.ARTERY),
        ("smv", ("SMV0", "SMV1", "C"), 5.0, Material.SMV),
        ("splenic_vein", ("SV3", "SV2", "SV1", "C"), 4.0, Material.PORTAL),
        ("portal_vein", ("C", "PV1", "PV2", "PV3"), 6.5, Material.PORTAL),
        ("ivc", ("IVC_top", "IVC_bot"), 11.0, Material.IVC),
        ("aorta", ("AO_top", "AO_bot"), 11.0, Material.ARTERY),
    )


def _cuff_windows() -> dict[str, tuple[tuple[int, float, float], ...]]:
    """Where cuffs may sit on the key vessels: (segment, t_min, t_max) in local mm."""
    return {
        "sma": ((1, 6.0, 27.0), (2, 2.0, 30.0)),
        "celiac_trunk": ((0, 15.0, 26.0),),
        "cha": ((0, 7.0, 21.0), (1, 3.0, 16.0)),
        "smv": ((1, 3.0, 19.0), (0, 40.0, 70.0)),
        "portal_vein": ((0, 9.0, 21.0),),
    }


#: Course of a replaced right hepatic artery in the local frame: from the proximal SMA to
#: the right, behind the portal-mesenteric confluence and the portal vein, up to the hilum.
_REPLACED_RHA_LOCAL = ((14.0, -14.0, -6.0), (-4.0, -13.0, -9.0), (-25.0, -17.0, 10.0),
                       (-45.0, -16.0, 35.0), (-62.0, -22.0, 56.0))  # fmt: skip
#: Key of the variant in :attr:`Anatomy.vessels`: it has no label of its own among the 16,
#: so it is painted as artery with the background label.
REPLACED_RHA_KEY = "replaced_rha"


def _vessels(
    nodes: dict[str, FloatArray],
    placement: Placement,
    rng: np.random.Generator,
    body: Body | None = None,
) -> dict[str, Vessel]:
    vessels: dict[str, Vessel] = {}
    for label, names, radius, material in _vessel_table():
        points = placement.point(np.stack([nodes[n] for n in names]))
        size = radius * placement.scale * float(rng.uniform(0.92, 1.08))
        if body is not None:
            size *= body.calibre * float(rng.uniform(0.9, 1.1))
        vessels[label] = Vessel(label, points, size, material)
    if body is not None and body.variant == REPLACED_RHA:
        local = np.asarray(_REPLACED_RHA_LOCAL) + np.clip(rng.normal(0, 1.5, (5, 3)), -3, 3)
        local[0] = nodes["SMA1"]
        radius = 2.2 * placement.scale * body.calibre
        points = placement.point(local)
        vessels = {REPLACED_RHA_KEY: Vessel("background", points, radius, Material.ARTERY),
                   **vessels}  # fmt: skip
    return vessels


def _placement(
    rng: np.random.Generator, fov_center: FloatArray, body: Body | None = None
) -> Placement:
    if body is not None:
        rot = rotation(rng.uniform([-8.0, -5.0, -12.0], [8.0, 5.0, 12.0]))
        shift = rng.uniform([-20.0, -12.0, -40.0], [20.0, 12.0, 40.0])
        return _placed(fov_center, rot, body.scale, shift)
    rot = rotation(rng.uniform([-4.0, -3.0, -6.0], [4.0, 3.0, 6.0]))
    scale = float(rng.uniform(0.92, 1.08))
    shift = rng.uniform([-12.0, -8.0, -35.0], [12.0, 8.0, 35.0])
    return _placed(fov_center, rot, scale, shift)


def _placed(fov_center: FloatArray, rot: FloatArray, scale: float, shift: FloatArray) -> Placement:
    body_center_local = np.array([0.0, 8.0, -5.0])
    translation = fov_center + shift - rot @ (scale * body_center_local)
    return Placement(rot, scale, translation)


def build_anatomy(
    rng: np.random.Generator, fov_center: FloatArray, bmi: float, body: Body | None = None
) -> Anatomy:
    """Draw one patient's anatomy.

    Parameters
    ----------
    rng
        The patient's anatomy random stream.
    fov_center
        World LPS centre of the scanned field of view.
    bmi
        Body-mass index; sets the body size and the subcutaneous fat thickness.
    body
        Wide-variation body (habitus, scales, jitter, calibre, variant); ``None`` for the
        standard anatomy (whose draws it leaves untouched).
    """
    placement = _placement(rng, fov_center, body)
    jitter = body.node_jitter_mm if body is not None else None
    nodes = _jittered_nodes(rng) if jitter is None else _jittered_nodes(rng, jitter, 2.2 * jitter)
    vessels = _vessels(nodes, placement, rng, body)
    pancreas, axis = _pancreas(nodes, placement, rng, body)
    windows = {
        label: tuple((seg, lo * placement.scale, hi * placement.scale) for seg, lo, hi in spans)
        for label, spans in _cuff_windows().items()
    }
    background, organs = _background(placement, rng, bmi, body)
    return Anatomy(
        placement=placement,
        background=background,
        pancreas=pancreas,
        pancreas_axis=axis,
        vessels=vessels,
        bile_duct_points=placement.point(np.stack([nodes[f"CBD{i}"] for i in range(5)])),
        cuff_windows=windows,
        organs=organs,
    )


def _ellipsoid(placement: Placement, center: tuple[float, ...], semi: tuple[float, ...],
               angles: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Ellipsoid:  # fmt: skip
    return Ellipsoid(
        placement.point(as_point(center)),
        placement.axes(rotation(angles)),
        np.asarray(semi, dtype=np.float64) * placement.scale,
    )


def _cylinder(placement: Placement, center: tuple[float, ...], semi: tuple[float, float],
              half_height: float) -> EllipticCylinder:  # fmt: skip
    s = placement.scale
    return EllipticCylinder(
        placement.point(as_point(center)),
        placement.axes(np.eye(3)),
        (semi[0] * s, semi[1] * s),
        half_height * s,
    )


def _pancreas(
    nodes: dict[str, FloatArray],
    placement: Placement,
    rng: np.random.Generator,
    body: Body | None = None,
) -> tuple[tuple[Shape, ...], FloatArray]:
    grow = float(rng.uniform(0.9, 1.12))
    if body is not None:
        grow *= body.pancreas_scale
    head_center = nodes["P0"] + np.array([-11.0, 4.0, -8.0])
    head = _ellipsoid(placement, tuple(head_center), (14 * grow, 12 * grow, 20 * grow), (0, 0, 15))
    uncinate = _ellipsoid(placement, (-10, -19, -28), (8 * grow, 5 * grow, 8 * grow))
    axis_local = np.stack([nodes[f"P{i}"] for i in range(6)])
    radii = np.array([10.0, 8.0, 9.0, 8.5, 7.5, 6.0]) * grow * placement.scale
    axis = placement.point(axis_local)
    return (head, uncinate, *tube(axis, radii)), axis


def _body_layers(
    placement: Placement, rng: np.random.Generator, bmi: float, body: Body | None = None
) -> list[tuple[Shape, Material]]:
    a = float(np.clip(60.0 + 2.6 * bmi + rng.normal(0, 4), 105.0, 138.0))
    b = float(np.clip(a * rng.uniform(0.78, 0.88), 95.0, 118.0))
    fat = float(np.clip(4.0 + 1.1 * (bmi - 18.0) + rng.normal(0, 3), 5.0, 38.0))
    if body is not None:
        # The organs keep inside the muscle wall: habitus never shrinks the cavity below them.
        a, b = max(a * body.habitus, 105.0), max(b * body.habitus, 95.0)
        fat = float(np.clip(fat * body.fat, 3.0, min(50.0, b - 80.0)))
    wall = float(rng.uniform(7.0, 11.0))
    center = (0.0, 8.0, 0.0)
    layers: list[tuple[Shape, Material]] = [
        (_cylinder(placement, center, (a, b), 400.0), Material.FAT_SUBCUTANEOUS),
        (_cylinder(placement, center, (a - fat, b - fat), 400.0), Material.MUSCLE),
        (
            _cylinder(placement, center, (a - fat - wall, b - fat - wall), 400.0),
            Material.FAT_VISCERAL,
        ),
    ]
    for side in (-1.0, 1.0):
        layers.append((_cylinder(placement, (33 * side, 86, 0), (21, 16), 400.0), Material.MUSCLE))
        layers.append((_ellipsoid(placement, (42 * side, 44, -80), (13, 14, 95)), Material.MUSCLE))
    return layers


def _spine(placement: Placement, rng: np.random.Generator) -> list[tuple[Shape, Material]]:
    parts: list[tuple[Shape, Material]] = []
    phase = float(rng.uniform(-17.0, 17.0))
    for level in range(-7, 8):
        z = phase + 35.0 * level
        parts.append((_cylinder(placement, (0, 40, z + 17.5), (19, 15), 4.5), Material.DISC))
        parts.append((_cylinder(placement, (0, 40, z), (21, 17), 13.0), Material.BONE_CORTICAL))
        parts.append((_cylinder(placement, (0, 40, z), (19, 15), 11.5), Material.BONE_CANCELLOUS))
        parts.append((_cylinder(placement, (0, 70, z + 3), (16, 13), 10.0), Material.BONE_CORTICAL))
        parts.append((_cylinder(placement, (0, 93, z + 3), (4, 12), 9.0), Material.BONE_CORTICAL))
        for side in (-1.0, 1.0):
            parts.append(
                (_cylinder(placement, (28 * side, 64, z + 3), (14, 4), 5.0), Material.BONE_CORTICAL)
            )
    parts.append((_cylinder(placement, (0, 68, 0), (9, 8), 400.0), Material.CSF))
    return parts


def _hollow(
    placement: Placement,
    walls: tuple[Shape, ...],
    lumens: tuple[Shape, ...],
    gas_level_y: float | None,
    prone: bool = False,
) -> list[tuple[Shape, Material]]:
    """A bowel-like organ: wall, fluid lumen and gas above a level (anterior when supine).

    All walls go down before any lumen so that segment joints do not leave wall inside the lumen.
    """
    parts: list[tuple[Shape, Material]] = [(w, Material.BOWEL_WALL) for w in walls]
    parts.extend((lumen, Material.FLUID) for lumen in lumens)
    if gas_level_y is not None:
        plane_point = placement.point(np.array([0.0, gas_level_y, 0.0]))
        posterior = placement.axes(np.eye(3))[:, 1]
        gas = HalfSpace(plane_point, -posterior if prone else posterior)
        parts.extend((Intersection((lumen, gas)), Material.GAS) for lumen in lumens)
    return parts


def _bowel(
    placement: Placement, rng: np.random.Generator, prone: bool = False
) -> tuple[list[tuple[Shape, Material]], dict[str, tuple[Shape, ...]]]:
    """Colon, small bowel, duodenum and stomach; also the duodenum's and stomach's walls."""
    parts: list[tuple[Shape, Material]] = []
    named: dict[str, tuple[Shape, ...]] = {}
    colon = [
        (np.array([[-95, -10, -130], [-95, -25, -15], [-88, -48, -8]]), 22.0),
        (
            np.array(
                [[-88, -48, -8], [-40, -76, -25], [20, -78, -20], [75, -58, 5], [95, -20, 10]]
            ),
            21.0,
        ),
        (np.array([[95, -20, 10], [100, 5, -20], [100, 5, -130]]), 17.0),
    ]
    small = []
    for _ in range(9):
        start = rng.uniform([-70, -85, -130], [60, -50, -45])
        end = start + rng.normal(0, 25, 3) * np.array([1.0, 0.3, 1.0])
        small.append((np.stack([start, end]), float(rng.uniform(10.0, 13.0))))
    duodenum = np.array(
        [[-15, -60, 12], [-45, -50, 8], [-52, -40, -15], [-48, -35, -45],
         [-25, -25, -62], [5, -12, -70], [30, -25, -60], [35, -35, -35]]
    )  # fmt: skip
    for points, radius in [*colon, *small, (duodenum, 9.0)]:
        world = placement.point(points.astype(np.float64))
        r = radius * placement.scale
        level = float(points[:, 1].mean()) - rng.uniform(0.0, 0.6) * radius
        if prone:  # the same depth of gas, on the other (now upper) side of the lumen
            level = 2.0 * float(points[:, 1].mean()) - level
        gas_level = level if radius > 15 else None
        walls, lumens = tube(world, r), tube(world, r - 2.5)
        if points is duodenum:
            named["duodenum"] = walls
        parts.extend(_hollow(placement, walls, lumens, gas_level, prone))
    stomach = _ellipsoid(placement, (40, -68, 55), (48, 32, 42), (0, 0, -20))
    lumen = _ellipsoid(placement, (40, -68, 55), (44, 28, 38), (0, 0, -20))
    level = float(rng.uniform(-85.0, -72.0))
    level = 2.0 * -68.0 - level if prone else level
    parts.extend(_hollow(placement, (stomach,), (lumen,), level, prone))
    named["stomach"] = (stomach,)
    return parts, named


def _background(
    placement: Placement, rng: np.random.Generator, bmi: float, body: Body | None = None
) -> tuple[tuple[tuple[Shape, Material], ...], Mapping[str, tuple[Shape, ...]]]:
    layers = _body_layers(placement, rng, bmi, body)
    cavity = layers[2][0]
    grow = float(rng.uniform(0.9, 1.1))
    if body is not None:
        grow *= body.organ_scale

    def inside(shape: Shape) -> Shape:
        return Intersection((shape, cavity))

    organs: list[tuple[Shape, Material]] = [
        (
            inside(_ellipsoid(placement, (-85, -10, 85), (90 * grow, 95, 80 * grow), (0, 10, 0))),
            Material.LIVER,
        ),
        (inside(_ellipsoid(placement, (-65, -60, 20), (13, 14, 30), (20, 0, 10))), Material.BILE),
        (
            inside(_ellipsoid(placement, (100, 40, 45), (22, 50 * grow, 55), (0, 0, -35))),
            Material.SPLEEN,
        ),
        (_ellipsoid(placement, (72, 48, -10), (22, 18, 55), (0, -10, 15)), Material.KIDNEY),
        (_ellipsoid(placement, (-70, 52, -25), (22, 18, 55), (0, 10, -15)), Material.KIDNEY),
    ]
    prone = body is not None and body.prone
    painted, named = _bowel(placement, rng, prone)
    bowel = [(inside(shape), material) for shape, material in painted]
    walls = {name: tuple(inside(shape) for shape in shapes) for name, shapes in named.items()}
    return (*layers, *bowel, *organs, *_spine(placement, rng)), MappingProxyType(walls)
