"""Lay out, mark and measure the lesions of a wide-mode patient.

Where a lesion sits is decided by the plan (:class:`~phantom._lesions.LesionSpec`'s
``location``; a PDAC's :class:`~phantom.TumorLook` ``site``) and placed in that part of the
patient's gland: the head and uncinate process are the gland's head and uncinate ellipsoids
(the centre within the inner third of each), the body the axis from the neck to the point
above the left renal vein (segments 1-2 of the pancreas axis), the tail the axis beyond it
(segments 3-4, short of the tip). A PDAC's core starts at its site's design point and is
pulled at most 45 % of the way towards the vessels it must touch (:mod:`phantom._tumor`).

The instance mask gives every lesion its own id (1..K, PDAC first): a PDAC is exactly the
tumor label; a cyst or neuroendocrine tumor is the part of its ellipsoid that kept its tissue
(vessels and ducts painted later win; a calcification inside it stays its).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from pancreas_contracts.labels import label_by_name
from phantom._anatomy import Anatomy, Material
from phantom._geometry import Ellipsoid, Float32Array, FloatArray, Grid, UInt8Array, rotation
from phantom._lesions import Lesion, LesionSpec
from phantom._variation import Variation

_TUMOR = label_by_name("tumor").value
_PANCREAS = label_by_name("pancreas").value
#: Tissue a lesion's voxels may hold (a calcification in a cyst is still the cyst).
_KEEPS: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "cyst": (Material.CYST, Material.CALCIFICATION),
    "pnet": (Material.PNET, Material.CALCIFICATION),
})  # fmt: skip


@dataclass(frozen=True, eq=False)
class PlacedLesion:
    """A planned non-PDAC lesion and its ellipsoid in world LPS millimetres."""

    spec: LesionSpec
    shape: Ellipsoid


@dataclass(frozen=True)
class _Part:
    """What the instance mask's id ``i + 1`` stands for (before measuring)."""

    kind: str
    location: str
    diameter_mm: float


def _ellipsoid(shape: object) -> Ellipsoid:
    if not isinstance(shape, Ellipsoid):
        raise TypeError("the gland's head and uncinate process are ellipsoids")
    return shape


def _on_axis(axis: FloatArray, segments: tuple[int, int], stop: float,
             rng: np.random.Generator) -> FloatArray:  # fmt: skip
    """A point on the pancreas axis between the starts of two segments (``stop``: last's end)."""
    i = int(rng.integers(segments[0], segments[1] + 1))
    reach = stop if i == segments[1] else 1.0
    point: FloatArray = axis[i] + float(rng.uniform(0.0, reach)) * (axis[i + 1] - axis[i])
    return point + rng.uniform(-2.0, 2.0, 3)


def site_center(anatomy: Anatomy, location: str, rng: np.random.Generator) -> FloatArray:
    """A lesion centre in ``location`` of the patient's gland (see the module docstring)."""
    if location in ("head", "uncinate"):
        part = _ellipsoid(anatomy.pancreas[0 if location == "head" else 1])
        spread = 0.35 if location == "head" else 0.25
        inner: FloatArray = part.center + part.axes @ (rng.uniform(-spread, spread, 3) * part.semi)
        return inner
    if location == "body":
        return _on_axis(anatomy.pancreas_axis, (1, 2), 1.0, rng)
    return _on_axis(anatomy.pancreas_axis, (3, 4), 0.6, rng)


def place_lesions(
    anatomy: Anatomy, specs: Sequence[LesionSpec], rng: np.random.Generator
) -> tuple[PlacedLesion, ...]:
    """Ellipsoids of the planned lesions: a cyst a little oval, a PNET nearly round."""
    placed = []
    for spec in specs:
        center = site_center(anatomy, spec.location, rng)
        spread = (0.85, 1.15) if spec.kind == "cyst" else (0.92, 1.08)
        semi = 0.5 * spec.diameter_mm * rng.uniform(*spread, 3)
        axes = anatomy.placement.axes(rotation(rng.uniform(-30.0, 30.0, 3)))
        placed.append(PlacedLesion(spec, Ellipsoid(center, axes, semi)))
    return tuple(placed)


