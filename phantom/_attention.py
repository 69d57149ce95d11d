"""The ten attention structures of the lymph-node paper in the phantom (``organs.nii.gz``).

Most of the ten exist already: the pancreas (with tumor and duct), aorta, SMA, celiac trunk,
splenic, common and proper hepatic arteries are labels; the spleen is a tissue of its own; the
stomach and duodenum are unlabelled bowel whose walls :class:`~phantom._anatomy.Anatomy`
records. Two are added here, both unlabelled (background in ``label.nii.gz``, whose 16 labels
stay as they are):

* the **abdominal oesophagus**: from the lower thorax, anterior to the aorta and left of the
  midline, through the hiatus to the cardia at the upper medial stomach;
* the **left gastric artery**: from the celiac trunk (about 60 % of the way to its
  bifurcation), cranially and to the left to the lesser curvature below the cardia.

Both courses are in the anatomy's local frame (``+x`` left, ``+y`` posterior, ``+z``
superior; origin on the aorta at the SMA origin), so they follow the patient's placement and
scale. Their calibres and a little jitter come from the nodes' layout stream, never from the
anatomy stream, so switching nodes on changes no other draw. They are painted over visceral fat
(and the liver, which the oesophagus passes behind) only, so no vessel, bowel or labelled voxel
changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import structure_by_name
from phantom._anatomy import Anatomy, Material
from phantom._geometry import BoolArray, Box, Grid, Shape, UInt8Array, tube

__all__ = ["ExtraStructures", "draw_extra_structures", "organ_map", "paint_extra_structures"]

#: Oesophagus centreline (local mm): lower thorax, hiatus, cardia (ends in the stomach wall).
_ESOPHAGUS_LOCAL = ((10.0, -18.0, 200.0), (14.0, -19.0, 130.0), (20.0, -26.0, 105.0),
                    (27.0, -37.0, 86.0), (31.0, -43.0, 79.0))  # fmt: skip
#: Left gastric artery after its origin (local mm): up and left to the lesser curvature.
_LGA_LOCAL = ((16.0, -12.0, 30.0), (20.0, -20.0, 45.0), (22.0, -26.0, 58.0),
              (25.0, -33.0, 74.0))  # fmt: skip
# Where along the celiac trunk (origin to bifurcation) the left gastric artery arises.
_LGA_ORIGIN = 0.6
# What the two may be painted over: fat, and the liver's left lobe in front of the oesophagus.
_PAINTABLE = (Material.FAT_VISCERAL, Material.LIVER)
_BOWEL = (Material.BOWEL_WALL, Material.FLUID, Material.GAS)
# The attention structures made of labels (the pancreas with tumor and duct).
_FROM_LABELS = (
    ("pancreas", ("pancreas", "tumor", "pancreatic_duct")),
    ("aorta", ("aorta",)),
    ("sma", ("sma",)),
    ("celiac_splenic", ("celiac_trunk", "splenic_artery")),
    ("hepatic_artery", ("cha", "pha")),
)


@dataclass(frozen=True, eq=False)
class ExtraStructures:
    """The oesophagus and left gastric artery of one patient (world LPS shapes)."""

    esophagus: tuple[Shape, ...]
    left_gastric: tuple[Shape, ...]


def draw_extra_structures(anatomy: Anatomy, rng: np.random.Generator) -> ExtraStructures:
    """The oesophagus and left gastric artery of ``anatomy``.

    Parameters
    ----------
    anatomy
        The patient's anatomy (placement, celiac trunk).
    rng
        The nodes' layout stream (calibres, jitter).
    """
    scale = anatomy.placement.scale
    local = np.asarray(_ESOPHAGUS_LOCAL) + np.clip(rng.normal(0.0, 1.0, (5, 3)), -2.0, 2.0)
    esophagus = tube(anatomy.local(local), float(rng.uniform(7.5, 10.0)) * scale)
    trunk = anatomy.vessels["celiac_trunk"].points
    origin = trunk[0] + _LGA_ORIGIN * (trunk[-1] - trunk[0])
    course = np.asarray(_LGA_LOCAL) + np.clip(rng.normal(0.0, 1.2, (4, 3)), -2.5, 2.5)
    points = np.vstack([origin, anatomy.local(course)])
    left_gastric = tube(points, float(rng.uniform(1.5, 2.1)) * scale)
    return ExtraStructures(esophagus, left_gastric)


def _paint_over(
    grid: Grid, materials: UInt8Array, shapes: tuple[Shape, ...], value: Material
) -> None:
    for shape in shapes:
        box = grid.box(*shape.bounds())
        if box is None:
            continue
        inside = shape.mask(box) & np.isin(materials[box.index], _PAINTABLE)
        materials[box.index][inside] = value


def paint_extra_structures(grid: Grid, materials: UInt8Array, extra: ExtraStructures) -> None:
    """Paint the oesophagus (a collapsed muscular tube) and the left gastric artery."""
    _paint_over(grid, materials, extra.esophagus, Material.BOWEL_WALL)
    _paint_over(grid, materials, extra.left_gastric, Material.ARTERY)


def _inside(grid: Grid, shapes: tuple[Shape, ...]) -> list[tuple[Box, BoolArray]]:
    found = []
    for shape in shapes:
        box = grid.box(*shape.bounds())
        if box is not None:
            found.append((box, shape.mask(box)))
    return found


def organ_map(
    grid: Grid,
    materials: UInt8Array,
    labels: UInt8Array,
    anatomy: Anatomy,
    extra: ExtraStructures,
) -> UInt8Array:
    """The ten structures' label map (values of ``ATTENTION_STRUCTURES``), as painted.

    Each structure is the voxels its shapes cover that still hold its tissue after painting
    (a later organ or vessel wins, as in the CT). The pancreas includes tumor and duct; the
    celiac value includes the splenic artery, the hepatic value common and proper hepatic.
    """
    organs = np.zeros(grid.shape, dtype=np.uint8)

    def by_shapes(name: str, shapes: tuple[Shape, ...], tissues: tuple[Material, ...]) -> None:
        value = structure_by_name(name).value
        for box, mask in _inside(grid, shapes):
            hit = mask & np.isin(materials[box.index], tissues) & (labels[box.index] == 0)
            organs[box.index][hit] = value

    # The duodenum lies under the stomach in painting order, the oesophagus ends in its wall.
    by_shapes("duodenum", anatomy.organs.get("duodenum", ()), _BOWEL)
    by_shapes("stomach", anatomy.organs.get("stomach", ()), _BOWEL)
    by_shapes("esophagus", extra.esophagus, (Material.BOWEL_WALL,))
    organs[materials == Material.SPLEEN] = structure_by_name("spleen").value
    by_shapes("left_gastric", extra.left_gastric, (Material.ARTERY,))
    # The labelled structures in one lookup (a full-volume pass each would cost seconds on a
    # 512 x 512 x 320 scan).
    lookup = np.zeros(256, dtype=np.uint8)
    for name, label_names in _FROM_LABELS:
        for label in label_names:
            lookup[label_by_name(label).value] = structure_by_name(name).value
    labelled = lookup[labels]
    np.copyto(organs, labelled, where=labelled > 0)
    return organs
