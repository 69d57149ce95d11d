"""Render a wide-variation patient: anatomy, tumor or none, lesions, artefacts, phase HU, scanner.

The painting priorities are the standard renderer's (:mod:`phantom._render`): background,
pancreas (and cysts, labelled pancreas), ducts (a neuroendocrine tumor over them, labelled
pancreas), tumor, vessels. The lesion instance mask and each lesion's truth come from
:mod:`phantom._lesion_render`. Calcifications and the
biliary stent change the tissue map only, never the labels: a calcification in the pancreas
is still pancreas, a stent lies in the bile duct. The image is the phase's HU table looked
up, textured, crossed by streaks, blurred by the reconstruction kernel and given correlated
noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pancreas_contracts.labels import label_by_name
from phantom._anatomy import Anatomy, Material, build_anatomy
from phantom._geometry import (
    Ellipsoid,
    FloatArray,
    Grid,
    Shape,
    UInt8Array,
    paint,
    tube,
    union_bounds,
)
from phantom._lesion_render import (
    MarkedLesions,
    PlacedLesion,
    instance_mask,
    lesion_contrasts,
    measure_lesions,
    place_lesions,
)
from phantom._lymph_nodes import NodePlan
from phantom._node_layout import NodeLayout, lymph_node_scene
from phantom._render import (
    HU_MAX,
    HU_MIN,
    PhantomScan,
    Shade,
    _duct_points,
    _paint_labelled,
    _texture,
)
from phantom._tumor import TumorDesign, design_tumor, rasterize_tumor
from phantom._variation import Variation
from phantom._variation_image import correlated_noise, hu_table_for, streaks

_LAYOUT_ATTEMPTS = 8
_TUMOR = label_by_name("tumor").value
_PANCREAS = label_by_name("pancreas").value
_AORTA = label_by_name("aorta").value


@dataclass(frozen=True)
class VariedInputs:
    """What the renderer needs of a plan (kept apart so this module never imports it)."""

    bmi: float
    location: str
    angles: Mapping[str, float]
    target: int
    nodes: NodePlan | None = None


@dataclass(frozen=True, eq=False)
class VariedStreams:
    """A wide-mode patient's render streams: anatomy, image, the lesions' and nodes' layout."""

    anatomy: np.random.Generator
    image: np.random.Generator
    lesions: np.random.Generator
    nodes: np.random.Generator | None = None


def _layout(
    inputs: VariedInputs, grid: Grid, variation: Variation, rng: np.random.Generator
) -> tuple[Anatomy, TumorDesign | None]:
    """Anatomy and tumor; redrawn (deterministically) while some cuff has no clear stretch."""
    look = variation.tumor
    anatomy = build_anatomy(rng, grid.center(), inputs.bmi, variation.body)
    if look is None:
        return anatomy, None
    for attempt in range(_LAYOUT_ATTEMPTS):
        if attempt:
            anatomy = build_anatomy(rng, grid.center(), inputs.bmi, variation.body)
        tumor = design_tumor(anatomy, inputs.location, inputs.angles, inputs.target, rng, look)
        if tumor.clear:
            break
    return anatomy, tumor


def _paint_where(grid: Grid, materials: UInt8Array, shape: Shape, value: Material,
                 allowed: UInt8Array, among: tuple[int, ...]) -> None:  # fmt: skip
    """Set ``materials`` to ``value`` inside ``shape`` where ``allowed`` holds one of ``among``."""
    box = grid.box(*shape.bounds())
    if box is None:
        return
    inside = shape.mask(box) & np.isin(allowed[box.index], among)
    materials[box.index][inside] = value


def _main_duct(anatomy: Anatomy, tumor: TumorDesign | None) -> FloatArray:
    if tumor is not None:
        return _duct_points(anatomy.pancreas_axis, tumor)
    axis = anatomy.pancreas_axis.copy()
    step = axis[-1] - axis[-2]
    axis[-1] = axis[-1] - 3.0 * step / float(np.linalg.norm(step))
    return axis


