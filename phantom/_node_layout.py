"""Place, paint and shade a patient's planned lymph nodes (:mod:`phantom._lymph_nodes`).

Every node lies along its station's attention structure (:data:`STATION_SITES`), in visceral
fat only (never in an organ, vessel, bowel or another node, with a clearance of
:data:`CLEARANCE_MM`), wholly inside the field of view, and with its centre voxel at a signed
distance from that structure within the structure's Table II range ``[d_min, d_max]``
(:data:`~pancreas_contracts.lymph_nodes.ATTENTION_STRUCTURES`), measured exactly as a reader of
``organs.nii.gz`` does: the Euclidean distance from the centre voxel to the nearest voxel of
the structure. The centre is snapped to a voxel centre so that this holds on the grid.

A node is an ellipsoid whose short axis points to its structure and whose long axis runs
across it. Benign and inflammatory nodes carry a fatty hilum (a small eccentric fat
ellipsoid); a metastatic node is heterogeneous or has a necrotic centre. HU (portal-venous-like
soft tissue, below enhancing vessels whatever the phase): benign 40-65, inflammatory 45-70,
small-metastatic 40-65 with mild texture, metastatic 35-60 with strong texture; hilum fat
-90 to -50, necrosis 5-25. In the ``synth`` mode the node tissue gets one random HU per patient
(-30 to 350, label-wise random intensities) with necrosis 40-100 HU below it and the hilum
-200 to -40. All of it comes from the nodes' layout stream, never from the image stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
from scipy import ndimage

from pancreas_contracts.lymph_nodes import NodeTruth, structure_by_name
from phantom._anatomy import Anatomy, Material
from phantom._attention import draw_extra_structures, organ_map, paint_extra_structures
from phantom._geometry import (
    BoolArray,
    Box,
    Ellipsoid,
    Float32Array,
    FloatArray,
    Grid,
    UInt8Array,
)
from phantom._lymph_nodes import NodePlan, NodeSpec

__all__ = [
    "CLEARANCE_MM",
    "STATION_SITES",
    "NodeLayout",
    "StationSite",
    "lymph_node_scene",
    "place_nodes",
]

#: Fat kept between a node and anything else (organ, vessel, bowel, another node).
CLEARANCE_MM: Final = 1.5
# Radius around a station's anchor in which its structure's voxels are candidate bases.
_ANCHOR_RADIUS_MM = 22.0
_ATTEMPTS_PER_STATION = 30
_MAX_ATTEMPTS = 150


@dataclass(frozen=True)
class StationSite:
    """Where a station lies: along ``structure``, near ``anchor``, on the ``side`` given.

    ``anchor`` and ``side`` are in the anatomy's local frame (``+x`` left, ``+y`` posterior,
    ``+z`` superior); ``side`` ``None``: any side.
    """

    structure: str
    anchor: tuple[float, float, float]
    side: tuple[float, float, float] | None = None


#: Each JPS station's structure (a name of ``ATTENTION_STRUCTURES``), anchor and side.
STATION_SITES: Final[Mapping[str, StationSite]] = MappingProxyType({
    "5": StationSite("stomach", (0.0, -58.0, 20.0)),
    "6": StationSite("duodenum", (-25.0, -58.0, 0.0), (0.0, 0.0, -1.0)),
    "7": StationSite("left_gastric", (20.0, -20.0, 45.0)),
    "8a": StationSite("hepatic_artery", (-6.0, -38.0, 25.0), (0.0, -1.0, 0.3)),
    "8p": StationSite("hepatic_artery", (-6.0, -38.0, 25.0), (0.0, 1.0, 0.0)),
    "9": StationSite("celiac_splenic", (14.0, -8.0, 15.0)),
    "10": StationSite("spleen", (85.0, 8.0, 30.0), (-1.0, -0.5, 0.0)),
    "11p": StationSite("celiac_splenic", (35.0, -22.0, 20.0)),
    "11d": StationSite("celiac_splenic", (70.0, -2.0, 27.0)),
    "12a": StationSite("hepatic_artery", (-40.0, -42.0, 42.0)),
    "12b": StationSite("pancreas", (-40.0, -32.0, 8.0), (0.0, 0.0, 1.0)),
    "12p": StationSite("hepatic_artery", (-38.0, -30.0, 35.0), (-1.0, 0.3, 0.0)),
    "13a": StationSite("pancreas", (-30.0, -25.0, -8.0), (0.0, 1.0, 0.0)),
    "13b": StationSite("pancreas", (-30.0, -25.0, -30.0), (0.0, 1.0, 0.0)),
    "14p": StationSite("sma", (14.0, -14.0, -8.0)),
    "14d": StationSite("sma", (11.0, -22.0, -40.0)),
    "16a2": StationSite("aorta", (14.0, 6.0, 0.0), (1.0, -0.5, 0.0)),
    "16b1": StationSite("aorta", (14.0, 6.0, -45.0), (1.0, -0.5, 0.0)),
    "17a": StationSite("pancreas", (-32.0, -52.0, -8.0), (0.0, -1.0, 0.0)),
    "17b": StationSite("pancreas", (-32.0, -52.0, -30.0), (0.0, -1.0, 0.0)),
    "18": StationSite("pancreas", (45.0, -31.0, 0.0), (0.0, 0.0, -1.0)),
})  # fmt: skip


@dataclass(frozen=True, eq=False)
class _Shading:
    """One node's HU: ``values`` over its box, written where ``mask`` holds."""

    index: tuple[slice, slice, slice]
    mask: BoolArray
    values: Float32Array


