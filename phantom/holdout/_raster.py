"""Rendering of the held-out generator: supersampled partial volume, HU tables, CT-like noise.

Solids are painted in order (later wins) on a regular LPS grid. A voxel whose centre lies
further than half its diagonal from a solid's surface is wholly in or out; the others are
sampled at 2 x 2 x 3 (in-plane x in-plane x slice) points, and the fraction inside mixes the
solid's HU over what lies below (partial volume). A labelled solid takes the voxels it fills at
least half. Noise is white noise shaped in the Fourier domain by a ramp times a Gaussian, the
noise power spectrum of filtered back-projection, per slice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from pancreas_contracts.labels import label_by_name
from phantom.holdout._body import Anatomy
from phantom.holdout._lesion import TumorDesign
from phantom.holdout._sdf import FloatArray, Shape, Superquadric, Tube

__all__ = [
    "Frame",
    "Layer",
    "PaintedScan",
    "RenderedScan",
    "ScanGrid",
    "Scene",
    "draw_hu",
    "finish",
    "paint",
    "render",
]

_CHUNK_SLICES = 6
# Vessels after the tumor (a vessel stays a vessel inside an encasing tumor); veins first,
# arteries last (an artery crossing a vein stays visible).
_VESSEL_ORDER = (
    "ivc", "aorta", "smv", "portal_vein", "splenic_vein",
    "sma", "celiac_trunk", "cha", "pha", "gda", "splenic_artery",
)  # fmt: skip
_VESSEL_TISSUE = {
    "ivc": "ivc", "aorta": "artery", "smv": "portal", "portal_vein": "portal",
    "splenic_vein": "portal", "sma": "artery", "celiac_trunk": "artery", "cha": "artery",
    "pha": "artery", "gda": "artery", "splenic_artery": "artery",
}  # fmt: skip


@dataclass(frozen=True)
class Layer:
    """A solid painted with one tissue's HU and, when ``label`` > 0, that label."""

    shape: Shape
    tissue: str
    label: int = 0


@dataclass(frozen=True)
class Frame:
    """Placement of the body frame in the scanner: ``world = rotation @ body + offset``."""

    rotation: FloatArray
    offset: FloatArray

    def to_body(self, world: FloatArray) -> FloatArray:
        """Body-frame coordinates of world (LPS) points."""
        result: FloatArray = (world - self.offset) @ self.rotation
        return result

    def to_world(self, body: FloatArray) -> FloatArray:
        """World coordinates of body-frame points."""
        result: FloatArray = body @ self.rotation.T + self.offset
        return result


@dataclass(frozen=True)
class ScanGrid:
    """Voxel centres ``origin + (c, r, k) * spacing`` in LPS mm, array order ``[k, r, c]``."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if min(self.spacing) <= 0.0 or min(self.shape) < 1:
            raise ValueError("grid needs positive spacing and at least one voxel per axis")

    def axis(self, i: int) -> FloatArray:
        """World coordinates along x (0), y (1) or z (2)."""
        count = self.shape[2 - i]
        return np.asarray(self.origin[i] + np.arange(count) * self.spacing[i], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything painted, in order, plus the tumor (``None`` for a tumor-free patient)."""

    layers: tuple[Layer, ...]
    tumor: TumorDesign | None

    def label_at(self, points: FloatArray) -> npt.NDArray[np.uint8]:
        """The final label at body-frame points (the last labelled solid holding each)."""
        out = np.zeros(len(points), dtype=np.uint8)
        for layer in self.layers:
            if layer.label == 0:
                continue
            lo, hi = layer.shape.bounds()
            box = np.all((points >= lo) & (points <= hi), axis=1)
            if not box.any():
                continue
            inside = layer.shape.sdf(points[box]) < 0.0
            idx = np.flatnonzero(box)[inside]
            out[idx] = layer.label
        return out


def build_scene(
    anatomy: Anatomy,
    tumor: TumorDesign | None,
    duct_mm: float,
    bile_mm: float,
    extra: Sequence[Layer] = (),
) -> Scene:
    """The paint order: tissues, ``extra`` (unlabelled), pancreas, ducts, tumor, vessels.

    ``extra`` holds the structures only the lymph-node truth needs (the oesophagus and the
    left gastric artery); pancreas, tumor and vessels are painted over them.
    """
    axis = anatomy.pancreas_axis
    start = axis.index_at(0.1)
    stop = axis.index_at(0.95)
    duct = Tube(axis.points[start:stop], np.full(stop - start, duct_mm))
    bile = Tube.through(anatomy.bile_duct, (bile_mm, bile_mm * 0.8))
    layers = [Layer(shape, tissue) for shape, tissue in anatomy.tissues]
    layers += list(extra)
    layers += [
        Layer(anatomy.pancreas, "pancreas", label_by_name("pancreas").value),
        Layer(duct, "duct", label_by_name("pancreatic_duct").value),
        Layer(bile, "bile", label_by_name("bile_duct").value),
    ]
    if tumor is not None:
        layers.append(Layer(tumor, "tumor", label_by_name("tumor").value))
    for name in _VESSEL_ORDER:
        vessel = anatomy.vessels[name]
        layers.append(Layer(vessel, _VESSEL_TISSUE[name], label_by_name(name).value))
    return Scene(tuple(layers), tumor)