def _ducts(
    grid: Grid,
    materials: UInt8Array,
    labels: UInt8Array,
    anatomy: Anatomy,
    variation: Variation,
    tumor: TumorDesign | None,
    rng: np.random.Generator,
) -> None:
    """Main duct (dilated upstream of a tumor, or in some atrophic glands), bile duct, stent."""
    look = variation.tumor
    scale = anatomy.placement.scale
    obstructing = look is not None and look.site != "tail"
    span = (1.5, 2.5) if variation.duct_dilated else (1.5, 3.2) if obstructing else (0.8, 1.6)
    duct_r = float(rng.uniform(*span)) * scale
    duct = tube(_main_duct(anatomy, tumor), duct_r)
    _paint_labelled(grid, materials, labels, duct, Material.DUCT, "pancreatic_duct")
    head = look is not None and look.angle_location == "head"
    stent = look is not None and look.stent
    bile_r = float(rng.uniform(4.0, 6.5) if head and not stent else rng.uniform(2.5, 4.0)) * scale
    bile = tube(anatomy.bile_duct_points, bile_r)
    _paint_labelled(grid, materials, labels, bile, Material.BILE, "bile_duct")
    if stent:
        metal = rng.random() < 0.5
        stent_r = bile_r - 0.4 if metal else float(rng.uniform(1.3, 1.7))
        bile_label = (label_by_name("bile_duct").value,)
        for shape in tube(anatomy.bile_duct_points[1:], stent_r):
            _paint_where(grid, materials, shape, Material.STENT, labels, bile_label)


def _tumor(grid: Grid, materials: UInt8Array, labels: UInt8Array, anatomy: Anatomy,
           tumor: TumorDesign, variation: Variation, rng: np.random.Generator) -> None:  # fmt: skip
    placed = rasterize_tumor(grid, anatomy, tumor)
    if placed is None:
        return
    box, mask = placed
    materials[box.index][mask] = Material.TUMOR
    labels[box.index][mask] = _TUMOR
    look = variation.tumor
    if look is not None and look.texture == "necrotic":
        core = tumor.core
        inner = Ellipsoid(core.center, core.axes, core.semi * float(rng.uniform(0.35, 0.6)))
        _paint_where(grid, materials, inner, Material.NECROSIS, labels, (_TUMOR,))


def _calcifications(grid: Grid, materials: UInt8Array, labels: UInt8Array, anatomy: Anatomy,
                    variation: Variation, rng: np.random.Generator) -> None:  # fmt: skip
    """Parenchymal calcifications and calcified aortic plaques (tissue map only)."""
    axis = anatomy.pancreas_axis
    for _ in range(variation.calcifications):
        i = int(rng.integers(0, len(axis) - 1))
        point = axis[i] + rng.random() * (axis[i + 1] - axis[i]) + rng.normal(0, 3.0, 3)
        dot = Ellipsoid(point, np.eye(3), rng.uniform(0.7, 2.0, 3))
        _paint_where(grid, materials, dot, Material.CALCIFICATION, labels, (_PANCREAS, _TUMOR))
    aorta = anatomy.vessels["aorta"]
    top, bottom = aorta.points[0], aorta.points[-1]
    for _ in range(variation.aortic_plaques):
        along = top + float(rng.uniform(0.3, 0.7)) * (bottom - top)
        angle = float(rng.uniform(0.0, 2.0 * np.pi))
        offset = np.array([np.cos(angle), np.sin(angle), 0.0]) * (aorta.radius - 0.8)
        plaque = Ellipsoid(along + offset, np.eye(3), np.array([1.5, 1.5, 3.0]))
        _paint_where(grid, materials, plaque, Material.CALCIFICATION, labels, (_AORTA,))


def paint_varied(
    grid: Grid,
    anatomy: Anatomy,
    tumor: TumorDesign | None,
    variation: Variation,
    placed: tuple[PlacedLesion, ...],
    rng: np.random.Generator,
) -> tuple[UInt8Array, UInt8Array]:
    """Tissue and label maps of one wide-variation patient, in painting priority."""
    materials = np.zeros(grid.shape, dtype=np.uint8)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for shape, material in anatomy.background:
        paint(grid, materials, shape, material)
    _paint_labelled(grid, materials, labels, anatomy.pancreas, Material.PANCREAS, "pancreas")
    cysts = tuple(p.shape for p in placed if p.spec.kind == "cyst")
    _paint_labelled(grid, materials, labels, cysts, Material.CYST, "pancreas")
    _ducts(grid, materials, labels, anatomy, variation, tumor, rng)
    # A solid nodule displaces the duct rather than letting it run through.
    solid = tuple(p.shape for p in placed if p.spec.kind == "pnet")
    _paint_labelled(grid, materials, labels, solid, Material.PNET, "pancreas")
    if tumor is not None:
        _tumor(grid, materials, labels, anatomy, tumor, variation, rng)
    for vessel in anatomy.vessels.values():
        _paint_labelled(grid, materials, labels, vessel.shapes(), vessel.material, vessel.label)
    _calcifications(grid, materials, labels, anatomy, variation, rng)
    return materials, labels


