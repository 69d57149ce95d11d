"""Domain checks: is this CT, and its segmentation, like the CTs the bundle learned from?

The bundle's ``domain`` section (``bundle.json``, written by training or by
``scripts/add_domain_stats.py``; schema in ``docs/tasks.md``) holds statistics of its training
cohort; :func:`check_domain` compares one analysed CT with them and grades it:

- **intensity**: the CT's HU percentiles (:data:`GRADED_LEVELS` of :data:`HU_LEVELS`) inside
  the analysis cube (``cube_mm`` around the pancreas, resampled linearly, not clipped; voxels
  below :data:`BODY_MIN_HU` left out, since the air around the body varies) against the
  cohort's spread of the same percentile; the distance is in training IQRs (at least
  :data:`MIN_IQR_HU`), the worst percentile counts. Above :data:`INTENSITY_BORDERLINE`:
  borderline; above :data:`INTENSITY_OUT`: out of domain.
- **segmentation plausibility**: volumes (mL) of :data:`STRUCTURES` inside the cube against the
  cohort's 1st-99th percentiles (pancreas below 0.8 x the 1st or above 1.25 x the 99th
  percentile: borderline; beyond half the 1st or twice the 99th percentile: out of domain;
  other structures beyond those limits: borderline); a key structure (:data:`KEY_STRUCTURES`)
  that every training CT has but this one lacks: out of domain;
  more components of at least :data:`MIN_COMPONENT_ML` than any training CT: borderline; the
  SMA on the other side of the SMV than in every training CT: borderline; the SMA further from
  the SMV (axial distance of their centroids over the slices both cross) than the cohort's 99th
  percentile x 1.5: borderline, x 2 + 10 mm: out of domain.
- **voxel spacing** outside the cohort's range (10 % margin): borderline.

The grade is the worst of the checks; ``not-available`` when the bundle has no ``domain``
section (never silently in domain). Out of domain, the resectability task withholds the NCCN
category (``result.outcome`` ``out-of-domain``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.preprocessing import PreprocessConfig
from inference.volume import Volume
from inference.volume_io import resample_to_reference
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import DomainCheck

__all__ = [
    "BODY_MIN_HU",
    "DOMAIN_FORMAT",
    "GRADED_LEVELS",
    "HU_BANDS",
    "HU_LEVELS",
    "INTENSITY_BORDERLINE",
    "INTENSITY_OUT",
    "KEY_STRUCTURES",
    "MIN_COMPONENT_ML",
    "MIN_IQR_HU",
    "STRUCTURES",
    "CaseStats",
    "DomainStats",
    "case_stats",
    "check_domain",
    "cube_reference",
    "reference_case_stats",
    "summarise",
]

DOMAIN_FORMAT: Final = "1.0"
#: HU percentiles recorded (inside the analysis cube).
HU_LEVELS: Final = (1, 5, 25, 50, 75, 95, 99)
#: The percentiles graded: the 1st and 99th follow bowel gas, partial volume at the body's edge
#: and bone, which vary between CTs of one domain, so they are recorded but not graded.
GRADED_LEVELS: Final = (5, 25, 50, 75, 95)
#: Voxels below this HU (air around the body, bowel gas) are left out of the percentiles.
BODY_MIN_HU: Final = -500.0
#: HU bands whose voxel fractions are recorded: (name, low, high), low inclusive.
HU_BANDS: Final = (
    ("air", -math.inf, -200.0),
    ("fat", -200.0, -30.0),
    ("soft_tissue", -30.0, 150.0),
    ("contrast", 150.0, 400.0),
    ("bone", 400.0, math.inf),
)
#: Structures whose volumes are recorded and checked.
STRUCTURES: Final = ("pancreas", "tumor", "aorta", "sma", "smv", "portal_vein")
#: Structures that must be segmented when every training CT has them.
KEY_STRUCTURES: Final = ("pancreas", "aorta", "sma", "smv", "portal_vein")
#: Smallest IQR (HU) a distance is measured in: synthetic cohorts can be nearly constant.
MIN_IQR_HU: Final = 15.0
INTENSITY_BORDERLINE: Final = 3.0
INTENSITY_OUT: Final = 6.0
#: Components smaller than this (mL) are not counted as a separate piece.
MIN_COMPONENT_ML: Final = 0.1
_Z_BIN_MM: Final = 2.0
_GRADES: Final = ("in-domain", "borderline", "out-of-domain")


@dataclass(frozen=True)
class CaseStats:
    """What the domain check measures on one CT and its label map.

    Attributes
    ----------
    hu_percentiles
        HU at :data:`HU_LEVELS` inside the cube.
    band_fractions
        Fraction of cube voxels per :data:`HU_BANDS` band.
    volumes_ml
        Volume of each of :data:`STRUCTURES` inside the cube.
    components
        Components of at least :data:`MIN_COMPONENT_ML` per structure.
    sma_left_mm, sma_smv_mm
        How far the SMA lies to the patient's left of the SMV, and their axial distance
        (centroids over the slices both cross); ``None`` without both vessels.
    spacing_mm
        Finest and coarsest voxel spacing of the CT.
    """

    hu_percentiles: tuple[float, ...]
    band_fractions: Mapping[str, float]
    volumes_ml: Mapping[str, float]
    components: Mapping[str, int]
    sma_left_mm: float | None
    sma_smv_mm: float | None
    spacing_mm: tuple[float, float]

    def __post_init__(self) -> None:
        if len(self.hu_percentiles) != len(HU_LEVELS):
            raise ValueError(f"hu_percentiles needs {len(HU_LEVELS)} values")
        if set(self.volumes_ml) != set(STRUCTURES):
            raise ValueError(f"volumes_ml needs exactly {STRUCTURES}")


def cube_reference(centre_mm: Sequence[float], preprocess: PreprocessConfig) -> Volume:
    """The analysis cube's grid (as :mod:`inference.preprocessing` builds it) around a centre."""
    size, spacing = preprocess.target_size, preprocess.spacing_mm
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - spacing * (size - 1) / 2.0
    return Volume(np.zeros((size, size, size), dtype=np.uint8), affine)