def draw_hu(rng: np.random.Generator, attenuation: str) -> Mapping[str, float]:
    """Per-patient HU of each tissue, portal-venous phase (portal vein brighter than aorta)."""
    pancreas = float(rng.uniform(85.0, 115.0))
    drop = rng.uniform(0.0, 12.0) if attenuation == "iso" else rng.uniform(35.0, 70.0)
    portal = float(rng.uniform(150.0, 190.0))
    hu = {
        "air": -1000.0, "fat": float(rng.uniform(-115.0, -85.0)), "muscle": 50.0,
        "bone": float(rng.uniform(500.0, 750.0)), "marrow": float(rng.uniform(150.0, 230.0)),
        "csf": 10.0, "liver": float(rng.uniform(95.0, 125.0)), "spleen": 115.0,
        "kidney": float(rng.uniform(150.0, 190.0)), "bowel_wall": 75.0, "fluid": 12.0,
        "pancreas": pancreas, "duct": 10.0, "bile": 6.0, "tumor": pancreas - float(drop),
        "portal": portal, "artery": portal - float(rng.uniform(5.0, 35.0)),
        "ivc": float(rng.uniform(110.0, 150.0)),
    }  # fmt: skip
    return MappingProxyType(hu)


@dataclass(frozen=True, eq=False)
class RenderedScan:
    """HU (int16) and labels (uint8), both ``[k, r, c]`` on ``grid``.

    With lymph nodes on, ``organs`` holds the ten attention structures (values of
    ``ATTENTION_STRUCTURES``) and ``nodes`` the node instances (k: the node with id k).
    """

    grid: ScanGrid
    hu: npt.NDArray[np.int16]
    labels: npt.NDArray[np.uint8]
    organs: npt.NDArray[np.uint8] | None = None
    nodes: npt.NDArray[np.uint8] | None = None

    @property
    def tumor_volume_ml(self) -> float:
        """Tumor volume of the label map in mL."""
        voxel = math.prod(self.grid.spacing) / 1000.0
        return float(np.count_nonzero(self.labels == label_by_name("tumor").value) * voxel)


def _offsets(spacing: tuple[float, float, float]) -> FloatArray:
    """Sub-voxel sample offsets (world mm) of the 2 x 2 x 3 supersampling."""
    dx, dy, dz = spacing
    grid = np.meshgrid([-0.25, 0.25], [-0.25, 0.25], [-1 / 3, 0.0, 1 / 3], indexing="ij")
    result: FloatArray = np.stack([g.ravel() for g in grid], axis=1) * np.array([dx, dy, dz])
    return result


def _world_box(
    shape: Shape, frame: Frame, grid: ScanGrid, ks: tuple[int, int]
) -> tuple[slice, slice] | None:
    """Rows and columns of the grid that the solid's box can touch within slices ``ks``."""
    lo, hi = shape.bounds()
    lo, hi = np.maximum(lo, -1e4), np.minimum(hi, 1e4)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])])  # fmt: skip
    world = frame.to_world(corners)
    wlo, whi = world.min(axis=0), world.max(axis=0)
    z = grid.axis(2)[ks[0] : ks[1]]
    if whi[2] < z.min() - grid.spacing[2] or wlo[2] > z.max() + grid.spacing[2]:
        return None
    spans = []
    for i in (1, 0):
        o, s, n = grid.origin[i], grid.spacing[i], grid.shape[2 - i]
        a = max(0, math.floor((wlo[i] - o) / s) - 1)
        b = min(n, math.ceil((whi[i] - o) / s) + 2)
        if a >= b:
            return None
        spans.append(slice(a, b))
    return spans[0], spans[1]


def _fraction(
    shape: Shape, world: FloatArray, frame: Frame, grid: ScanGrid, offsets: FloatArray
) -> npt.NDArray[np.float32]:
    """Fraction of each voxel (centres ``world``) inside the solid."""
    sdf = shape.sdf(frame.to_body(world))
    half_diagonal = 0.5 * math.sqrt(sum(s * s for s in grid.spacing))
    frac = (sdf < 0.0).astype(np.float32)
    edge = np.flatnonzero(np.abs(sdf) < half_diagonal + 0.25)
    if edge.size:
        sub = world[edge][:, None, :] + offsets[None, :, :]
        inside = shape.sdf(frame.to_body(sub.reshape(-1, 3))) < 0.0
        frac[edge] = inside.reshape(len(edge), -1).mean(axis=1)
    return frac


def _is_column(shape: Shape) -> bool:
    """A solid the same on every slice (the frame only turns about the z axis)."""
    return isinstance(shape, Superquadric) and shape.infinite_z