def varied_image(
    grid: Grid,
    materials: UInt8Array,
    labels: UInt8Array,
    anatomy: Anatomy,
    tumor: TumorDesign | None,
    variation: Variation,
    rng: np.random.Generator,
    marked: MarkedLesions,
    shade: Shade | None = None,
) -> tuple[npt.NDArray[np.int16], list[float | None]]:
    """HU image and each lesion's contrast (minus the pancreas, before blur and noise).

    ``shade`` writes the lymph nodes' HU after the textures (from their own stream).
    """
    hu = hu_table_for(variation, rng)[materials]
    pancreas_box = grid.box(*union_bounds(anatomy.pancreas))
    _texture(grid, hu, materials, pancreas_box, Material.PANCREAS, float(rng.uniform(4, 12)), rng)
    if any(lesion.kind == "pnet" for lesion in variation.lesions):
        _texture(grid, hu, materials, pancreas_box, Material.PNET, float(rng.uniform(3, 8)), rng)
    look = variation.tumor
    if tumor is not None and look is not None:
        amplitude = {"homogeneous": (3.0, 6.0), "heterogeneous": (12.0, 25.0)}.get(
            look.texture, (8.0, 15.0)
        )
        box = grid.box(*union_bounds(tumor.shapes()))
        _texture(grid, hu, materials, box, Material.TUMOR, float(rng.uniform(*amplitude)), rng)
    if shade is not None:
        shade(hu)
    gland_window = pancreas_box.index if pancreas_box is not None else None
    contrasts = lesion_contrasts(hu, labels, marked, gland_window)
    acq = variation.acquisition
    if acq.streaks:
        streaks(grid, hu, materials, rng)
    dx, dy, dz = grid.spacing
    through = min(float(rng.uniform(0.3, 0.45)) * acq.slice_thickness, 2.0)
    sigma = (through / dz, acq.blur_mm / dy, acq.blur_mm / dx)
    hu = np.asarray(ndimage.gaussian_filter(hu, sigma, mode="nearest", truncate=3.0))
    correlated_noise(grid, hu, acq.noise_sd, acq.noise_grain_mm, rng)
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    stored: npt.NDArray[np.int16] = hu.astype(np.int16)
    return stored, contrasts


def render_varied(
    inputs: VariedInputs,
    grid: Grid,
    variation: Variation,
    streams: VariedStreams,
) -> PhantomScan:
    """Draw the CT, labels, tissue map and lesion truth of one wide-variation patient.

    Parameters
    ----------
    inputs
        BMI, tumor location, contact angles and target class of the plan.
    grid
        The voxel grid.
    variation
        The patient's variation.
    streams
        The patient's anatomy, image and lesion-layout streams.
    """
    anatomy, tumor = _layout(inputs, grid, variation, streams.anatomy)
    placed = place_lesions(anatomy, variation.lesions, streams.lesions)
    materials, labels = paint_varied(grid, anatomy, tumor, variation, placed, streams.anatomy)
    organs: UInt8Array | None = None
    layout: NodeLayout | None = None
    if inputs.nodes is not None:
        assert streams.nodes is not None, "nodes need their layout stream"
        synth = variation.mode == "synth"
        organs, layout = lymph_node_scene(
            grid, materials, labels, anatomy, inputs.nodes, streams.nodes, synth
        )
    tumor_box = grid.box(*union_bounds(tumor.shapes())) if tumor is not None else None
    window = tumor_box.index if tumor_box is not None else None
    marked = instance_mask(grid, materials, labels, variation, placed, window)
    shade = layout.shade if layout is not None else None
    hu, contrasts = varied_image(
        grid, materials, labels, anatomy, tumor, variation, streams.image, marked, shade
    )
    lesions = measure_lesions(grid, marked, contrasts)
    pdac = next((lesion for lesion in lesions if lesion.kind == "pdac"), None)
    tumor_voxels = pdac.voxels if pdac is not None else 0
    return PhantomScan(
        grid=grid,
        hu=hu,
        labels=labels,
        materials=materials,
        vessels=MappingProxyType(dict(anatomy.vessels)),
        tumor=tumor,
        tumor_volume_ml=round(tumor_voxels * grid.voxel_volume_ml, 3),
        tumor_attenuation=pdac.contrast_hu if pdac is not None else None,
        lesions=lesions,
        lesion_mask=marked.mask,
        organs=organs,
        node_mask=layout.mask if layout is not None else None,
        nodes=layout.nodes if layout is not None else (),
    )