@dataclass(frozen=True, eq=False)
class NodeLayout:
    """A patient's placed nodes.

    Attributes
    ----------
    nodes
        The truth of every node, ids 1..K in placement order.
    mask
        Instance map (uint8; 0 background, k the node with ``node_id`` k).
    shading
        HU of the node voxels, written into the image by :meth:`shade`.
    """

    nodes: tuple[NodeTruth, ...]
    mask: UInt8Array
    shading: tuple[_Shading, ...]

    def shade(self, hu: Float32Array) -> None:
        """Write the nodes' HU into ``hu`` (after the tissue lookup, before blur and noise)."""
        for part in self.shading:
            hu[part.index][part.mask] = part.values[part.mask]


@dataclass(frozen=True)
class _Candidate:
    center: FloatArray
    voxel: tuple[int, int, int]
    axes: FloatArray
    semi: FloatArray


class _Placer:
    """The state of one patient's node placement (grid, maps, caches)."""

    def __init__(self, grid: Grid, materials: UInt8Array, organs: UInt8Array,
                 anatomy: Anatomy, rng: np.random.Generator) -> None:  # fmt: skip
        self.grid, self.materials, self.organs = grid, materials, organs
        self.anatomy, self.rng = anatomy, rng
        self.mask = np.zeros(grid.shape, dtype=np.uint8)
        self.spacing = np.asarray(grid.spacing, dtype=np.float64)
        self.origin = np.asarray(grid.origin, dtype=np.float64)
        self._bases: dict[str, tuple[FloatArray, FloatArray] | None] = {}

    def bases(self, station: str) -> tuple[FloatArray, FloatArray] | None:
        """World positions of the station structure's voxels near its anchor, and their mean."""
        if station not in self._bases:
            site = STATION_SITES[station]
            anchor = self.anatomy.local(np.asarray(site.anchor, dtype=np.float64))
            box = self.grid.box(anchor - _ANCHOR_RADIUS_MM, anchor + _ANCHOR_RADIUS_MM)
            found = None
            if box is not None:
                value = structure_by_name(site.structure).value
                hit = np.argwhere(self.organs[box.index] == value)
                if len(hit):
                    start = np.array([s.start for s in box.index])
                    kji = hit + start
                    world = self.origin + kji[:, ::-1] * self.spacing
                    near = np.linalg.norm(world - anchor, axis=1) <= _ANCHOR_RADIUS_MM
                    if near.any():
                        found = (world[near], world[near].mean(axis=0))
            self._bases[station] = found
        return self._bases[station]

    def candidate(self, station: str, spec: NodeSpec) -> _Candidate | None:
        """A node position and orientation at ``station`` (unchecked), or ``None``."""
        bases = self.bases(station)
        if bases is None:
            return None
        points, mean = bases
        rng = self.rng
        base = points[int(rng.integers(len(points)))]
        outward = base - mean
        outward /= max(float(np.linalg.norm(outward)), 1e-6)
        direction = outward + 0.8 * _unit(rng.normal(size=3))
        side = STATION_SITES[station].side
        if side is not None:
            direction += 1.5 * _unit(self.anatomy.placement.axes(np.asarray(side)))
        u = _unit(direction)
        semi = np.array([spec.long_axis_mm, spec.short_axis_mm, spec.short_axis_mm * spec.depth])
        semi /= 2.0
        d_max = structure_by_name(STATION_SITES[station].structure).d_max_mm
        gap = float(rng.uniform(CLEARANCE_MM, max(CLEARANCE_MM, min(d_max - semi[1] - 1.0, 7.0))))
        point = base + u * (semi[1] + gap)
        voxel = np.rint((point - self.origin) / self.spacing).astype(int)
        center = self.origin + voxel * self.spacing
        long_axis = _unit(np.cross(u, rng.normal(size=3)))
        axes = np.stack([long_axis, u, np.cross(long_axis, u)], axis=1)
        return _Candidate(center, (int(voxel[2]), int(voxel[1]), int(voxel[0])), axes, semi)

    def fits(self, candidate: _Candidate) -> Box | None:
        """The node's box if it lies in the grid, in fat only, clear of everything."""
        outer = Ellipsoid(candidate.center, candidate.axes, candidate.semi + CLEARANCE_MM)
        lo, hi = outer.bounds()
        box = self.grid.box(lo, hi)
        inner_lo, inner_hi = Ellipsoid(candidate.center, candidate.axes, candidate.semi).bounds()
        extent = self.origin + self.spacing * (np.asarray(self.grid.shape[::-1]) - 1)
        if box is None or (inner_lo < self.origin).any() or (inner_hi > extent).any():
            return None
        region = outer.mask(box)
        if not np.all(self.materials[box.index][region] == Material.FAT_VISCERAL):
            return None
        if np.any(self.mask[box.index][region]):
            return None
        return box

    def distance(self, candidate: _Candidate, structure: str) -> float:
        """Distance (mm) from the candidate's centre voxel to the nearest structure voxel."""
        reach = structure_by_name(structure).d_max_mm + 1.0
        box = self.grid.box(candidate.center - reach, candidate.center + reach)
        if box is None:
            return float("inf")
        value = structure_by_name(structure).value
        outside = self.organs[box.index] != value
        if outside.all():
            return float("inf")
        sampling = self.grid.spacing[::-1]
        field = ndimage.distance_transform_edt(outside, sampling=sampling)
        k, j, i = (v - s.start for v, s in zip(candidate.voxel, box.index, strict=True))
        return float(field[k, j, i])


