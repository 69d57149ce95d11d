"""Cohort planning: options, class allocation, per-patient plans and rendering.

A plan is cheap (no voxels): class, tumor location, contact angles, NCCN label, clinical
variables, acquisition parameters and UIDs. Every random choice for patient ``i`` of seed ``s``
comes from streams spawned from ``SeedSequence(s, spawn_key=(i, purpose))``, so a patient is
reproducible on its own and independent of the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

import numpy as np

from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.nccn import nccn_rule_category
from phantom._anatomy import Anatomy, build_anatomy
from phantom._clinical import CA199Condition, clinical_truth, with_missingness
from phantom._dicom_writer import TRANSFER_SYNTAXES, instance_uid
from phantom._geometry import Grid
from phantom._lesions import LesionMix
from phantom._render import PhantomScan, hu_image, paint_anatomy
from phantom._tumor import (
    KEY_VESSELS,
    TumorDesign,
    design_tumor,
    sample_angles,
    sample_location,
)
from phantom._variation import (
    DEFAULT_TUMOR_FREE_FRACTION,
    VARIATIONS,
    FixedAcquisition,
    Variation,
    allocate_tumor_free,
    draw_variation,
)
from phantom._variation_render import VariedInputs, VariedStreams, render_varied

POSITIONS: tuple[str, ...] = ("HFS", "FFS", "random")
_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
# A rare layout leaves some cuff no clear stretch of vessel; a fresh draw almost always does.
_LAYOUT_ATTEMPTS = 8


class _Stream(IntEnum):
    """A patient's independent random streams; the value is part of the stream's seed."""

    PLAN = 0
    CLINICAL = 1
    ANATOMY = 2
    IMAGE = 3
    FILES = 4
    HEADER = 5
    BOARD = 6
    VARIATION = 7
    LESION = 8
    LESION_LAYOUT = 9


def _check_class_counts(counts: tuple[float, ...]) -> None:
    valid = len(counts) == 3 and all(math.isfinite(c) and c >= 0 for c in counts)
    if not valid or sum(counts) <= 0:
        raise ValueError(f"class counts must be three non-negative numbers, not all 0: {counts}")


@dataclass(frozen=True)
class PhantomOptions:
    """How a cohort is generated.

    Parameters
    ----------
    class_counts
        Reference counts (or proportions) of NCCN classes 0, 1, 2; patients' target classes are
        allocated proportionally (METHOD.md's cohort: 85, 47, 27).
    label_noise
        Probability that a patient's NCCN label is flipped to another class.
    biological_borderline
        Fraction of the borderline patients whose tumor is anatomically resectable and who are
        borderline on biology alone: CA 19-9 above
        :data:`~phantom.BIOLOGICAL_CA19_9` U/mL (Isaji et al., International
        consensus on borderline resectable PDAC 2017, "BR-B"; cited by METHOD.md's paper). The
        label is then the tumor board's category, which the CT alone cannot tell from
        resectable, and resectable patients have CA 19-9 at or below the threshold (else they
        would be BR-B). 0 gives purely anatomical labels and the cohorts of earlier versions.
    fov_mm
        Scanned field of view ``(x, y, z)`` in mm.
    pixel_spacing
        Fixed in-plane spacing in mm, or ``None`` for a random 0.6-0.9 mm per patient.
    slice_thickness
        Fixed slice thickness (= spacing) in mm, or ``None`` for a random 1-3 mm per patient.
    position
        ``"HFS"``, ``"FFS"`` or ``"random"`` (either, per patient).
    shuffle
        Write each series' files in a shuffled file-name order.
    transfer_syntax
        One of :data:`TRANSFER_SYNTAXES`. ``jpeg2000`` needs pylibjpeg-openjpeg, ``jpegls``
        needs pyjpegls, ``rle`` uses pydicom's own encoder and ``jpeg-lossless`` the phantom's
        (:mod:`phantom._jpeg_lossless`); a missing encoder is reported by
        :func:`check_encoder` as a ``ValueError`` before anything is written.
    variation
        ``"standard"`` (the generator of earlier versions, byte for byte), ``"wide"`` (per
        patient scanner, contrast phase, body, tumor look and tumor-free patients drawn:
        :mod:`phantom._variation`) or ``"synth"`` (wide, with label-wise random HU). In the
        wide modes ``fov_mm`` and ``position`` left at their defaults are drawn per patient
        (``"HFS"`` and ``"random"`` both mean drawn); other values, and ``pixel_spacing`` and
        ``slice_thickness`` when given, fix them.
    tumor_free_fraction
        Fraction of tumor-free patients (wide modes only; ``None``: 0.2 there, 0 in the
        standard mode).
    pdac_prevalence
        Fraction of PDAC patients (wide modes only): ``1 - tumor_free_fraction``, give one of
        the two. A detection cohort wants about 0.3
        (:data:`~phantom._lesions.PANORAMA_PDAC_PREVALENCE`); the default 0.8 serves staging.
    lesion_mix
        Shares of small and iso-attenuating PDAC, of the negative kinds and of incidental
        cysts (wide modes only; ``None``: :class:`~phantom._lesions.LesionMix`'s defaults).

    Raises
    ------
    ValueError
        On any out-of-range value.
    """

    class_counts: tuple[float, float, float] = (85.0, 47.0, 27.0)
    label_noise: float = 0.05
    biological_borderline: float = 0.25
    fov_mm: tuple[float, float, float] = (300.0, 300.0, 200.0)
    pixel_spacing: float | None = None
    slice_thickness: float | None = None
    position: str = "HFS"
    shuffle: bool = False
    transfer_syntax: str = "explicit"
    variation: str = "standard"
    tumor_free_fraction: float | None = None
    pdac_prevalence: float | None = None
    lesion_mix: LesionMix | None = None

    def __post_init__(self) -> None:
        _check_class_counts(self.class_counts)
        self._check_variation()
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValueError(f"label noise must be within 0-1, got {self.label_noise}")
        if not 0.0 <= self.biological_borderline <= 1.0:
            fraction = self.biological_borderline
            raise ValueError(f"biological borderline fraction must be within 0-1, got {fraction}")
        if len(self.fov_mm) != 3 or any(not 20.0 <= f <= 1000.0 for f in self.fov_mm):
            raise ValueError(f"field of view must be three sizes of 20-1000 mm, got {self.fov_mm}")
        if self.pixel_spacing is not None and not 0.2 <= self.pixel_spacing <= 5.0:
            raise ValueError(f"pixel spacing must be 0.2-5 mm, got {self.pixel_spacing}")
        if self.slice_thickness is not None and not 0.5 <= self.slice_thickness <= 10.0:
            raise ValueError(f"slice thickness must be 0.5-10 mm, got {self.slice_thickness}")
        if self.position not in POSITIONS:
            raise ValueError(
                f"position must be one of {', '.join(POSITIONS)}, got {self.position!r}"
            )
        if self.transfer_syntax not in TRANSFER_SYNTAXES:
            names = ", ".join(TRANSFER_SYNTAXES)
            raise ValueError(
                f"transfer syntax must be one of {names}, got {self.transfer_syntax!r}"
            )

    def _check_variation(self) -> None:
        if self.variation not in VARIATIONS:
            names = ", ".join(VARIATIONS)
            raise ValueError(f"variation must be one of {names}, got {self.variation!r}")
        fraction, prevalence = self.tumor_free_fraction, self.pdac_prevalence
        wide_only = (fraction, prevalence, self.lesion_mix)
        if self.variation == "standard" and any(v is not None for v in wide_only):
            raise ValueError("tumor-free patients and lesion mixes need a wide variation")
        if fraction is not None and prevalence is not None:
            raise ValueError("give the tumor-free fraction or the PDAC prevalence, not both")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError(f"tumor-free fraction must be within 0-1, got {fraction}")
        if prevalence is not None and not 0.0 <= prevalence <= 1.0:
            raise ValueError(f"PDAC prevalence must be within 0-1, got {prevalence}")

    @property
    def wide(self) -> bool:
        """Whether scanner, body and tumor are drawn per patient (``"wide"`` or ``"synth"``)."""
        return self.variation != "standard"

    @property
    def tumor_free(self) -> float:
        """The fraction of tumor-free patients in effect."""
        if not self.wide:
            return 0.0
        if self.pdac_prevalence is not None:
            return round(1.0 - self.pdac_prevalence, 12)
        fraction = self.tumor_free_fraction
        return DEFAULT_TUMOR_FREE_FRACTION if fraction is None else fraction

    @property
    def mix(self) -> LesionMix:
        """The lesion mix in effect (wide modes)."""
        return self.lesion_mix or LesionMix()

    def fixed_acquisition(self) -> FixedAcquisition:
        """What the wide modes keep fixed: given spacings, a non-default FOV or position."""
        default = PhantomOptions()
        fov = None if self.fov_mm == default.fov_mm else self.fov_mm
        position = None if self.position in ("HFS", "random") else self.position
        return FixedAcquisition(self.pixel_spacing, self.slice_thickness, fov, position)

    def digest(self) -> str:
        """Hash of the options that change voxel content (UIDs differ when content does)."""
        fields: tuple[object, ...] = (
            self.class_counts,
            self.label_noise,
            self.fov_mm,
            self.pixel_spacing,
            self.slice_thickness,
            self.position,
        )
        if self.biological_borderline:
            # Left out at 0, so purely anatomical cohorts keep the UIDs of earlier versions.
            fields = (*fields, self.biological_borderline)
        if self.wide:
            # Left out in the standard mode, so its UIDs stay those of earlier versions.
            fields = (*fields, self.variation, self.tumor_free, self.mix)
        text = repr(fields)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PatientPlan:
    """Everything decided about one phantom patient before any voxel is drawn.

    ``angles`` are the constructed contact angles (degrees) by vessel key; ``rule_category``
    is :func:`nccn_rule_category` of them (= ``target_class``, or 0 where
    ``biological_borderline``); ``nccn_label`` is the tumor board's category (the rule's, or
    1 where biologically borderline) after label noise. ``clinical`` has missing values blanked;
    ``clinical_truth`` is complete (apart from not-applicable values).
    """

    index: int
    seed: int
    patient_id: str
    target_class: int
    tumor_location: str
    angles: Mapping[str, float]
    rule_category: int
    nccn_label: int
    label_noise_flipped: bool
    biological_borderline: bool
    clinical: ClinicalVariables
    clinical_truth: Mapping[str, float]
    pixel_spacing: float
    slice_thickness: float
    patient_position: str
    fov_mm: tuple[float, float, float]
    fov_center: tuple[float, float, float]
    acquired: dt.datetime
    uid_entropy: tuple[str, ...]
    variation: Variation | None = None

    @property
    def has_tumor(self) -> bool:
        """Whether the patient has a tumor (always, in the standard mode)."""
        return self.variation is None or self.variation.tumor is not None

    @property
    def study_uid(self) -> str:
        """Study Instance UID."""
        return instance_uid(self.uid_entropy, "study")

    @property
    def series_uid(self) -> str:
        """Series Instance UID."""
        return instance_uid(self.uid_entropy, "series")

    @property
    def frame_of_reference_uid(self) -> str:
        """Frame of Reference UID."""
        return instance_uid(self.uid_entropy, "frame")


def stream(seed: int, index: int, purpose: int) -> np.random.Generator:
    """The random stream of one purpose for patient ``index`` of cohort ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, purpose)))


