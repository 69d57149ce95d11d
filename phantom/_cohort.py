"""Cohort planning: class allocation, per-patient plans and rendering.

A plan is cheap (no voxels): class, tumor location, contact angles, NCCN label, clinical
variables, acquisition parameters and UIDs. Every random choice for patient ``i`` of seed ``s``
comes from streams spawned from ``SeedSequence(s, spawn_key=(i, purpose))``, so a patient is
reproducible on its own and independent of the others.
"""

from __future__ import annotations

import datetime as dt
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
from phantom._dicom_writer import instance_uid
from phantom._geometry import Grid
from phantom._lymph_nodes import STANDARD_DIAMETER_MM, NodePlan, plan_nodes
from phantom._node_layout import lymph_node_scene
from phantom._options import PhantomOptions, check_class_counts
from phantom._render import PhantomScan, hu_image, paint_anatomy
from phantom._tumor import (
    KEY_VESSELS,
    TumorDesign,
    design_tumor,
    sample_angles,
    sample_location,
)
from phantom._variation import (
    Variation,
    allocate_tumor_free,
    draw_variation,
)
from phantom._variation_render import VariedInputs, VariedStreams, render_varied

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
    NODES = 10
    NODE_LAYOUT = 11
    FOLLOW_UP = 12


@dataclass(frozen=True)
class PatientPlan:
    """Everything decided about one phantom patient before any voxel is drawn.

    ``angles`` are the constructed contact angles (degrees) by vessel key; ``rule_category``
    is :func:`nccn_rule_category` of them (= ``target_class``, or 0 where
    ``biological_borderline``); ``nccn_label`` is the tumor board's category (the rule's, or
    1 where biologically borderline) after label noise. ``clinical`` has missing values blanked;
    ``clinical_truth`` is complete (apart from not-applicable values). ``nodes`` are the
    planned lymph nodes and N status (``None``: no nodes drawn, :mod:`phantom._lymph_nodes`).
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
    nodes: NodePlan | None = None

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
    check_class_counts(class_counts)
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
        nodes=_nodes(seed, index, options, location, STANDARD_DIAMETER_MM[target], rule),
    )


def _nodes(
    seed: int, index: int, options: PhantomOptions, site: str | None, diameter: float, rule: int
) -> NodePlan | None:
    """The patient's planned nodes from their own stream (``None`` where nodes are off)."""
    if not options.nodes_on:
        return None
    return plan_nodes(stream(seed, index, _Stream.NODES), site, diameter, rule)


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
    site = look.site if look is not None and target is not None else None
    diameter = look.diameter_mm if look is not None else 0.0
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
        nodes=_nodes(seed, index, options, site, diameter, rule),
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
    node_rng = stream(plan.seed, plan.index, _Stream.NODE_LAYOUT)
    if plan.variation is not None:
        image_rng = stream(plan.seed, plan.index, _Stream.IMAGE)
        layout_rng = stream(plan.seed, plan.index, _Stream.LESION_LAYOUT)
        rngs = VariedStreams(rng, image_rng, layout_rng, node_rng)
        return render_varied(plan_inputs(plan), grid, plan.variation, rngs)
    anatomy, tumor = _layout(plan, grid, rng)
    materials, labels = paint_anatomy(grid, anatomy, tumor, plan.tumor_location, rng)
    organs, layout = None, None
    if plan.nodes is not None:
        organs, layout = lymph_node_scene(grid, materials, labels, anatomy, plan.nodes, node_rng)
    image_rng = stream(plan.seed, plan.index, _Stream.IMAGE)
    shade = layout.shade if layout is not None else None
    hu = hu_image(grid, materials, anatomy, tumor, plan.slice_thickness, image_rng, shade)
    tumor_voxels = int(np.count_nonzero(labels == label_by_name("tumor").value))
    return PhantomScan(
        grid=grid,
        hu=hu,
        labels=labels,
        materials=materials,
        vessels=MappingProxyType(dict(anatomy.vessels)),
        tumor=tumor,
        tumor_volume_ml=round(tumor_voxels * grid.voxel_volume_ml, 3),
        organs=organs,
        node_mask=layout.mask if layout is not None else None,
        nodes=layout.nodes if layout is not None else (),
    )


def plan_inputs(plan: PatientPlan) -> VariedInputs:
    """What the wide-mode renderer needs of a plan."""
    return VariedInputs(
        bmi=float(plan.clinical_truth["bmi"]),
        location=plan.tumor_location,
        angles=plan.angles,
        target=plan.target_class,
        nodes=plan.nodes,
    )


def files_stream(plan: PatientPlan) -> np.random.Generator:
    """The random stream for file naming of one patient."""
    return stream(plan.seed, plan.index, _Stream.FILES)


def follow_up_stream(plan: PatientPlan) -> np.random.Generator:
    """The random stream for the follow-up draw of one patient (:mod:`phantom._follow_up`)."""
    return stream(plan.seed, plan.index, _Stream.FOLLOW_UP)


def header_stream(plan: PatientPlan) -> np.random.Generator:
    """The random stream for DICOM-only patient attributes (height, birthday)."""
    return stream(plan.seed, plan.index, _Stream.HEADER)
