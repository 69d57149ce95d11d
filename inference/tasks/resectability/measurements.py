"""Measurements read off a 16-class label map: tumor size, tumor-vessel contact, NCCN rule.

Works on any label map with the labels of :mod:`pancreas_contracts.labels` (a network's
prediction, a reference mask, a phantom) on any grid whose affine maps voxels to world mm
(anisotropic, thick slices, any orientation). Investigational, not for clinical use.

Tumor size
----------
The task's post-processing (``_post.filter_tumor``) has already removed specks and fragments
away from the pancreas, so every tumor voxel left belongs to a tumor component.

* Volume: all tumor voxels times voxel volume. Not the largest component alone: one tumor can be
  cut into pieces by a vessel or a fat plane (phantom PHANTOM-0004 of the measurement
  tests: 5.07 + 2.59 mL of ground truth, one lesion), and the largest piece alone would
  under-read it by a third.
* Largest 3D diameter (maximum Feret diameter) of the largest 26-connected tumor component
  (a diameter never spans two pieces: on a real CT, scattered fragments gave 64 mm): the
  farthest pair of convex-hull vertices
  (``scipy.spatial.ConvexHull``) of the tumor's boundary in world mm, the boundary being the
  centres of the voxel faces between tumor and not-tumor (where a marching-cubes surface puts
  its vertices: half-way between the last voxel centre inside and the first outside).

Contact angle (METHOD.md, "Geometry read-out")
----------------------------------------------
For each key vessel (SMA 6, celiac trunk 7, common hepatic artery 10, SMV 5, portal vein 3):

1. **Region.** Only the vessel within ``roi_margin_mm`` of the tumor's bounding box is used.
2. **Shape-based resampling.** Vessel and tumor masks become signed Euclidean distance maps
   in mm on their own voxel grid (any spacing), read anywhere by trilinear interpolation. Their
   zero level is a smooth surface even across 3 mm slices, so a vessel that runs within the
   axial plane (common hepatic artery, celiac trunk) is cut as well as one crossing it.
   The vessel is resampled on an isotropic lattice (the finest voxel spacing clipped to
   0.5-1 mm, at most half the vessel radius).
3. **Centreline.** From the lattice point nearest the tumor, the centreline is tracked both
   ways in 1 mm steps: at each step the local direction is the principal axis (PCA) of the
   lumen within twice the vessel radius, and the centre is the centroid of the lumen slab
   perpendicular to it. Tracking stops where the tumor can no longer reach the section's ring,
   at the vessel's end or where the centre leaves the lumen; further tracks start from lumen
   points near the tumor not yet covered (a tumor touching a vessel in two places).
4. **Cross-sections perpendicular to the vessel.** From each centre, 360 rays in the plane
   perpendicular to the local direction find the vessel wall (the zero of the vessel's
   distance map) and look for tumor 0.5, 1, 1.5 and 2 mm beyond it. A ray touches the tumor if
   any of these points is inside the tumor. The section's angle is 360 degrees times the
   fraction of rays (among those that found the wall) that touch. A section where fewer than
   90 % of rays find the wall (a branch point, the vessel's end) is discarded.
5. **Vessel angle.** Along each track, every usable section's angle is replaced by the median
   of it and its two usable neighbours (a lone section cut through a bend or a staircase
   cannot set the result on its own, nor can a contact shorter than about 2 mm along the
   vessel; tracks of one or two sections keep their values); the vessel's contact is the
   largest such value over all tracks, and 0 when the tumor never comes within reach. Angles
   are rounded to 0.1 degree.

Without tumor every vessel has no angle (``None``, never 0: there is nothing to touch). A
vessel absent from the map has no angle (``None``); a vessel the tumor touches but that has
no usable cross-section (a few voxels only) also has ``None``, with a warning, and then the
rule category is withheld rather than read as "no contact".

Accuracy: on phantoms with constructed angles (1-3 mm slices) the mean absolute error is a few
degrees, with a bias of about +3 degrees (a ray counts as touching if *any* of its four ring
points is tumor; a jagged voxel edge thus tips towards contact); see
``bench/results/measurements.md`` (``make bench-measurements``). Analytic cuffs around straight
tubes in any orientation, 3 mm slices included, read within about 10 degrees.

NCCN rule (METHOD.md): arterial contact (SMA, celiac trunk, CHA) of 180 degrees or more is
locally advanced (2); any smaller arterial contact, or venous contact (SMV, portal vein) of 180
degrees or more, is borderline (1); otherwise resectable (0). No tumor, no rule category.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from inference.tasks.resectability._measure_contact import (
    ContactSettings,
    Section,
    VesselModel,
    contact_sections,
    section_angle,
)
from inference.tasks.resectability._measure_fields import (
    BoolArray,
    DistanceField,
    FloatArray,
    bounding_crop,
    crop_affine,
    spacing_of,
)
from inference.tasks.resectability._measure_size import max_diameter_mm, volume_ml
from inference.volume import Volume, value_counts
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.nccn import ARTERIAL_VESSELS, VENOUS_VESSELS, nccn_rule_category
from pancreas_contracts.result import CATEGORY_LABELS, KEY_VESSEL_LABELS, KEY_VESSELS, Measurements

__all__ = [
    "ARTERIAL_VESSELS",
    "VENOUS_VESSELS",
    "VESSEL_LABEL_VALUES",
    "ContactSettings",
    "MeasurementResult",
    "labels_region",
    "max_diameter_mm",
    "measure",
    "nccn_rule_category",
    "volume_ml",
]

#: Label value of each key vessel (``pancreas_contracts.labels``), by result key.
VESSEL_LABEL_VALUES: Mapping[str, int] = MappingProxyType(
    {vessel: label_by_name(name).value for vessel, name in KEY_VESSEL_LABELS.items()}
)
_TUMOR = label_by_name("tumor").value
# Tumor distances are needed this far from the tumor (a section's ring around a wide vein).
_TUMOR_FIELD_MARGIN_MM = 20.0
_MAX_RADIUS_MM = 15.0


@dataclass(frozen=True)
class MeasurementResult:
    """What :func:`measure` read off one label map.

    Parameters
    ----------
    tumor_volume_ml
        Tumor volume in mL, ``None`` without tumor.
    tumor_max_diameter_mm
        Largest 3D (Feret) diameter in mm, ``None`` without tumor.
    contact_deg
        Contact angle in degrees by vessel key (:data:`KEY_VESSELS`); ``None`` where the
        vessel is absent or could not be measured.
    rule_category
        NCCN rule category (0, 1, 2), ``None`` without tumor or when a touching vessel could
        not be measured.
    warnings
        Human-readable notes on what could not be measured.
    """

    tumor_volume_ml: float | None
    tumor_max_diameter_mm: float | None
    contact_deg: Mapping[str, float | None]
    rule_category: int | None
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact_deg", MappingProxyType(dict(self.contact_deg)))

    @property
    def rule_label(self) -> str | None:
        """The rule category's name (:data:`CATEGORY_LABELS`), ``None`` without one."""
        return None if self.rule_category is None else CATEGORY_LABELS[self.rule_category]

    def to_measurements(self) -> Measurements:
        """The ``result.json`` measurements block."""
        return Measurements(
            tumor_volume_ml=self.tumor_volume_ml,
            tumor_max_diameter_mm=self.tumor_max_diameter_mm,
            contact_deg=dict(self.contact_deg),
        )