def allocate_classes(n: int, class_counts: tuple[float, float, float], seed: int) -> list[int]:
    """Target class of each of ``n`` patients, stratified by ``class_counts``.

    Counts are allocated by largest remainder (ties to the lower class), so any ``n`` gets the
    reference proportions as closely as integers allow; the order is a seeded permutation.

    Raises
    ------
    ValueError
        If ``n < 1`` or the counts are invalid.
    """
    if n < 1:
        raise ValueError(f"number of patients must be at least 1, got {n}")
    _check_class_counts(class_counts)
    total = float(sum(class_counts))
    quotas = [n * c / total for c in class_counts]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(3), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    classes = np.repeat(np.arange(3), counts)
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31,))).permutation(n)
    return [int(c) for c in classes[order]]


def _flip(label: int, noise: float, rng: np.random.Generator) -> tuple[int, bool]:
    if rng.random() < noise:
        others = [c for c in range(3) if c != label]
        return int(others[int(rng.integers(2))]), True
    return label, False


def _ca19_9_condition(target: int, biological: bool, fraction: float) -> CA199Condition:
    """Which side of the BR-B threshold the patient's baseline CA 19-9 must lie on."""
    if biological:
        return CA199Condition.ABOVE
    if fraction > 0 and target == 0:
        return CA199Condition.AT_MOST
    return CA199Condition.ANY