def _crop_to(image: Volume, cube: Volume) -> Volume:
    """The part of ``image`` that the cube overlaps (plus a voxel): resampling reads less."""
    size = np.asarray(cube.shape, dtype=np.float64) - 1
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * size
    voxels = image.world_to_voxel(cube.voxel_to_world(corners))
    shape = np.asarray(image.shape)
    lo = np.clip(np.floor(voxels.min(axis=0)).astype(int) - 1, 0, shape)
    hi = np.clip(np.ceil(voxels.max(axis=0)).astype(int) + 2, 0, shape)
    if np.any(hi <= lo):
        return image
    array = np.asarray(image.array)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    affine = image.affine.copy()
    affine[:3, 3] = image.voxel_to_world(lo[None, :].astype(np.float64))[0]
    return Volume(array, affine)


def _hu_values(image: Volume, cube: Volume) -> npt.NDArray[np.float32]:
    crop = _crop_to(image, cube)
    moving = Volume(np.asarray(crop.array, dtype=np.float32), crop.affine)
    values = np.asarray(resample_to_reference(moving, cube, 1, fill_value=np.nan).array)
    return values[np.isfinite(values)].astype(np.float32)


def _structure_masks(labels: Volume) -> tuple[dict[str, npt.NDArray[np.bool_]], Volume]:
    """Each structure's mask, cropped to the labelled box (faster components on a CT grid)."""
    array = np.asarray(labels.array)
    nonzero = np.nonzero(array)
    if not nonzero[0].size:
        return {name: np.zeros((1, 1, 1), dtype=bool) for name in STRUCTURES}, labels
    lo = [int(a.min()) for a in nonzero]
    hi = [int(a.max()) + 1 for a in nonzero]
    crop = array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    affine = labels.affine.copy()
    affine[:3, 3] = labels.voxel_to_world(np.asarray([lo], dtype=np.float64))[0]
    masks = {name: crop == label_by_name(name).value for name in STRUCTURES}
    return masks, Volume(crop.astype(np.uint8), affine)


def _components(mask: npt.NDArray[np.bool_], voxel_ml: float) -> int:
    if not mask.any():
        return 0
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labelled.ravel())[1:] * voxel_ml
    return int((sizes >= MIN_COMPONENT_ML).sum()) if count else 0