def _paint_columns(
    layers: Sequence[Layer], hu_table: Mapping[str, float], frame: Frame, grid: ScanGrid
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """One slice of the leading solids that are the same on every slice (body wall, spine).

    Returns the HU and the owner (1 + index of the last layer filling each pixel at least
    half, 0 for none).
    """
    yy, xx = np.meshgrid(grid.axis(1), grid.axis(0), indexing="ij")
    world = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, grid.origin[2])], axis=1)
    offsets = _offsets(grid.spacing)
    offsets[:, 2] = 0.0
    flat = ScanGrid(grid.origin, (grid.spacing[0], grid.spacing[1], 1e-3), (1, *grid.shape[1:]))
    hu = np.full(xx.shape, hu_table["air"], dtype=np.float32)
    owner = np.zeros(xx.shape, dtype=np.uint8)
    for index, layer in enumerate(layers, start=1):
        frac = _fraction(layer.shape, world, frame, flat, offsets).reshape(xx.shape)
        hu += frac * (np.float32(hu_table[layer.tissue]) - hu)
        owner[frac >= 0.5] = index
    return hu, owner


def _paint_chunk(
    layers: Sequence[Layer],
    hu_table: Mapping[str, float],
    frame: Frame,
    grid: ScanGrid,
    ks: tuple[int, int],
    hu: npt.NDArray[np.float32],
    labels: npt.NDArray[np.uint8],
    owner: tuple[int, npt.NDArray[np.uint8]],
) -> None:
    """Paint ``layers`` on slices ``ks``; ``owner`` is (index of the first layer, owner map)."""
    offsets = _offsets(grid.spacing)
    z = grid.axis(2)[ks[0] : ks[1]]
    first, owners = owner
    for index, layer in enumerate(layers, start=first):
        box = _world_box(layer.shape, frame, grid, ks)
        if box is None:
            continue
        rows, cols = box
        zz, yy, xx = np.meshgrid(z, grid.axis(1)[rows], grid.axis(0)[cols], indexing="ij")
        world = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
        frac = _fraction(layer.shape, world, frame, grid, offsets).reshape(zz.shape)
        if not frac.any():
            continue
        view = hu[ks[0] : ks[1], rows, cols]
        view += frac * (np.float32(hu_table[layer.tissue]) - view)
        filled = frac >= 0.5
        owners[ks[0] : ks[1], rows, cols][filled] = index
        if layer.label:
            labels[ks[0] : ks[1], rows, cols][filled] = layer.label


def ct_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], sigma: float, cutoff: float
) -> npt.NDArray[np.float32]:
    """Correlated noise of standard deviation ``sigma`` HU, shaped per slice.

    ``cutoff`` is the Gaussian roll-off of the ramp in cycles per pixel (lower: blotchier).
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(shape[1])[:, None]
    fx = np.fft.rfftfreq(shape[2])[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    nps = radius * np.exp(-((radius / cutoff) ** 2))
    shaped = np.fft.irfft2(np.fft.rfft2(white) * np.sqrt(nps), s=shape[1:])
    scale = sigma / max(float(shaped.std()), 1e-6)
    return (shaped * scale).astype(np.float32)


@dataclass(frozen=True, eq=False)
class PaintedScan:
    """A painted scan before noise: HU (float32), labels and the owner of each voxel.

    ``owner`` is 1 + the index in ``Scene.layers`` of the last solid that fills the voxel at
    least half (0: none), the rule the labels follow, so any tissue can be told apart.
    """

    grid: ScanGrid
    hu: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]
    owner: npt.NDArray[np.uint8]


def paint(scene: Scene, hu_table: Mapping[str, float], frame: Frame, grid: ScanGrid) -> PaintedScan:
    """Paint ``scene`` on ``grid`` (no noise yet)."""
    if len(scene.layers) > 254:
        raise ValueError("too many layers for the uint8 owner map")
    columns = 0
    while columns < len(scene.layers) and _is_column(scene.layers[columns].shape):
        columns += 1
    base, base_owner = _paint_columns(scene.layers[:columns], hu_table, frame, grid)
    hu = np.repeat(base[None, :, :], grid.shape[0], axis=0)
    owner = np.repeat(base_owner[None, :, :], grid.shape[0], axis=0)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for start in range(0, grid.shape[0], _CHUNK_SLICES):
        ks = (start, min(grid.shape[0], start + _CHUNK_SLICES))
        rest = scene.layers[columns:]
        _paint_chunk(rest, hu_table, frame, grid, ks, hu, labels, (columns + 1, owner))
    return PaintedScan(grid, hu, labels, owner)


def finish(
    painted: PaintedScan, noise: tuple[float, float], rng: np.random.Generator
) -> RenderedScan:
    """Add noise ``(sigma HU, cutoff cycles/pixel)`` and round to int16 HU."""
    grid, hu = painted.grid, painted.hu
    body = hu > -950.0
    hu += ct_noise(rng, grid.shape, noise[0], noise[1]) * np.where(body, 1.0, 0.3)
    out = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return RenderedScan(grid, out, painted.labels)


def render(
    scene: Scene,
    hu_table: Mapping[str, float],
    frame: Frame,
    grid: ScanGrid,
    noise: tuple[float, float],
    rng: np.random.Generator,
) -> RenderedScan:
    """Paint ``scene`` on ``grid`` and add noise ``(sigma HU, cutoff cycles/pixel)``."""
    return finish(paint(scene, hu_table, frame, grid), noise, rng)