def plan_patient(seed: int, index: int, target: int | None, options: PhantomOptions) -> PatientPlan:
    """Plan one patient (no voxels).

    Parameters
    ----------
    seed
        Cohort seed.
    index
        0-based patient index; the patient ID is ``PHANTOM-{index + 1:04d}``.
    target
        NCCN class the contact angles are drawn for (0, 1 or 2), or ``None`` for a tumor-free
        patient (wide modes only).
    options
        Cohort options (label noise, acquisition settings, variation).

    Returns
    -------
    PatientPlan
        The same plan for the same arguments, independent of any other patient.

    Raises
    ------
    ValueError
        If ``target`` is ``None`` in the standard mode.
    """
    if options.wide:
        return _plan_varied(seed, index, target, options)
    if target is None:
        raise ValueError("tumor-free patients need a wide variation (wide or synth)")
    rng = stream(seed, index, _Stream.PLAN)
    location = sample_location(target, rng)
    # A stream of its own, so that cohorts without biological borderline keep their draws.
    biological = bool(
        target == 1 and stream(seed, index, _Stream.BOARD).random() < options.biological_borderline
    )
    angles = sample_angles(0 if biological else target, location, rng)
    rule = nccn_rule_category(angles)
    label, flipped = _flip(1 if biological else rule, options.label_noise, rng)
    # Every draw happens whatever the options, so fixing one option leaves the others' draws.
    spacing = round(float(rng.uniform(0.6, 0.9)), 4)
    thickness = float(rng.choice(_THICKNESSES))
    position = str(rng.choice(["HFS", "FFS"]))
    spacing = options.pixel_spacing or spacing
    thickness = options.slice_thickness or thickness
    position = position if options.position == "random" else options.position
    center = (round(float(rng.uniform(-5, 5)), 1), round(float(rng.uniform(-5, 5)), 1),
              round(float(rng.uniform(-350, 50)), 1))  # fmt: skip
    acquired = dt.datetime(2021, 1, 4, 7, 30) + dt.timedelta(
        days=int(rng.integers(0, 1400)), minutes=int(rng.integers(0, 600))
    )
    crng = stream(seed, index, _Stream.CLINICAL)
    ca19_9 = _ca19_9_condition(target, biological, options.biological_borderline)
    truth = clinical_truth(target, location, crng, ca19_9)
    return PatientPlan(
        index=index,
        seed=seed,
        patient_id=f"PHANTOM-{index + 1:04d}",
        target_class=target,
        tumor_location=location,
        angles=MappingProxyType(angles),
        rule_category=rule,
        nccn_label=label,
        label_noise_flipped=flipped,
        biological_borderline=biological,
        clinical=with_missingness(truth, crng),
        clinical_truth=MappingProxyType(truth),
        pixel_spacing=spacing,
        slice_thickness=thickness,
        patient_position=position,
        fov_mm=options.fov_mm,
        fov_center=center,
        acquired=acquired,
        uid_entropy=(str(seed), str(index), options.digest()),
    )


