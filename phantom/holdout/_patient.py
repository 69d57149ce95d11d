"""One held-out patient: random streams, anatomy, tumor, grid, render and truth.

Every patient draws from its own streams (``SeedSequence((seed, index, stream))``), so a
patient is the same whatever the cohort size or the number of worker processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from pancreas_contracts.lymph_nodes import NodeTruth
from pancreas_contracts.nccn import nccn_rule_category
from pancreas_contracts.result import KEY_VESSELS
from phantom.holdout._body import Anatomy, draw_anatomy, vertebral_angle
from phantom.holdout._lesion import TumorDesign, contact_angles, design_tumor
from phantom.holdout._node_place import place_nodes
from phantom.holdout._nodes import (
    draw_extra_structures,
    organ_lookup,
    plan_nodes,
    station_sites,
)
from phantom.holdout._raster import (
    Frame,
    RenderedScan,
    ScanGrid,
    Scene,
    build_scene,
    draw_hu,
    finish,
    paint,
)
from phantom.holdout._sdf import rotation_xyz

__all__ = ["HoldoutOptions", "HoldoutPatient", "make_patient", "stream"]

_TUMOR_LABEL = 2
# New streams go at the end: a stream's seed is its position here.
_STREAMS = (
    "cohort", "anatomy", "tumor", "render", "noise", "clinical", "files", "registry", "follow_up",
    "nodes", "node_layout",
)  # fmt: skip


@dataclass(frozen=True)
class HoldoutOptions:
    """Scan geometry and cohort mix of the held-out generator.

    Parameters
    ----------
    matrix
        Rows and columns of each slice.
    pixel_spacing, slice_thickness
        In-plane spacing and slice spacing (= thickness) in mm.
    slices
        Number of slices.
    tumor_free_fraction
        Share of patients without tumor (rounded to whole patients).
    position, transfer_syntax
        ``"HFS"``, ``"FFS"`` or ``"random"``; ``"uncompressed"``, ``"rle"`` or ``"random"``.
    shuffle
        Random file names (their order says nothing about the slice order).
    lymph_nodes
        Draw lymph nodes, the oesophagus and the left gastric artery, and write
        ``organs.nii.gz``, ``nodes.nii.gz`` and ``lymph_nodes.json`` (their draws come from
        streams of their own: off, the scan is the one drawn before nodes existed).
    """

    matrix: int = 384
    pixel_spacing: float = 0.78
    slice_thickness: float = 2.0
    slices: int = 80
    tumor_free_fraction: float = 0.2
    position: str = "random"
    transfer_syntax: str = "random"
    shuffle: bool = True
    lymph_nodes: bool = True

    def __post_init__(self) -> None:
        if self.matrix < 16 or self.slices < 4:
            raise ValueError("need at least 16 x 16 pixels and 4 slices")
        if not (0.3 <= self.pixel_spacing <= 4.0 and 0.5 <= self.slice_thickness <= 6.0):
            raise ValueError("pixel spacing must be 0.3-4 mm and slices 0.5-6 mm")
        if not 0.0 <= self.tumor_free_fraction <= 1.0:
            raise ValueError("tumor_free_fraction must be within 0-1")
        if self.position not in ("HFS", "FFS", "random"):
            raise ValueError(f"position must be HFS, FFS or random, got {self.position!r}")
        if self.transfer_syntax not in ("uncompressed", "rle", "random"):
            raise ValueError(f"unknown transfer syntax {self.transfer_syntax!r}")


def stream(seed: int, index: int, name: str) -> np.random.Generator:
    """The named random stream of patient ``index`` (``index`` -1: the cohort's own)."""
    return np.random.default_rng(np.random.SeedSequence((seed, index + 1, _STREAMS.index(name))))


@dataclass(frozen=True, eq=False)
class HoldoutPatient:
    """A rendered patient and its truth.

    ``angles``, ``rule_category`` and ``tumor_contrast_hu`` (tumor minus pancreas HU, before
    noise and partial volume) are ``None`` for a tumor-free patient; ``nodes`` is ``None`` with
    lymph nodes off (``scan.organs`` and ``scan.nodes`` too).
    """

    index: int
    patient_id: str
    anatomy: Anatomy
    tumor: TumorDesign | None
    scene: Scene
    frame: Frame
    scan: RenderedScan
    position: str
    transfer_syntax: str
    angles: Mapping[str, float] | None
    rule_category: int | None
    tumor_contrast_hu: float | None
    nodes: tuple[NodeTruth, ...] | None = None

    @property
    def location(self) -> str:
        """Tumor site, ``"none"`` without tumor."""
        return "none" if self.tumor is None else self.tumor.site


def _grid(anatomy: Anatomy, frame: Frame, options: HoldoutOptions, rng: np.random.Generator
          ) -> ScanGrid:  # fmt: skip
    """A grid centred near the pancreas (in z) and the body (in-plane)."""
    conf = anatomy.vessels["smv"].points[-1]
    centre_body = np.array(
        [rng.uniform(-12, 12), rng.uniform(0, 20), conf[2] - 8.0 + rng.uniform(-8, 8)]
    )
    centre = frame.to_world(centre_body[None, :])[0]
    n, s, dz = options.matrix, options.pixel_spacing, options.slice_thickness
    origin = (
        round(float(centre[0] - (n - 1) / 2 * s), 3),
        round(float(centre[1] - (n - 1) / 2 * s), 3),
        round(float(centre[2] - (options.slices - 1) / 2 * dz), 3),
    )
    return ScanGrid(origin, (s, s, dz), (options.slices, n, n))


def _choice(rng: np.random.Generator, option: str, values: tuple[str, str]) -> str:
    return str(values[int(rng.integers(2))]) if option == "random" else option


def make_patient(
    seed: int, index: int, tumor_target: int | None, options: HoldoutOptions
) -> HoldoutPatient:
    """Draw and render patient ``index`` of the cohort ``seed``.

    Parameters
    ----------
    tumor_target
        Intended NCCN category of the tumor, ``None`` for a tumor-free patient.
    """
    anatomy = draw_anatomy(stream(seed, index, "anatomy"))
    tumor_rng = stream(seed, index, "tumor")
    tumor = None if tumor_target is None else design_tumor(anatomy, tumor_target, tumor_rng)
    obstructed = tumor is not None and tumor.site in ("head", "uncinate")
    duct = float(tumor_rng.uniform(2.5, 4.0) if obstructed else tumor_rng.uniform(1.2, 1.8))
    bile = float(tumor_rng.uniform(5.0, 6.5) if obstructed else tumor_rng.uniform(2.5, 3.5))
    layout = stream(seed, index, "node_layout") if options.lymph_nodes else None
    extra = None if layout is None else draw_extra_structures(anatomy, layout)
    scene = build_scene(anatomy, tumor, duct, bile, () if extra is None else extra.layers)
    rng = stream(seed, index, "render")
    yaw = vertebral_angle(rng)
    offset = np.array([rng.uniform(-30, 30), rng.uniform(-40, 40), rng.uniform(-600, -100)])
    frame = Frame(rotation_xyz((0.0, 0.0, yaw)), offset)
    grid = _grid(anatomy, frame, options, rng)
    position = _choice(rng, options.position, ("HFS", "FFS"))
    syntax = _choice(rng, options.transfer_syntax, ("uncompressed", "rle"))
    hu_table = draw_hu(rng, "hypo" if tumor is None else tumor.attenuation)
    noise = (float(rng.uniform(8.0, 18.0)), float(rng.uniform(0.15, 0.35)))
    painted = paint(scene, hu_table, frame, grid)
    angles = None if tumor is None else contact_angles(tumor, scene.label_at, _TUMOR_LABEL)
    category = None if angles is None else nccn_rule_category(angles)
    assert angles is None or set(angles) == set(KEY_VESSELS)
    nodes = organs = node_map = None
    if extra is not None and layout is not None:
        organs = organ_lookup(scene, anatomy, extra)[painted.owner]
        touched = 0 if angles is None else sum(a > 0.0 for a in angles.values())
        designs = plan_nodes(
            stream(seed, index, "nodes"),
            None if tumor is None else tumor.site,
            0.0 if tumor is None else tumor.diameter_mm,
            touched,
        )
        fat_owner = anatomy.parts["visceral_fat"][0] + 1
        sites = station_sites(anatomy, extra)
        node_map, nodes = place_nodes(painted, organs, frame, designs, sites, fat_owner, layout)
    scan = finish(painted, noise, stream(seed, index, "noise"))
    scan = replace(scan, organs=organs, nodes=node_map)
    return HoldoutPatient(
        index=index,
        patient_id=f"HOLDOUT-{index + 1:04d}",
        anatomy=anatomy,
        tumor=tumor,
        scene=scene,
        frame=frame,
        scan=scan,
        position=position,
        transfer_syntax=syntax,
        angles=None if angles is None else MappingProxyType(angles),
        rule_category=category,
        tumor_contrast_hu=None if tumor is None else hu_table["tumor"] - hu_table["pancreas"],
        nodes=nodes,
    )


def tumor_targets(seed: int, n: int, options: HoldoutOptions) -> list[int | None]:
    """Per patient: ``None`` (tumor-free) or the intended NCCN category of the tumor."""
    rng = stream(seed, -1, "cohort")
    free = round(options.tumor_free_fraction * n)
    is_free = np.zeros(n, dtype=bool)
    is_free[rng.permutation(n)[:free]] = True
    targets: list[int | None] = []
    for flag in is_free:
        drawn = int(rng.choice(3, p=[0.4, 0.35, 0.25]))
        targets.append(None if flag else drawn)
    return targets