Window = tuple[slice, slice, slice]


@dataclass(frozen=True, eq=False)
class MarkedLesions:
    """The lesion instance mask (ids 1..K, no id without a voxel) and what each id is.

    ``windows[i]`` is the part of the grid that holds every voxel of id ``i + 1``, so that
    nothing below has to pass over the whole volume.
    """

    mask: UInt8Array
    parts: tuple[_Part, ...]
    windows: tuple[Window, ...]


def instance_mask(
    grid: Grid,
    materials: UInt8Array,
    labels: UInt8Array,
    variation: Variation,
    placed: Sequence[PlacedLesion],
    tumor_window: Window | None,
) -> MarkedLesions:
    """Mark every lesion: the PDAC (the tumor label, within ``tumor_window``), then the others."""
    mask = np.zeros(grid.shape, dtype=np.uint8)
    parts: list[_Part] = []
    windows: list[Window] = []
    look = variation.tumor
    if look is not None and tumor_window is not None:
        parts.append(_Part("pdac", look.site, look.diameter_mm))
        windows.append(tumor_window)
        mask[tumor_window][labels[tumor_window] == _TUMOR] = 1
    for lesion in placed:
        box = grid.box(*lesion.shape.bounds())
        if box is None:
            continue
        parts.append(_Part(lesion.spec.kind, lesion.spec.location, lesion.spec.diameter_mm))
        windows.append(box.index)
        keeps = np.isin(materials[box.index], _KEEPS[lesion.spec.kind])
        inside = lesion.shape.mask(box) & keeps & (labels[box.index] != _TUMOR)
        mask[box.index][inside] = len(parts)
    kept = [i for i, w in enumerate(windows) if np.count_nonzero(mask[w] == i + 1)]
    if len(kept) < len(parts):
        lookup = np.zeros(len(parts) + 1, dtype=np.uint8)
        lookup[[i + 1 for i in kept]] = np.arange(1, len(kept) + 1, dtype=np.uint8)
        mask = lookup[mask]
    return MarkedLesions(mask, tuple(parts[i] for i in kept), tuple(windows[i] for i in kept))


def lesion_contrasts(
    hu: Float32Array, labels: UInt8Array, marked: MarkedLesions, gland_window: Window | None
) -> list[float | None]:
    """Each lesion's mean HU minus the pancreas outside every lesion (``None``: no pancreas)."""
    if not marked.parts:
        return []
    if gland_window is None:
        return [None] * len(marked.parts)
    gland = (labels[gland_window] == _PANCREAS) & (marked.mask[gland_window] == 0)
    if not gland.any():
        return [None] * len(marked.parts)
    reference = float(hu[gland_window][gland].mean())
    return [
        round(float(hu[w][marked.mask[w] == i].mean()) - reference, 1)
        for i, w in enumerate(marked.windows, start=1)
    ]


def _point(values: FloatArray) -> tuple[float, float, float]:
    return (round(float(values[0]), 2), round(float(values[1]), 2), round(float(values[2]), 2))


def measure_lesions(
    grid: Grid, marked: MarkedLesions, contrasts: Sequence[float | None]
) -> tuple[Lesion, ...]:
    """Centre, box and volume of every id of the instance mask, in patient LPS mm."""
    spacing = np.asarray(grid.spacing)
    origin = np.asarray(grid.origin)
    lesions = []
    for i, window in enumerate(marked.windows, start=1):
        kji = np.argwhere(marked.mask[window] == i) + [s.start for s in window]
        xyz = origin + kji[:, ::-1] * spacing
        part = marked.parts[i - 1]
        lesions.append(
            Lesion(
                id=i,
                kind=part.kind,
                location=part.location,
                diameter_mm=part.diameter_mm,
                center_lps=_point(xyz.mean(axis=0)),
                bbox_min_lps=_point(xyz.min(axis=0) - spacing / 2.0),
                bbox_max_lps=_point(xyz.max(axis=0) + spacing / 2.0),
                voxels=len(kji),
                volume_ml=round(len(kji) * grid.voxel_volume_ml, 4),
                contrast_hu=contrasts[i - 1] if i - 1 < len(contrasts) else None,
            )
        )
    return tuple(lesions)