def plan_cohort(n: int, seed: int, options: PhantomOptions | None = None) -> list[PatientPlan]:
    """Plans of ``n`` patients: classes, angles, labels, clinical rows, UIDs (no images).

    Parameters
    ----------
    n
        Number of patients (at least 1); target classes are allocated by
        :func:`allocate_classes`, so a patient's class depends on ``n``.
    seed
        Cohort seed.
    options
        Cohort options (defaults: :class:`PhantomOptions`).

    Raises
    ------
    ValueError
        If ``n < 1``.
    """
    opts = options or PhantomOptions()
    classes = cohort_targets(n, seed, opts)
    return [plan_patient(seed, i, c, opts) for i, c in enumerate(classes)]


def cohort_targets(n: int, seed: int, options: PhantomOptions) -> list[int | None]:
    """Target class of each patient, ``None`` for the tumor-free ones (wide modes).

    The standard mode is :func:`allocate_classes`. The wide modes choose
    ``round(n * tumor_free)`` tumor-free patients by a seeded permutation and allocate the
    classes among the others.

    Raises
    ------
    ValueError
        If ``n < 1``.
    """
    if not options.wide:
        return list(allocate_classes(n, options.class_counts, seed))
    if n < 1:
        raise ValueError(f"number of patients must be at least 1, got {n}")
    free = allocate_tumor_free(n, options.tumor_free, seed)
    bearing = n - len(free)
    classes = iter(allocate_classes(bearing, options.class_counts, seed) if bearing else [])
    return [None if i in free else next(classes) for i in range(n)]