def _unit(vector: FloatArray) -> FloatArray:
    result: FloatArray = vector / max(float(np.linalg.norm(vector)), 1e-9)
    return result


def _volume_ml(voxels: int, grid: Grid) -> float:
    return round(voxels * grid.voxel_volume_ml, 4)


def _place_one(placer: _Placer, spec: NodeSpec) -> tuple[str, _Candidate, Box] | None:
    tries = 0
    for station in spec.stations:
        structure = STATION_SITES[station].structure
        low = structure_by_name(structure).d_min_mm
        high = structure_by_name(structure).d_max_mm
        for _ in range(_ATTEMPTS_PER_STATION):
            tries += 1
            if tries > _MAX_ATTEMPTS:
                return None
            candidate = placer.candidate(station, spec)
            if candidate is None:
                break
            box = placer.fits(candidate)
            if box is None:
                continue
            if low <= placer.distance(candidate, structure) <= high:
                return station, candidate, box
    return None


#: Node tissue HU by kind (CT-like modes), before blur and noise.
_TISSUE_HU: Final[Mapping[str, tuple[float, float]]] = MappingProxyType({
    "benign": (40.0, 65.0),
    "inflammatory": (45.0, 70.0),
    "small-metastatic": (40.0, 65.0),
    "metastatic": (35.0, 60.0),
})  # fmt: skip
#: Texture amplitude (HU) by kind: metastases are heterogeneous, small ones mildly so.
_TEXTURE_HU: Final[Mapping[str, tuple[float, float]]] = MappingProxyType({
    "metastatic": (8.0, 16.0),
    "small-metastatic": (3.0, 7.0),
})  # fmt: skip


def _centre_part(
    spec: NodeSpec, candidate: _Candidate, base: float, synth: bool, rng: np.random.Generator
) -> tuple[Ellipsoid, Material, float] | None:
    """A benign or inflammatory node's fatty hilum, a necrotic metastasis' centre, or none."""
    if spec.kind in ("benign", "inflammatory"):
        # An eccentric fat core on one side of the short axis.
        shift = candidate.axes[:, 1] * candidate.semi[1] * float(rng.uniform(0.2, 0.4))
        shift *= 1.0 if rng.random() < 0.5 else -1.0
        semi = candidate.semi * float(rng.uniform(0.35, 0.5))
        fat = float(rng.uniform(-200.0, -40.0) if synth else rng.uniform(-90.0, -50.0))
        hilum = Ellipsoid(candidate.center + shift, candidate.axes, semi)
        return hilum, Material.NODE_HILUM, fat
    if spec.necrotic:
        semi = candidate.semi * float(rng.uniform(0.4, 0.6))
        fluid = base - float(rng.uniform(40.0, 100.0)) if synth else float(rng.uniform(5.0, 25.0))
        return Ellipsoid(candidate.center, candidate.axes, semi), Material.NODE_NECROSIS, fluid
    return None