def _sma_smv(
    masks: Mapping[str, npt.NDArray[np.bool_]], grid: Volume
) -> tuple[float | None, float | None]:
    """SMA's offset to the patient's left of the SMV and their axial distance, in mm."""
    if not masks["sma"].any() or not masks["smv"].any():
        return None, None
    sma = grid.voxel_to_world(np.argwhere(masks["sma"]).astype(np.float64))
    smv = grid.voxel_to_world(np.argwhere(masks["smv"]).astype(np.float64))
    z_sma, z_smv = np.round(sma[:, 2] / _Z_BIN_MM), np.round(smv[:, 2] / _Z_BIN_MM)
    common = np.intersect1d(z_sma, z_smv)
    if common.size:  # compare where both run side by side
        sma, smv = sma[np.isin(z_sma, common)], smv[np.isin(z_smv, common)]
    a, v = sma.mean(axis=0), smv.mean(axis=0)
    # RAS+: +x is the patient's right, so the SMA is left of the SMV when its x is smaller
    return float(v[0] - a[0]), float(math.hypot(v[0] - a[0], v[1] - a[1]))


def case_stats(
    image: Volume, labels: Volume, preprocess: PreprocessConfig, centre_mm: Sequence[float]
) -> CaseStats:
    """Measure one CT (HU in the analysis cube) and its label map (any grid, world space).

    Parameters
    ----------
    image
        CT in HU.
    labels
        Label map (``pancreas_contracts.labels`` values): the segmentation at analysis time,
        the reference labels in training; only what lies inside the cube counts.
    preprocess
        The bundle's cube (size and spacing).
    centre_mm
        RAS+ centre of the cube.

    Raises
    ------
    ValueError
        If the cube holds no CT voxel.
    """
    cube = cube_reference(centre_mm, preprocess)
    hu = _hu_values(image, cube)
    if not hu.size:
        raise ValueError("the analysis cube holds no CT voxel")
    body = hu[hu >= BODY_MIN_HU]  # the air around the body varies with habitus and FOV
    percentiles = tuple(float(p) for p in np.percentile(body if body.size else hu, HU_LEVELS))
    bands = {name: float(((hu >= lo) & (hu < hi)).mean()) for name, lo, hi in HU_BANDS}
    in_cube = resample_to_reference(labels, cube, 0, fill_value=0)
    masks, grid = _structure_masks(in_cube)
    voxel_ml = float(np.prod(cube.spacing)) / 1000.0
    volumes = {name: float(mask.sum()) * voxel_ml for name, mask in masks.items()}
    components = {name: _components(mask, voxel_ml) for name, mask in masks.items()}
    left, distance = _sma_smv(masks, grid)
    spacing = image.spacing
    return CaseStats(
        percentiles, bands, volumes, components, left, distance, (min(spacing), max(spacing))
    )


def reference_case_stats(image: Volume, labels: Volume, preprocess: PreprocessConfig) -> CaseStats:
    """:func:`case_stats` of a training CT, its cube centred on the reference pancreas (1-2).

    Raises
    ------
    ValueError
        If the label map has no pancreas or the cube holds no CT voxel.
    """
    array = np.asarray(labels.array)
    gland = np.argwhere(
        np.isin(array, (label_by_name("pancreas").value, label_by_name("tumor").value))
    )
    if not gland.size:
        raise ValueError("the reference label map has no pancreas")
    centre = labels.voxel_to_world(gland.mean(axis=0)[None, :])[0]
    return case_stats(image, labels, preprocess, centre)


def _spread(values: Iterable[float]) -> dict[str, float]:
    array = np.asarray(list(values), dtype=np.float64)
    p1, p25, median, p75, p99 = np.percentile(array, (1, 25, 50, 75, 99))
    return {
        "p1": round(float(p1), 3),
        "p25": round(float(p25), 3),
        "median": round(float(median), 3),
        "p75": round(float(p75), 3),
        "p99": round(float(p99), 3),
    }


