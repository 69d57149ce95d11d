"""Rasterise one patient: tissue map, 16-class label map and the HU image.

Shapes are painted in anatomical priority (later wins): background tissues, pancreas, ducts,
tumor, then vessels, so a vessel always keeps its full round lumen and the tumor wraps around it.
The HU image is a per-patient lookup of the tissue map plus a little texture, blurred for
partial-volume effect and with Gaussian noise added; the labels stay sharp (voxel-centre
sampling of the same shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import NodeTruth
from phantom._anatomy import Anatomy, Material, Vessel
from phantom._geometry import (
    Box,
    Float32Array,
    FloatArray,
    Grid,
    Shape,
    UInt8Array,
    paint,
    tube,
    union_bounds,
)
from phantom._lesions import Lesion
from phantom._tumor import TumorDesign, rasterize_tumor

#: Writes extra structures' HU into the looked-up image (the lymph nodes' shading).
Shade = Callable[[Float32Array], None]

HU_MIN = -1024
HU_MAX = 3071


@dataclass(frozen=True, eq=False)
class PhantomScan:
    """One rendered phantom CT.

    Parameters
    ----------
    grid
        The voxel grid (array index ``[k, r, c]``, ``z`` ascending with ``k``).
    hu
        Hounsfield units as stored in the DICOM series (int16, ``[k, r, c]``).
    labels
        The 16-class label map (uint8, same shape).
    materials
        The noise-free tissue map (:class:`Material` codes, uint8, same shape).
    vessels
        Vessel centrelines and radii by label name (ground-truth geometry); a wide-variation
        replaced right hepatic artery is under ``"replaced_rha"`` (background label).
    tumor
        The tumor's construction (core, cuffs, bridges); ``None`` for a tumor-free patient
        (wide variation).
    tumor_volume_ml
        Volume of the tumor label in millilitres (the part inside the field of view).
    tumor_attenuation
        Wide variation: mean HU of the tumor label minus that of the pancreas label outside
        every lesion, before blur and noise; ``None`` in the standard mode and without a tumor.
    lesions
        Wide variation: the truth of every lesion in the field of view (PDAC, cysts,
        neuroendocrine tumor), ids as in ``lesion_mask``; empty in the standard mode.
    lesion_mask
        Wide variation: the lesion instance mask (uint8, 0 background, ids 1..K);
        ``None`` in the standard mode.
    organs
        With lymph nodes: the ten attention structures (uint8, values of
        ``ATTENTION_STRUCTURES``); ``None`` without.
    node_mask
        With lymph nodes: their instance map (uint8, 0 background, k = ``node_id`` k).
    nodes
        With lymph nodes: the truth of every node (ids as in ``node_mask``).
    """

    grid: Grid
    hu: npt.NDArray[np.int16]
    labels: UInt8Array
    materials: UInt8Array
    vessels: Mapping[str, Vessel]
    tumor: TumorDesign | None
    tumor_volume_ml: float
    tumor_attenuation: float | None = None
    lesions: tuple[Lesion, ...] = ()
    lesion_mask: UInt8Array | None = None
    organs: UInt8Array | None = None
    node_mask: UInt8Array | None = None
    nodes: tuple[NodeTruth, ...] = ()


def hu_table(rng: np.random.Generator) -> Float32Array:
    """Per-patient HU of every :class:`Material` (portal-venous phase: portal vein > aorta)."""
    artery = rng.uniform(150.0, 175.0)
    portal = artery + rng.uniform(30.0, 50.0)
    ranges: dict[Material, tuple[float, float]] = {
        Material.AIR: (-1000.0, -1000.0),
        Material.FAT_SUBCUTANEOUS: (-112.0, -95.0),
        Material.MUSCLE: (45.0, 60.0),
        Material.FAT_VISCERAL: (-105.0, -88.0),
        Material.LIVER: (100.0, 125.0),
        Material.SPLEEN: (110.0, 130.0),
        Material.KIDNEY: (150.0, 190.0),
        Material.BOWEL_WALL: (60.0, 90.0),
        Material.FLUID: (0.0, 20.0),
        Material.GAS: (-990.0, -920.0),
        Material.BONE_CORTICAL: (650.0, 1000.0),
        Material.BONE_CANCELLOUS: (180.0, 300.0),
        Material.DISC: (70.0, 100.0),
        Material.CSF: (5.0, 20.0),
        Material.PANCREAS: (92.0, 112.0),
        Material.TUMOR: (42.0, 65.0),
        Material.DUCT: (8.0, 20.0),
        Material.BILE: (5.0, 20.0),
        Material.ARTERY: (artery, artery),
        Material.PORTAL: (portal, portal),
        Material.SMV: (portal - 8.0, portal),
        Material.IVC: (120.0, 150.0),
    }
    table = np.zeros(len(Material), dtype=np.float32)
    for material, (lo, hi) in ranges.items():
        table[material] = lo if lo == hi else rng.uniform(lo, hi)
    return table


def _paint_labelled(grid: Grid, materials: UInt8Array, labels: UInt8Array, shapes: Sequence[Shape],
                    material: Material, label: str) -> None:  # fmt: skip
    value = label_by_name(label).value
    for shape in shapes:
        paint(grid, materials, shape, material)
        paint(grid, labels, shape, value)


def _duct_points(axis: FloatArray, tumor: TumorDesign) -> FloatArray:
    """The main duct from just past the tumor to 3 mm short of the tail tip."""
    dense = np.concatenate(
        [np.linspace(axis[i], axis[i + 1], 40, endpoint=False) for i in range(len(axis) - 1)]
    )
    distance = np.linalg.norm(dense - tumor.core.center, axis=1)
    reach = float(tumor.core.semi.max())
    nearest = int(np.argmin(distance))
    beyond = np.nonzero(distance[nearest:] > reach)[0]
    start = nearest + int(beyond[0]) if len(beyond) else len(dense) - 2
    tail = np.linalg.norm(dense - axis[-1], axis=1)
    stop = max(start + 2, int(np.nonzero(tail > 3.0)[0][-1]))
    points: FloatArray = dense[start:stop:8] if stop - start > 16 else dense[start:stop]
    return points


def paint_anatomy(
    grid: Grid, anatomy: Anatomy, tumor: TumorDesign, location: str, rng: np.random.Generator
) -> tuple[UInt8Array, UInt8Array]:
    """Tissue and label maps of one patient, in painting priority."""
    materials = np.zeros(grid.shape, dtype=np.uint8)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for shape, material in anatomy.background:
        paint(grid, materials, shape, material)
    _paint_labelled(grid, materials, labels, anatomy.pancreas, Material.PANCREAS, "pancreas")
    duct = _duct_points(anatomy.pancreas_axis, tumor)
    duct_r = float(rng.uniform(1.5, 2.6)) * anatomy.placement.scale
    _paint_labelled(grid, materials, labels, tube(duct, duct_r), Material.DUCT, "pancreatic_duct")
    bile_r = float(rng.uniform(4.0, 5.5) if location == "head" else rng.uniform(2.5, 3.5))
    bile = tube(anatomy.bile_duct_points, bile_r * anatomy.placement.scale)
    _paint_labelled(grid, materials, labels, bile, Material.BILE, "bile_duct")
    placed = rasterize_tumor(grid, anatomy, tumor)
    if placed is not None:
        box, mask = placed
        materials[box.index][mask] = Material.TUMOR
        labels[box.index][mask] = label_by_name("tumor").value
    for vessel in anatomy.vessels.values():
        _paint_labelled(grid, materials, labels, vessel.shapes(), vessel.material, vessel.label)
    return materials, labels


def _texture(grid: Grid, hu: Float32Array, materials: UInt8Array, box: Box | None,
             material: Material, amplitude: float, rng: np.random.Generator) -> None:  # fmt: skip
    """Smooth random heterogeneity (a few mm in scale) inside one tissue, local to its box."""
    if box is None:
        return
    region = materials[box.index] == material
    if not region.any():
        return
    sigma = [2.0 / s for s in grid.spacing[::-1]]
    field = ndimage.gaussian_filter(rng.standard_normal(box.shape, dtype=np.float32), sigma)
    field *= np.float32(amplitude / max(float(field.std()), 1e-6))
    hu[box.index][region] += field[region]


def hu_image(
    grid: Grid,
    materials: UInt8Array,
    anatomy: Anatomy,
    tumor: TumorDesign,
    thickness: float,
    rng: np.random.Generator,
    shade: Shade | None = None,
) -> npt.NDArray[np.int16]:
    """Look up HU, add texture, blur for partial volume, add noise, round to stored integers.

    ``shade`` writes the lymph nodes' HU after the texture (from their own stream).
    """
    hu = hu_table(rng)[materials]
    _texture(
        grid, hu, materials, grid.box(*union_bounds(anatomy.pancreas)), Material.PANCREAS, 7.0, rng
    )
    _texture(grid, hu, materials, grid.box(*union_bounds(tumor.shapes())), Material.TUMOR, 6.0, rng)
    if shade is not None:
        shade(hu)
    dx, dy, dz = grid.spacing
    in_plane = 0.45
    through = min(0.35 * thickness, 0.9)
    sigma_voxels = (through / dz, in_plane / dy, in_plane / dx)
    hu = np.asarray(ndimage.gaussian_filter(hu, sigma_voxels, mode="nearest", truncate=3.0))
    sigma = np.float32(rng.uniform(10.0, 15.0))
    for k in range(0, grid.shape[0], 16):
        chunk = hu[k : k + 16]
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * sigma
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    stored: npt.NDArray[np.int16] = hu.astype(np.int16)
    return stored