def _varied_angles(
    variation: Variation, target: int, biological: bool, rng: np.random.Generator
) -> dict[str, float]:
    look = variation.tumor
    assert look is not None
    angles = sample_angles(0 if biological else target, look.angle_location, rng)
    if look.site == "tail" and target == 0:
        # A resectable tail tumor lies far from the portal-mesenteric veins: no contact.
        angles = dict.fromkeys(angles, 0.0)
    for merged, into in _SITE_CONTACTS.get(look.site, ()):
        # The vessels within reach of the site take the contact; the rule (the largest
        # arterial and venous angle) is unchanged.
        angles[into] = max(angles[v] for v in merged)
        angles.update({v: 0.0 for v in merged if v != into})
    return angles


# Uncinate tumors reach the SMA and SMV behind which the process lies; tail tumors the
# celiac trunk (along the splenic artery) and the portal confluence (along the splenic vein).
_SITE_CONTACTS: Mapping[str, tuple[tuple[tuple[str, ...], str], ...]] = MappingProxyType({
    "uncinate": ((("SMA", "CHA"), "SMA"), (("SMV", "PV"), "SMV")),
    "tail": ((("SMA", "CA", "CHA"), "CA"), (("SMV", "PV"), "PV")),
})  # fmt: skip


def _plan_varied(seed: int, index: int, target: int | None, options: PhantomOptions) -> PatientPlan:
    """A wide-mode plan: the variation from its own stream, then the tumor's truth."""
    variation = draw_variation(
        stream(seed, index, _Stream.VARIATION), options.variation, target,
        options.fixed_acquisition(), options.mix, stream(seed, index, _Stream.LESION),
        options.class_counts,
    )  # fmt: skip
    rng = stream(seed, index, _Stream.PLAN)
    crng = stream(seed, index, _Stream.CLINICAL)
    look = variation.tumor
    if look is None or target is None:
        angles = dict.fromkeys(KEY_VESSELS, 0.0)
        rule, label, flipped, biological, location = 0, 0, False, False, "none"
        truth = clinical_truth(0, "none", crng, tumor=False)
    else:
        board = stream(seed, index, _Stream.BOARD).random()
        biological = bool(target == 1 and board < options.biological_borderline)
        angles = _varied_angles(variation, target, biological, rng)
        rule = nccn_rule_category(angles)
        label, flipped = _flip(1 if biological else rule, options.label_noise, rng)
        location = look.site
        ca19_9 = _ca19_9_condition(target, biological, options.biological_borderline)
        truth = clinical_truth(target, look.angle_location, crng, ca19_9)
    acq = variation.acquisition
    center = (round(float(rng.uniform(-20, 20)), 1), round(float(rng.uniform(-20, 20)), 1),
              round(float(rng.uniform(-350, 50)), 1))  # fmt: skip
    acquired = dt.datetime(2021, 1, 4, 7, 30) + dt.timedelta(
        days=int(rng.integers(0, 1400)), minutes=int(rng.integers(0, 600))
    )
    return PatientPlan(
        index=index,
        seed=seed,
        patient_id=f"PHANTOM-{index + 1:04d}",
        target_class=0 if target is None else target,
        tumor_location=location,
        angles=MappingProxyType(angles),
        rule_category=rule,
        nccn_label=label,
        label_noise_flipped=flipped,
        biological_borderline=biological,
        clinical=with_missingness(truth, crng),
        clinical_truth=MappingProxyType(truth),
        pixel_spacing=acq.pixel_spacing,
        slice_thickness=acq.slice_thickness,
        patient_position=acq.patient_position,
        fov_mm=acq.fov_mm,
        fov_center=center,
        acquired=acquired,
        uid_entropy=(str(seed), str(index), options.digest()),
        variation=variation,
    )


