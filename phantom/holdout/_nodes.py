"""Lymph nodes of the held-out generator: the two extra structures, the structure map, the plan.

The held-out generator's own node model, written apart from the training generator's so that a
lymph-node model is scored on nodes it has not seen drawn:

* **extra structures**: the abdominal oesophagus (hiatus, in front of the aorta, to the cardia
  on the stomach's upper medial surface) and the left gastric artery (from the celiac trunk up
  to the lesser curvature), tubes along splines in the body frame like every other vessel here,
  both ending at the stomach's surface; they are painted after the organs and before the
  pancreas, so pancreas, tumor and vessels stay as they were;
* **N status**: only a PDAC patient can be N+, with probability
  ``1 / (1 + exp(-(-0.9 + 0.04 * (D - 30 mm) + 0.45 * v)))``, ``D`` the tumor core's drawn
  diameter and ``v`` the number of key vessels the finished tumor touches (0-5);
* **counts**: an N+ patient has a geometric number of positive nodes (``P(k) = 0.35 *
  0.65 ** (k - 1)``, at most 7) and ``1 + Poisson(2.5)`` negative ones; an N0 PDAC patient
  ``2 + Poisson(3.5)``, a tumor-free one ``2 + Poisson(3)``; at most 14 in all;
* **looks** (:class:`NodeDesign`): superquadrics of their own size, squareness, texture (two
  random wave fields), hilum (a fatty cleft entering from one side) and necrosis (an
  off-centre, rippled cavity).

Every draw here comes from the patient's ``nodes`` stream; placement and the extra structures
from its ``node_layout`` stream, so switching nodes off changes no other draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import JPS_STATIONS, NodeKind, structure_by_name
from phantom.holdout._body import Anatomy
from phantom.holdout._raster import Layer, Scene
from phantom.holdout._sdf import FloatArray, Ripple, Shape, Superquadric, Tube

__all__ = [
    "DRAINAGE",
    "STATION_STRUCTURES",
    "ExtraStructures",
    "NodeDesign",
    "draw_extra_structures",
    "n_positive_probability",
    "organ_lookup",
    "plan_nodes",
    "station_sites",
]

#: Stations that drain each tumor site, the most likely first (this generator's own lists).
DRAINAGE: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "head": ("13a", "17a", "13b", "17b", "14p", "12b", "8a", "6"),
        "uncinate": ("13b", "14p", "17b", "14d", "16b1", "13a"),
        "body": ("18", "11p", "9", "8a", "14p", "7"),
        "tail": ("11d", "10", "18", "11p", "9"),
    }
)
_ALL_STATIONS: Final = tuple(s.code for s in JPS_STATIONS)
#: The attention structure each station lies along (its nodes' Table II range).
STATION_STRUCTURES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "5": "stomach",
        "6": "duodenum",
        "7": "left_gastric",
        "8a": "hepatic_artery",
        "8p": "hepatic_artery",
        "9": "celiac_splenic",
        "10": "spleen",
        "11p": "celiac_splenic",
        "11d": "celiac_splenic",
        "12a": "hepatic_artery",
        "12b": "pancreas",
        "12p": "hepatic_artery",
        "13a": "pancreas",
        "13b": "pancreas",
        "14p": "sma",
        "14d": "sma",
        "16a2": "aorta",
        "16b1": "aorta",
        "17a": "pancreas",
        "17b": "pancreas",
        "18": "pancreas",
    }
)
# Logistic N+ model: intercept, per mm of diameter beyond 30 mm, per touched key vessel.
_N_MODEL: Final = (-0.9, 0.04, 0.45)
_MAX_NODES: Final = 14
_MAX_POSITIVE: Final = 7

# Attention-structure values (pancreas_contracts) of the labelled solids.
_LABEL_STRUCTURES: Final = (
    (("pancreas", "tumor", "pancreatic_duct"), "pancreas"),
    (("aorta",), "aorta"),
    (("sma",), "sma"),
    (("celiac_trunk", "splenic_artery"), "celiac_splenic"),
    (("cha", "pha"), "hepatic_artery"),
)
_PART_STRUCTURES: Final = (("spleen", "spleen"), ("stomach", "stomach"), ("duodenum", "duodenum"))


@dataclass(frozen=True)
class _Outside:
    """The part of ``shape`` outside ``other`` (a tube ending on the stomach's surface)."""

    shape: Shape
    other: Shape

    def sdf(self, points: FloatArray) -> FloatArray:
        result: FloatArray = np.maximum(self.shape.sdf(points), -self.other.sdf(points))
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return self.shape.bounds()


@dataclass(frozen=True, eq=False)
class ExtraStructures:
    """The oesophagus and left gastric artery (body frame) and their paint layers."""

    esophagus: Tube
    left_gastric: Tube
    layers: tuple[Layer, Layer]


def _on_stomach(stomach: Superquadric, direction: FloatArray, depth: float) -> FloatArray:
    """The point ``depth`` (1: the surface) of the way from the stomach's centre along
    ``direction`` (the drawn ellipsoid, ripple ignored: ``depth`` < 1 lands inside)."""
    unit = direction / np.linalg.norm(direction)
    local = unit / np.linalg.norm(unit / stomach.semi_axes)
    result: FloatArray = stomach.centre + stomach.rotation @ local * depth
    return result


def draw_extra_structures(anatomy: Anatomy, rng: np.random.Generator) -> ExtraStructures:
    """The oesophagus and the left gastric artery of ``anatomy``.

    Parameters
    ----------
    anatomy
        The patient's anatomy (aorta, celiac trunk, stomach).
    rng
        The patient's ``node_layout`` stream.
    """
    aorta = anatomy.vessels["aorta"]
    top = aorta.points[-1]
    ar = float(aorta.radii.max())
    jitter = rng.uniform(-0.12, 0.12, 3)
    cardia = _on_stomach(anatomy.stomach, np.array([-0.7, 0.5, 0.35]) + jitter, 0.8)
    hiatus = np.array(
        [top[0] + rng.uniform(0.0, 4.0), top[1] - ar - rng.uniform(14.0, 18.0), cardia[2] + 16.0]
    )
    start = np.array([top[0] - rng.uniform(3.0, 7.0), hiatus[1] + 3.0, hiatus[2] + 40.0])
    radius = float(rng.uniform(7.0, 9.5))
    esophagus = Tube.through(np.stack([start, hiatus, cardia]), (radius, radius * 0.9))
    celiac = anatomy.vessels["celiac_trunk"]
    origin = celiac.points[celiac.index_at(float(rng.uniform(0.45, 0.7)))]
    curvature = _on_stomach(
        anatomy.stomach, np.array([-0.75, 0.45, 0.2]) + rng.uniform(-0.1, 0.1, 3), 0.9
    )
    rise = origin + np.array([rng.uniform(2.0, 6.0), -rng.uniform(2.0, 6.0), 14.0])
    lga = Tube.through(np.stack([origin, rise, curvature]), (float(rng.uniform(1.6, 2.2)), 1.4))
    layers = (
        Layer(_Outside(esophagus, anatomy.stomach), "bowel_wall"),
        Layer(_Outside(lga, anatomy.stomach), "artery"),
    )
    return ExtraStructures(esophagus, lga, layers)


def organ_lookup(scene: Scene, anatomy: Anatomy, extra: ExtraStructures) -> npt.NDArray[np.uint8]:
    """Owner value (1 + layer index) -> attention-structure value (0: none of the ten).

    A structure is what its solids own after painting (the later solid wins), as in the CT.
    """
    lut = np.zeros(256, dtype=np.uint8)
    for part, name in _PART_STRUCTURES:
        for index in anatomy.parts[part]:
            lut[index + 1] = structure_by_name(name).value
    for index, layer in enumerate(scene.layers, start=1):
        if layer is extra.layers[0]:
            lut[index] = structure_by_name("esophagus").value
        elif layer is extra.layers[1]:
            lut[index] = structure_by_name("left_gastric").value
        for labels, name in _LABEL_STRUCTURES:
            if layer.label and layer.label in {label_by_name(n).value for n in labels}:
                lut[index] = structure_by_name(name).value
    return lut


def _near(tube: Tube, fraction: float, shift: tuple[float, float, float]) -> FloatArray:
    result: FloatArray = tube.points[tube.index_at(fraction)] + np.asarray(shift)
    return result


def station_sites(anatomy: Anatomy, extra: ExtraStructures) -> dict[str, tuple[str, FloatArray]]:
    """Station -> (attention structure, body-frame point the station's nodes are sought near)."""
    v = anatomy.vessels
    head = anatomy.sites["head"]
    duo = anatomy.duodenum.points[0]
    aorta = v["aorta"]
    ar = float(aorta.radii.max())
    z_celiac = float(v["celiac_trunk"].points[0, 2])
    z_sma = float(v["sma"].points[0, 2])
    low = int(np.argmin(np.abs(aorta.points[:, 2] - (z_sma - 30.0))))
    high = int(np.argmin(np.abs(aorta.points[:, 2] - (z_celiac - 6.0))))
    h = np.asarray(head)
    points = {
        "5": duo + np.array([6.0, -6.0, 10.0]),
        "6": duo + np.array([0.0, -4.0, -14.0]),
        "7": _near(extra.left_gastric, 0.5, (-4.0, 0.0, 0.0)),
        "8a": _near(v["cha"], 0.5, (0.0, -9.0, 3.0)),
        "8p": _near(v["cha"], 0.5, (0.0, 9.0, 0.0)),
        "9": _near(v["celiac_trunk"], 0.5, (-8.0, 0.0, 0.0)),
        "10": _near(v["splenic_artery"], 1.0, (-6.0, 0.0, -4.0)),
        "11p": _near(v["splenic_artery"], 0.25, (0.0, 0.0, 8.0)),
        "11d": _near(v["splenic_artery"], 0.7, (0.0, 0.0, 8.0)),
        "12a": _near(v["pha"], 0.5, (-6.0, 0.0, 0.0)),
        "12b": anatomy.bile_duct[1] + np.array([-8.0, 0.0, 0.0]),
        "12p": _near(v["portal_vein"], 0.5, (0.0, 8.0, 0.0)),
        "13a": h + np.array([0.0, 14.0, 8.0]),
        "13b": h + np.array([0.0, 14.0, -12.0]),
        "14p": _near(v["sma"], 0.15, (-8.0, 0.0, 0.0)),
        "14d": _near(v["sma"], 0.35, (-8.0, 0.0, 0.0)),
        "16a2": aorta.points[high] + np.array([-(ar + 8.0), 0.0, 0.0]),
        "16b1": aorta.points[low] + np.array([ar + 8.0, 0.0, 0.0]),
        "17a": h + np.array([0.0, -16.0, 8.0]),
        "17b": h + np.array([0.0, -16.0, -12.0]),
        "18": _near(anatomy.pancreas_axis, 0.62, (0.0, 0.0, -14.0)),
    }
    return {code: (STATION_STRUCTURES[code], point) for code, point in points.items()}


@dataclass(frozen=True, eq=False)
class NodeDesign:
    """One planned node: what it is, where it may go and how it looks (body-frame mm, HU).

    Parameters
    ----------
    kind
        Its :data:`~pancreas_contracts.lymph_nodes.NodeKind`.
    stations
        Stations to try, in order.
    semi_axes
        Long, middle and short semi-axis (mm); the short one points to the structure.
    power
        Superquadric exponent (2: an ellipsoid; above 2: squarer).
    margin
        Surface ripple (irregular margin) or ``None``.
    hu, textures
        Tissue HU before noise and the wave fields added to it.
    hilum
        ``(size as a fraction of the node's axes, HU)`` of the fatty cleft, or ``None``.
    necrosis
        ``(size fraction, HU)`` of the necrotic cavity, or ``None``.
    """

    kind: NodeKind
    stations: tuple[str, ...]
    semi_axes: tuple[float, float, float]
    power: float
    margin: Ripple | None
    hu: float
    textures: tuple[Ripple, ...]
    hilum: tuple[float, float] | None
    necrosis: tuple[float, float] | None

    @property
    def metastatic(self) -> bool:
        """A positive node."""
        return self.kind in ("metastatic", "small-metastatic")


def n_positive_probability(diameter_mm: float, touched_vessels: int) -> float:
    """P(N+) of a PDAC patient (see the module docstring)."""
    a, per_mm, per_vessel = _N_MODEL
    x = a + per_mm * (diameter_mm - 30.0) + per_vessel * touched_vessels
    return 1.0 / (1.0 + math.exp(-x))


def _axes(rng: np.random.Generator, short: float, ratio: float) -> tuple[float, float, float]:
    long = short * ratio
    middle = short + rng.uniform(0.2, 0.6) * (long - short)
    return long / 2.0, float(middle) / 2.0, short / 2.0


def _design(rng: np.random.Generator, kind: NodeKind, stations: tuple[str, ...]) -> NodeDesign:
    """A node of ``kind``: sizes, shape and HU from this generator's own ranges."""
    fine = Ripple.draw(rng, 1.0, (2.5, 5.0))
    coarse = Ripple.draw(rng, 1.0, (6.0, 12.0))
    hilum: tuple[float, float] | None = None
    necrosis: tuple[float, float] | None = None
    margin: Ripple | None = None
    if kind == "benign":
        short = float(np.clip(rng.lognormal(math.log(5.0), 0.22), 3.5, 8.0))
        axes = _axes(rng, short, float(rng.uniform(1.6, 2.8)))
        hu, tex, power = rng.uniform(48.0, 72.0), rng.uniform(2.0, 4.0), 2.0
        hilum = (0.5, float(rng.uniform(-90.0, -55.0)))
    elif kind == "inflammatory":
        axes = _axes(rng, float(rng.uniform(10.0, 14.5)), float(rng.uniform(1.3, 1.8)))
        hu, tex, power = rng.uniform(55.0, 80.0), rng.uniform(3.0, 5.0), rng.uniform(2.0, 2.3)
        hilum = (0.35, float(rng.uniform(-80.0, -45.0)))
    elif kind == "small-metastatic":
        axes = _axes(rng, float(rng.uniform(5.5, 9.8)), float(rng.uniform(1.0, 1.3)))
        hu, tex, power = rng.uniform(38.0, 60.0), rng.uniform(5.0, 9.0), rng.uniform(2.2, 2.8)
    else:
        short = float(np.clip(10.5 + rng.gamma(2.0, 2.5), 10.5, 22.0))
        axes = _axes(rng, short, float(rng.uniform(1.0, 1.25)))
        hu, tex, power = rng.uniform(30.0, 55.0), rng.uniform(10.0, 18.0), rng.uniform(2.0, 2.6)
        margin = Ripple.draw(rng, float(rng.uniform(0.3, 0.8)), (6.0, 14.0))
        cavity = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(8.0, 28.0)))
        necrosis = cavity if rng.random() < 0.45 else None
    # One field of each scale, scaled to the node's texture amplitude (HU).
    textures = tuple(
        Ripple(w.directions, w.wavelengths, w.phases, w.amplitudes * float(tex) * share)
        for w, share in ((fine, 0.6), (coarse, 0.4))
    )
    return NodeDesign(kind, stations, axes, float(power), margin, float(hu), textures, hilum,
                      necrosis)  # fmt: skip