def summarise(cases: Sequence[CaseStats], *, source: str) -> dict[str, Any]:
    """The bundle's ``domain`` section from the statistics of training CTs.

    Parameters
    ----------
    cases
        :func:`case_stats` of each training CT (with its reference labels).
    source
        Which sample of the training cohort they are (recorded as is).

    Raises
    ------
    ValueError
        Without cases.
    """
    if not cases:
        raise ValueError("domain statistics need at least one case")
    pairs = [(c.sma_left_mm, c.sma_smv_mm) for c in cases if c.sma_left_mm is not None]
    return {
        "format_version": DOMAIN_FORMAT,
        "source": source,
        "cases": len(cases),
        "hu_levels": list(HU_LEVELS),
        "hu_percentiles": [_spread(c.hu_percentiles[i] for c in cases) for i in range(7)],
        "hu_bands": {n: _spread(c.band_fractions[n] for c in cases) for n, _, _ in HU_BANDS},
        "volumes_ml": {n: _spread(c.volumes_ml[n] for c in cases) for n in STRUCTURES},
        "present_in_all": [n for n in STRUCTURES if all(c.volumes_ml[n] > 0 for c in cases)],
        "max_components": {n: max(c.components[n] for c in cases) for n in STRUCTURES},
        "sma_left_mm": _spread(p[0] for p in pairs) if pairs else None,
        "sma_smv_mm": _spread(p[1] for p in pairs if p[1] is not None) if pairs else None,
        "spacing_mm": {
            "finest": [min(c.spacing_mm[0] for c in cases), max(c.spacing_mm[0] for c in cases)],
            "coarsest": [
                min(c.spacing_mm[1] for c in cases),
                max(c.spacing_mm[1] for c in cases),
            ],
        },
    }


@dataclass(frozen=True)
class DomainStats:
    """A bundle's ``domain`` section, validated (see :func:`summarise` for the fields)."""

    source: str
    cases: int
    hu_percentiles: tuple[Mapping[str, float], ...]
    volumes_ml: Mapping[str, Mapping[str, float]]
    present_in_all: tuple[str, ...]
    max_components: Mapping[str, int]
    sma_left_mm: Mapping[str, float] | None
    sma_smv_mm: Mapping[str, float] | None
    spacing_mm: Mapping[str, tuple[float, float]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DomainStats:
        """Read a ``domain`` section.

        Raises
        ------
        ValueError
            For another format version or a malformed section.
        """
        if not isinstance(data, Mapping):
            raise ValueError("the domain section is not an object")
        if str(data.get("format_version")) != DOMAIN_FORMAT:
            raise ValueError(f"domain format {data.get('format_version')!r} is not 1.0")
        try:
            if list(data["hu_levels"]) != list(HU_LEVELS):
                raise ValueError(f"domain hu_levels must be {list(HU_LEVELS)}")
            hu = tuple({k: float(v) for k, v in s.items()} for s in data["hu_percentiles"])
            volumes = {
                n: {k: float(v) for k, v in data["volumes_ml"][n].items()} for n in STRUCTURES
            }
            spacing = {k: (float(v[0]), float(v[1])) for k, v in data["spacing_mm"].items()}
            return cls(
                source=str(data["source"]),
                cases=int(data["cases"]),
                hu_percentiles=hu,
                volumes_ml=volumes,
                present_in_all=tuple(str(n) for n in data["present_in_all"]),
                max_components={n: int(data["max_components"][n]) for n in STRUCTURES},
                sma_left_mm=_optional(data.get("sma_left_mm")),
                sma_smv_mm=_optional(data.get("sma_smv_mm")),
                spacing_mm={"finest": spacing["finest"], "coarsest": spacing["coarsest"]},
            )
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"malformed domain section ({exc!r})") from exc


def _optional(section: Any) -> Mapping[str, float] | None:
    return None if section is None else {k: float(v) for k, v in section.items()}


@dataclass
class _Grading:
    """Reasons collected while checking, each with its grade."""

    reasons: list[tuple[int, str]]
    numbers: dict[str, float | None]

    def add(self, grade: int, reason: str) -> None:
        self.reasons.append((grade, reason))

    def result(self, source: str) -> DomainCheck:
        worst = max((g for g, _ in self.reasons), default=0)
        ordered = [r for _, r in sorted(self.reasons, key=lambda item: -item[0])]
        return DomainCheck(
            grade=_GRADES[worst],
            reasons=tuple(ordered),
            numbers={k: None if v is None else round(v, 3) for k, v in self.numbers.items()},
            source=source,
        )