def _lattice_step(spacing: FloatArray, radius: float, settings: ContactSettings) -> float:
    """Isotropic lattice step: the finest spacing within ``lattice_mm``, at most radius / 2."""
    lo, hi = settings.lattice_mm
    step = float(np.clip(spacing.min(), lo, hi))
    return max(min(step, 0.5 * radius), 0.25)


def _vessel_model(mask: BoolArray, affine: FloatArray, settings: ContactSettings) -> VesselModel:
    """A non-empty vessel mask as distance field plus isotropic lattice."""
    spacing = spacing_of(affine)
    crop = bounding_crop(mask, spacing, 2.0 * float(spacing.max()))
    assert crop is not None
    vessel_field = DistanceField.of(mask, affine, crop)
    # Inscribed radius, bounded for a crop that is all vessel (the field has no outside).
    radius = float(np.clip(-vessel_field.values.min(), 0.5 * spacing.min(), _MAX_RADIUS_MM))
    step = _lattice_step(spacing, radius, settings)
    points = vessel_field.inside_lattice(step)
    return VesselModel(vessel_field, points, cKDTree(points), radius, step)


def _median3(angles: list[float | None]) -> list[float]:
    """Median of each usable section's angle with its usable neighbours (window of 3)."""
    usable = [a for a in angles if a is not None]
    if len(usable) < 3:
        return usable
    return [float(np.median(usable[i - 1 : i + 2])) for i in range(1, len(usable) - 1)]


def _track_angles(
    vessel: VesselModel, tumor: DistanceField, settings: ContactSettings
) -> list[list[float | None]]:
    """Per track, the contact angle of each cross-section (``None`` where unusable)."""
    tracks: list[list[Section]] = contact_sections(vessel, tumor, settings)
    return [[section_angle(vessel, tumor, s, settings) for s in track] for track in tracks]