def _preference(rng: np.random.Generator, codes: tuple[str, ...], decay: float) -> tuple[str, ...]:
    """``codes`` with one drawn first (each ``decay`` times as likely as the one before it),
    the rest shuffled after it."""
    weights = decay ** np.arange(len(codes))
    first = int(rng.choice(len(codes), p=weights / weights.sum()))
    rest = [codes[i] for i in rng.permutation(len(codes)) if i != first]
    return (codes[first], *rest)


def plan_nodes(
    rng: np.random.Generator, site: str | None, diameter_mm: float, touched_vessels: int
) -> tuple[NodeDesign, ...]:
    """The nodes of one patient, positive ones first.

    Parameters
    ----------
    rng
        The patient's ``nodes`` stream.
    site
        The tumor's site, ``None`` for a tumor-free patient (always N0).
    diameter_mm, touched_vessels
        The tumor core's drawn diameter and how many key vessels it touches.
    """
    positive = 0
    if site is not None:
        p = n_positive_probability(diameter_mm, touched_vessels)
        if rng.random() < p:
            positive = min(int(rng.geometric(0.35)), _MAX_POSITIVE)
    if positive:
        negative = 1 + int(rng.poisson(2.5))
    else:
        negative = 2 + int(rng.poisson(3.5 if site is not None else 3.0))
    negative = min(negative, _MAX_NODES - positive)
    designs: list[NodeDesign] = []
    for _ in range(positive):
        kind: NodeKind = "small-metastatic" if rng.random() < 0.4 else "metastatic"
        assert site is not None
        designs.append(_design(rng, kind, _preference(rng, DRAINAGE[site], 0.75)))
    inflamed = 0.2 if site is not None else 0.1
    for _ in range(negative):
        kind = "inflammatory" if rng.random() < inflamed else "benign"
        designs.append(_design(rng, kind, _preference(rng, _ALL_STATIONS, 1.0)))
    return tuple(designs)