def _paint(placer: _Placer, node_id: int, spec: NodeSpec, candidate: _Candidate, box: Box,
           synth_base: float | None) -> _Shading:  # fmt: skip
    """Paint one node's materials and id; return its HU over its box."""
    rng, grid = placer.rng, placer.grid
    inside = Ellipsoid(candidate.center, candidate.axes, candidate.semi).mask(box)
    placer.mask[box.index][inside] = node_id
    materials = placer.materials[box.index]
    materials[inside] = Material.LYMPH_NODE
    base = synth_base if synth_base is not None else float(rng.uniform(*_TISSUE_HU[spec.kind]))
    values = np.full(box.shape, base, dtype=np.float32)
    amplitude = _TEXTURE_HU.get(spec.kind)
    if amplitude is not None and not spec.necrotic:
        sigma = [1.5 / s for s in grid.spacing[::-1]]
        field = ndimage.gaussian_filter(rng.standard_normal(box.shape).astype(np.float32), sigma)
        field *= np.float32(float(rng.uniform(*amplitude)) / max(float(field.std()), 1e-6))
        values += field
    part = _centre_part(spec, candidate, base, synth_base is not None, rng)
    if part is not None:
        shape, material, hu = part
        core = shape.mask(box) & inside
        materials[core] = material
        values[core] = hu
    return _Shading(box.index, inside, values)


def place_nodes(
    grid: Grid,
    materials: UInt8Array,
    organs: UInt8Array,
    anatomy: Anatomy,
    plan: NodePlan,
    rng: np.random.Generator,
    synth: bool = False,
) -> NodeLayout:
    """Place and paint the planned nodes (``materials`` is changed in place).

    Parameters
    ----------
    grid
        The voxel grid.
    materials
        The tissue map, painted (nodes go into visceral fat only).
    organs
        The attention structures' map (:func:`phantom._attention.organ_map`).
    anatomy
        The anatomy (stations' anchors are in its local frame).
    plan
        The planned nodes; one that finds no room at any of its stations is left out.
    rng
        The nodes' layout stream.
    synth
        Label-wise random node HU (the ``synth`` mode).

    Returns
    -------
    NodeLayout
        The placed nodes, their instance map and HU.
    """
    placer = _Placer(grid, materials, organs, anatomy, rng)
    synth_base = float(rng.uniform(-30.0, 350.0)) if synth else None
    truths: list[NodeTruth] = []
    shading: list[_Shading] = []
    for spec in plan.nodes:
        placed = _place_one(placer, spec)
        if placed is None:
            continue
        station, candidate, box = placed
        node_id = len(truths) + 1
        shading.append(_paint(placer, node_id, spec, candidate, box, synth_base))
        voxels = int(np.count_nonzero(placer.mask[box.index] == node_id))
        truths.append(
            NodeTruth(
                node_id=node_id,
                station=station,
                kind=spec.kind,
                metastatic=spec.metastatic,
                centre_lps_mm=(
                    round(float(candidate.center[0]), 4),
                    round(float(candidate.center[1]), 4),
                    round(float(candidate.center[2]), 4),
                ),
                short_axis_mm=spec.short_axis_mm,
                long_axis_mm=spec.long_axis_mm,
                volume_ml=_volume_ml(voxels, grid),
            )
        )
    return NodeLayout(tuple(truths), placer.mask, tuple(shading))


def lymph_node_scene(
    grid: Grid,
    materials: UInt8Array,
    labels: UInt8Array,
    anatomy: Anatomy,
    plan: NodePlan,
    rng: np.random.Generator,
    synth: bool = False,
) -> tuple[UInt8Array, NodeLayout]:
    """Add the oesophagus and left gastric artery, map the ten structures, place the nodes.

    ``materials`` is changed in place (labels never are). Returns the ``organs.nii.gz`` map
    (before the nodes: they lie outside every structure) and the nodes.
    """
    extra = draw_extra_structures(anatomy, rng)
    paint_extra_structures(grid, materials, extra)
    organs = organ_map(grid, materials, labels, anatomy, extra)
    return organs, place_nodes(grid, materials, organs, anatomy, plan, rng, synth)