def _check_intensity(stats: DomainStats, case: CaseStats, grading: _Grading) -> None:
    distances = []
    for level, value, spread in zip(
        HU_LEVELS, case.hu_percentiles, stats.hu_percentiles, strict=True
    ):
        if level not in GRADED_LEVELS:
            continue
        iqr = max(spread["p75"] - spread["p25"], MIN_IQR_HU)
        distances.append((abs(value - spread["median"]) / iqr, level, value, spread["median"]))
    distance, level, value, median = max(distances)
    grading.numbers["intensity_distance_iqr"] = distance
    grading.numbers["hu_median"] = case.hu_percentiles[HU_LEVELS.index(50)]
    if distance > INTENSITY_BORDERLINE:
        grade = 2 if distance > INTENSITY_OUT else 1
        grading.add(
            grade,
            f"CT intensities: HU percentile {level} is {value:.0f} HU, training median "
            f"{median:.0f} HU ({distance:.1f} training IQRs off)",
        )


def _check_volumes(stats: DomainStats, case: CaseStats, grading: _Grading) -> None:
    for name in STRUCTURES:
        volume, spread = case.volumes_ml[name], stats.volumes_ml[name]
        grading.numbers[f"{name}_ml"] = volume
        if volume == 0.0:
            if name in KEY_STRUCTURES and name in stats.present_in_all:
                grading.add(2, f"{name} not segmented (present in every training CT)")
            continue
        low, high = spread["p1"], spread["p99"]
        text = f"{name} {volume:.1f} mL outside the training range {low:.1f}-{high:.1f} mL"
        far = volume < low / 2 or volume > 2 * high
        if name == "pancreas" and (far or not 0.8 * low <= volume <= 1.25 * high):
            grading.add(2 if far else 1, text)
        elif far:
            grading.add(1, text)
        if case.components[name] > stats.max_components[name]:
            grading.add(
                1,
                f"{name} in {case.components[name]} pieces (at most "
                f"{stats.max_components[name]} in training)",
            )


def _check_sma_smv(stats: DomainStats, case: CaseStats, grading: _Grading) -> None:
    grading.numbers["sma_left_of_smv_mm"] = case.sma_left_mm
    grading.numbers["sma_smv_distance_mm"] = case.sma_smv_mm
    if case.sma_left_mm is None or case.sma_smv_mm is None:
        return
    if stats.sma_left_mm is not None and stats.sma_left_mm["p1"] > 0 > case.sma_left_mm:
        grading.add(
            1, f"SMA {-case.sma_left_mm:.0f} mm right of the SMV (left of it in every training CT)"
        )
    if stats.sma_smv_mm is not None:
        p99 = stats.sma_smv_mm["p99"]
        if case.sma_smv_mm > 2 * p99 + 10.0:
            grade = 2
        elif case.sma_smv_mm > 1.5 * p99:
            grade = 1
        else:
            return
        grading.add(
            grade,
            f"SMA {case.sma_smv_mm:.0f} mm from the SMV (training at most {p99:.0f} mm)",
        )


def _check_spacing(stats: DomainStats, case: CaseStats, grading: _Grading) -> None:
    finest, coarsest = case.spacing_mm
    grading.numbers["spacing_finest_mm"] = finest
    grading.numbers["spacing_coarsest_mm"] = coarsest
    for name, value in (("finest", finest), ("coarsest", coarsest)):
        low, high = stats.spacing_mm[name]
        if not 0.9 * low <= value <= 1.1 * high:
            grading.add(
                1,
                f"{name} voxel spacing {value:.2f} mm outside the training range "
                f"{low:.2f}-{high:.2f} mm",
            )


def check_domain(stats: DomainStats | None, case: CaseStats) -> DomainCheck:
    """Grade one CT against the bundle's training cohort (see the module docstring).

    Parameters
    ----------
    stats
        The bundle's ``domain`` section, ``None`` when it has none.
    case
        :func:`case_stats` of the CT and its segmentation.

    Returns
    -------
    DomainCheck
        ``not-available`` without statistics; otherwise the worst grade with every reason.
    """
    if stats is None:
        return DomainCheck(
            grade="not-available",
            reasons=("the bundle holds no training-domain statistics: domain not checked",),
        )
    grading = _Grading([], {})
    _check_intensity(stats, case, grading)
    _check_volumes(stats, case, grading)
    _check_sma_smv(stats, case, grading)
    _check_spacing(stats, case, grading)
    return grading.result(f"{stats.source} ({stats.cases} CTs)")