def make_grid(plan: PatientPlan) -> Grid:
    """The voxel grid of a plan: FOV centred on ``fov_center``, positions rounded to 0.1 um."""
    ps, st = plan.pixel_spacing, plan.slice_thickness
    nx = max(1, round(plan.fov_mm[0] / ps))
    ny = max(1, round(plan.fov_mm[1] / ps))
    nz = max(1, round(plan.fov_mm[2] / st))
    spacing = (ps, ps, st)
    origin = tuple(
        round(c - s * (n - 1) / 2.0, 4)
        for c, s, n in zip(plan.fov_center, spacing, (nx, ny, nz), strict=True)
    )
    return Grid((nz, ny, nx), spacing, (origin[0], origin[1], origin[2]))


def _layout(plan: PatientPlan, grid: Grid, rng: np.random.Generator) -> tuple[Anatomy, TumorDesign]:
    """Anatomy and tumor; redrawn (deterministically) while some cuff has no clear stretch."""
    bmi = float(plan.clinical_truth["bmi"])
    for _ in range(_LAYOUT_ATTEMPTS - 1):
        anatomy = build_anatomy(rng, grid.center(), bmi)
        tumor = design_tumor(anatomy, plan.tumor_location, plan.angles, plan.target_class, rng)
        if tumor.clear:
            return anatomy, tumor
    anatomy = build_anatomy(rng, grid.center(), bmi)
    return anatomy, design_tumor(anatomy, plan.tumor_location, plan.angles, plan.target_class, rng)


def render_patient(plan: PatientPlan) -> PhantomScan:
    """Draw the CT, labels and tissue map of one planned patient.

    Parameters
    ----------
    plan
        The patient, from :func:`plan_cohort` or :func:`plan_patient`.

    Returns
    -------
    PhantomScan
        HU image, labels, tissue map and ground-truth geometry; identical for identical plans.
    """
    grid = make_grid(plan)
    rng = stream(plan.seed, plan.index, _Stream.ANATOMY)
    if plan.variation is not None:
        image_rng = stream(plan.seed, plan.index, _Stream.IMAGE)
        layout_rng = stream(plan.seed, plan.index, _Stream.LESION_LAYOUT)
        rngs = VariedStreams(rng, image_rng, layout_rng)
        return render_varied(plan_inputs(plan), grid, plan.variation, rngs)
    anatomy, tumor = _layout(plan, grid, rng)
    materials, labels = paint_anatomy(grid, anatomy, tumor, plan.tumor_location, rng)
    image_rng = stream(plan.seed, plan.index, _Stream.IMAGE)
    hu = hu_image(grid, materials, anatomy, tumor, plan.slice_thickness, image_rng)
    tumor_voxels = int(np.count_nonzero(labels == label_by_name("tumor").value))
    return PhantomScan(
        grid=grid,
        hu=hu,
        labels=labels,
        materials=materials,
        vessels=MappingProxyType(dict(anatomy.vessels)),
        tumor=tumor,
        tumor_volume_ml=round(tumor_voxels * grid.voxel_volume_ml, 3),
    )


def plan_inputs(plan: PatientPlan) -> VariedInputs:
    """What the wide-mode renderer needs of a plan."""
    return VariedInputs(
        bmi=float(plan.clinical_truth["bmi"]),
        location=plan.tumor_location,
        angles=plan.angles,
        target=plan.target_class,
    )


def files_stream(plan: PatientPlan) -> np.random.Generator:
    """The random stream for file naming of one patient."""
    return stream(plan.seed, plan.index, _Stream.FILES)


def header_stream(plan: PatientPlan) -> np.random.Generator:
    """The random stream for DICOM-only patient attributes (height, birthday)."""
    return stream(plan.seed, plan.index, _Stream.HEADER)