def _vessel_contact(
    region: Volume, value: int, tumor: DistanceField, settings: ContactSettings
) -> tuple[float | None, str | None]:
    """Contact angle of one vessel present in the volume and a warning if it is unmeasured."""
    mask = np.asarray(region.array == value)
    if not mask.any():
        return 0.0, None  # nowhere near the tumor
    vessel = _vessel_model(mask, region.affine, settings)
    if len(vessel.points) > 0:
        angles = _track_angles(vessel, tumor, settings)
        smoothed = [a for track in angles for a in _median3(track)]
        if smoothed:
            return round(max(smoothed), 1), None
    gap = float(tumor.at(vessel.points).min()) if len(vessel.points) else np.inf
    if gap > max(settings.ring_mm) + vessel.radius:
        return 0.0, None
    return None, "touches the tumor but has no usable cross-section"


def _present(values: npt.NDArray[np.generic]) -> dict[str, bool]:
    """Which key vessels have at least one voxel (one pass over an unsigned label map)."""
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        counts = value_counts(values, 16)
        return {k: bool(counts[v]) for k, v in VESSEL_LABEL_VALUES.items()}
    return {k: bool((values == v).any()) for k, v in VESSEL_LABEL_VALUES.items()}


def _contacts(
    region: Volume, tumor: DistanceField, present: dict[str, bool], settings: ContactSettings
) -> tuple[dict[str, float | None], list[str]]:
    """Contact angle of every key vessel (``None`` if absent) and the warnings."""
    contact: dict[str, float | None] = {}
    warnings: list[str] = []
    for key in KEY_VESSELS:
        problem: str | None = "absent from the segmentation"
        if not present[key]:
            contact[key] = None
        else:
            value = VESSEL_LABEL_VALUES[key]
            contact[key], problem = _vessel_contact(region, value, tumor, settings)
        if problem is not None:
            warnings.append(f"{key}: {problem}")
    return contact, warnings


def _largest_component(mask: BoolArray) -> BoolArray:
    """The largest 26-connected component of a non-empty mask."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest: BoolArray = components == int(np.argmax(sizes))
    return largest


def labels_region(label: Volume, margin_mm: float) -> Volume:
    """The part of ``label`` within its labels' box grown by ``margin_mm`` (clipped to it).

    It holds every label, and the tumor's box grown by ``margin_mm`` and clipped to it is the
    same world box as in the whole grid (the tumor's box lies inside the labels'), so
    :func:`measure`'s ROI is unchanged while its passes skip the empty rest of the grid (a
    300-slice CT holds a model's labels in a fraction of it). All zero: ``label`` itself.
    """
    box = bounding_crop(np.asarray(label.array), spacing_of(label.affine), margin_mm)
    if box is None:
        return label
    return Volume(np.asarray(label.array)[box], crop_affine(label.affine, box))


def measure(label: Volume, settings: ContactSettings | None = None) -> MeasurementResult:
    """Tumor volume and diameter, contact angle per key vessel and the NCCN rule category.

    Parameters
    ----------
    label
        16-class label map (:mod:`pancreas_contracts.labels`) with its voxel-to-world affine.
    settings
        Contact-angle parameters (default: the documented method).

    Returns
    -------
    MeasurementResult
        Without tumor: no size, no contact angle (``None`` for every vessel), no rule
        category.
    """
    opts = settings or ContactSettings()
    spacing = spacing_of(label.affine)
    labelled = labels_region(label, opts.roi_margin_mm)
    values, affine = np.asarray(labelled.array), labelled.affine
    tumor_mask = np.asarray(values == _TUMOR)
    present = _present(values)
    roi = bounding_crop(tumor_mask, spacing, opts.roi_margin_mm)
    if roi is None:
        angles: dict[str, float | None] = dict.fromkeys(KEY_VESSELS)
        return MeasurementResult(None, None, MappingProxyType(angles), None, ("no tumor found",))
    region = Volume(values[roi], crop_affine(affine, roi))
    tumor_mask = tumor_mask[roi]
    reach = bounding_crop(tumor_mask, spacing, _TUMOR_FIELD_MARGIN_MM)
    assert reach is not None
    tumor = DistanceField.of(tumor_mask, region.affine, reach)
    contact, warnings = _contacts(region, tumor, present, opts)
    unmeasured = any(contact[k] is None and present[k] for k in KEY_VESSELS)
    largest = _largest_component(tumor_mask)
    return MeasurementResult(
        tumor_volume_ml=volume_ml(tumor_mask, region.affine),
        tumor_max_diameter_mm=max_diameter_mm(largest, region.affine),
        contact_deg=MappingProxyType(contact),
        rule_category=None if unmeasured else nccn_rule_category(contact),
        warnings=tuple(warnings),
    )
