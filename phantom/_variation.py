"""Wide variation: what scanners and bodies vary, drawn per patient from a seeded stream.

The standard phantom varies little (one contrast phase, one noise texture, one tumor look), so
a network trained on it can learn the generator rather than the task (issue 21). In the
``"wide"`` mode every patient draws, from a stream of its own:

- **acquisition**: in-plane spacing 0.6-1.0 mm on a 384 or 512 matrix (field of view
  230-512 mm), slices 0.625-5 mm over 150-260 mm, head- or feet-first, supine or prone
  (prone series are stored rotated, :mod:`phantom._dicom_writer`; bowel gas rises to the
  back), reconstruction
  blur (Gaussian, 0.25-1.0 mm), noise of 6-30 HU with a grain of 0.3-1.2 mm, streaks;
- **contrast timing**: late arterial, pancreatic or portal-venous (own HU tables,
  :mod:`phantom._variation_render`);
- **body**: habitus and fat, anatomy scale, organ and pancreas size, control-point jitter of
  the vessel courses, vessel calibre, and a replaced right hepatic artery from the SMA in
  :data:`REPLACED_RHA_RATE` of patients (Hiatt et al., Ann Surg 220:50-52, 1994: 10.6 % of
  1000 donors, Michels type III);
- **tumor**: site (head, uncinate, body, tail), diameter 10-50 mm, round, lobulated or
  infiltrating, iso- to strongly hypo-attenuating, homogeneous, heterogeneous or necrotic,
  a biliary stent for some head tumors, calcifications;
- **tumor-free patients** (normal, atrophic pancreas, cysts or a neuroendocrine tumor, all
  labelled pancreas) and the lesion mix (small and iso-attenuating PDAC, incidental cysts):
  :mod:`phantom._lesions`.

``"synth"`` draws the same, then replaces the HU of every soft tissue by an independent
random value (label-wise random intensities: Billot et al., SynthSeg, Medical Image Analysis
86:102789, 2023), so only shape and context tell the structures apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom._lesions import (
    NEGATIVE_KINDS,
    SMALL_PDAC_MM,
    LesionMix,
    LesionSpec,
    draw_negative,
    draw_pdac,
    incidental_cyst,
    pdac_diameter_range,
)

VARIATIONS: tuple[str, ...] = ("standard", "wide", "synth")
CONTRAST_PHASES: tuple[str, ...] = ("late-arterial", "pancreatic", "portal-venous")
TUMOR_SITES: tuple[str, ...] = ("head", "uncinate", "body", "tail")
TUMOR_SHAPES: tuple[str, ...] = ("round", "lobulated", "infiltrating")
TUMOR_TEXTURES: tuple[str, ...] = ("homogeneous", "heterogeneous", "necrotic")
#: Kinds of tumor-free patient (:data:`phantom._lesions.NEGATIVE_KINDS`).
TUMOR_FREE_KINDS: tuple[str, ...] = NEGATIVE_KINDS
POSITIONS_WIDE: tuple[str, ...] = ("HFS", "FFS", "HFP", "FFP")
# Prone abdominal CT is uncommon (CT colonography, some biopsies): one patient in seven here.
_POSITION_WEIGHTS = (0.45, 0.41, 0.09, 0.05)
REPLACED_RHA = "replaced-rha"
#: Rate of a replaced right hepatic artery from the SMA (Hiatt et al. 1994: 106 of 1000).
REPLACED_RHA_RATE = 0.11
DEFAULT_TUMOR_FREE_FRACTION = 0.2
GENERATOR_NAMES = {"wide": "phantom-wide", "synth": "phantom-synth"}

_THICKNESSES = (0.625, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
_THICKNESS_WEIGHTS = (0.06, 0.08, 0.14, 0.1, 0.1, 0.16, 0.12, 0.14, 0.1)
_MATRICES = (384, 512)
# Thin slices over a long range make 300+ slices of 512 x 512: cap the count (memory, time).
_MAX_SLICES = 320
# Which site a tumor of each NCCN class sits in (tail tumors reach the vessels rarely).
_SITE_WEIGHTS = (
    (0.45, 0.15, 0.15, 0.25),
    (0.55, 0.2, 0.25, 0.0),
    (0.4, 0.1, 0.4, 0.1),
)
_DIAMETER_MM = ((10.0, 35.0), (15.0, 45.0), (20.0, 50.0))


def _between(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be within {lo}-{hi}, got {value}")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class Acquisition:
    """How one patient was scanned and reconstructed.

    Parameters
    ----------
    pixel_spacing, slice_thickness
        Voxel size in mm (slice thickness = spacing).
    fov_mm
        Field of view ``(x, y, z)`` in mm (in-plane: matrix times spacing).
    patient_position
        One of :data:`POSITIONS_WIDE`.
    blur_mm
        In-plane Gaussian sigma of the reconstruction kernel (sharp to smooth).
    noise_sd
        Standard deviation of the image noise in HU.
    noise_grain_mm
        Gaussian correlation length of the noise (its texture).
    streaks
        Whether streak artefacts cross some slices.
    """

    pixel_spacing: float
    slice_thickness: float
    fov_mm: tuple[float, float, float]
    patient_position: str
    blur_mm: float
    noise_sd: float
    noise_grain_mm: float
    streaks: bool

    def __post_init__(self) -> None:
        _between("pixel spacing", self.pixel_spacing, 0.2, 5.0)
        _between("slice thickness", self.slice_thickness, 0.5, 10.0)
        _one_of("patient position", self.patient_position, POSITIONS_WIDE)
        _between("blur", self.blur_mm, 0.0, 3.0)
        _between("noise", self.noise_sd, 0.0, 100.0)
        _between("noise grain", self.noise_grain_mm, 0.0, 5.0)


@dataclass(frozen=True)
class Body:
    """How one patient's body differs from the design anatomy.

    Parameters
    ----------
    habitus
        Scale of the body cross-section (slim to broad).
    fat
        Scale of the subcutaneous fat thickness.
    scale
        Scale of the whole abdominal design (organs and vessels).
    organ_scale
        Extra scale of the liver and spleen.
    pancreas_scale
        Extra scale of the pancreas (atrophic: about 0.6).
    node_jitter_mm
        Standard deviation of the control-point jitter (vessel courses, pancreas axis).
    calibre
        Scale of every vessel radius.
    variant
        ``""`` or :data:`REPLACED_RHA`.
    prone
        The patient lies prone (bowel gas collects posteriorly).
    """

    habitus: float
    fat: float
    scale: float
    organ_scale: float
    pancreas_scale: float
    node_jitter_mm: float
    calibre: float
    variant: str
    prone: bool = False

    def __post_init__(self) -> None:
        for name in ("habitus", "fat", "scale", "organ_scale", "pancreas_scale", "calibre"):
            _between(name, float(getattr(self, name)), 0.3, 2.0)
        _between("node jitter", self.node_jitter_mm, 0.0, 5.0)
        _one_of("variant", self.variant, ("", REPLACED_RHA))


@dataclass(frozen=True)
class TumorLook:
    """Site, size, shape and appearance of one tumor.

    Parameters
    ----------
    site
        One of :data:`TUMOR_SITES`.
    diameter_mm
        Mean diameter of the core.
    shape
        One of :data:`TUMOR_SHAPES`.
    texture
        One of :data:`TUMOR_TEXTURES`.
    attenuation
        Tumor HU minus pancreas HU as drawn (0: iso-attenuating; the measured value of the
        rendered image is in ``truth.csv``).
    stent
        A biliary stent lies in the common bile duct.
    """

    site: str
    diameter_mm: float
    shape: str
    texture: str
    attenuation: float
    stent: bool

    def __post_init__(self) -> None:
        _one_of("tumor site", self.site, TUMOR_SITES)
        _between("tumor diameter", self.diameter_mm, 10.0, 50.0)
        _one_of("tumor shape", self.shape, TUMOR_SHAPES)
        _one_of("tumor texture", self.texture, TUMOR_TEXTURES)
        _between("tumor attenuation", self.attenuation, -120.0, 10.0)

    @property
    def angle_location(self) -> str:
        """Which arteries the tumor can reach: ``"head"`` (SMA, CHA) or ``"body"`` (all)."""
        return "head" if self.site in ("head", "uncinate") else "body"

    @property
    def small(self) -> bool:
        """Whether the core diameter is at most 20 mm (:data:`~phantom._lesions.SMALL_PDAC_MM`)."""
        return self.diameter_mm <= SMALL_PDAC_MM

    @property
    def iso(self) -> bool:
        """Whether the tumor was drawn iso-attenuating (at most 10 HU below the pancreas)."""
        return self.attenuation >= -10.0


@dataclass(frozen=True)
class Variation:
    """Everything a wide-variation patient draws beyond the standard plan.

    Parameters
    ----------
    mode
        ``"wide"`` or ``"synth"`` (label-wise random intensities).
    contrast_phase
        One of :data:`CONTRAST_PHASES`.
    acquisition, body
        Scanner and body.
    tumor
        The tumor's look, or ``None`` for a tumor-free patient.
    tumor_free_kind
        One of :data:`TUMOR_FREE_KINDS` for a tumor-free patient, else ``""``.
    calcifications
        Number of small calcifications in the pancreas (and tumor).
    aortic_plaques
        Number of calcified plaques on the aortic wall.
    lesions
        Non-PDAC lesions (cysts, a neuroendocrine tumor): a cyst or PNET patient's own, or a
        PDAC patient's incidental cyst.
    duct_dilated
        An atrophic gland's main duct is dilated.
    """

    mode: str
    contrast_phase: str
    acquisition: Acquisition
    body: Body
    tumor: TumorLook | None
    tumor_free_kind: str
    calcifications: int
    aortic_plaques: int
    lesions: tuple[LesionSpec, ...] = ()
    duct_dilated: bool = False

    def __post_init__(self) -> None:
        _one_of("variation", self.mode, VARIATIONS[1:])
        _one_of("contrast phase", self.contrast_phase, CONTRAST_PHASES)
        if (self.tumor is None) != (self.tumor_free_kind in TUMOR_FREE_KINDS):
            raise ValueError("a tumor-free kind is given exactly when there is no tumor")
        if self.calcifications < 0 or self.aortic_plaques < 0:
            raise ValueError("calcification counts must not be negative")
        kinds = {lesion.kind for lesion in self.lesions}
        own = {"cyst": {"cyst"}, "pnet": {"pnet"}}.get(self.tumor_free_kind, set())
        if self.tumor is None and kinds != own:
            raise ValueError(f"a {self.tumor_free_kind} patient cannot have lesions {kinds}")
        if self.tumor is not None and not kinds <= {"cyst"}:
            raise ValueError("a PDAC patient's other lesions are incidental cysts only")
        if self.duct_dilated and self.tumor_free_kind != "atrophic":
            raise ValueError("only an atrophic gland is drawn with a dilated duct and no tumor")

    @property
    def negative_kind(self) -> str:
        """The ``negative_kind`` column: the tumor-free kind, ``""`` for a PDAC patient."""
        return self.tumor_free_kind

    @property
    def generator(self) -> str:
        """The ``generator`` column of ``truth.csv``."""
        return GENERATOR_NAMES[self.mode]


@dataclass(frozen=True)
class FixedAcquisition:
    """Acquisition values a caller fixed (``None``: drawn per patient)."""

    pixel_spacing: float | None = None
    slice_thickness: float | None = None
    fov_mm: tuple[float, float, float] | None = None
    patient_position: str | None = None


def allocate_tumor_free(n: int, fraction: float, seed: int) -> frozenset[int]:
    """Indices of the ``round(n * fraction)`` tumor-free patients (a seeded choice)."""
    count = round(n * fraction)
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 + 1,)))
    return frozenset(int(i) for i in order.permutation(n)[:count])


def _acquisition(rng: np.random.Generator, fixed: FixedAcquisition) -> Acquisition:
    spacing = round(float(rng.uniform(0.6, 1.0)), 4)
    matrix = int(rng.choice(_MATRICES))
    thickness = float(rng.choice(_THICKNESSES, p=_THICKNESS_WEIGHTS))
    length = float(rng.uniform(150.0, 260.0))
    position = str(rng.choice(POSITIONS_WIDE, p=_POSITION_WEIGHTS))
    blur = round(float(rng.uniform(0.25, 1.0)), 3)
    noise = round(float(rng.uniform(6.0, 30.0)), 2)
    grain = round(float(rng.uniform(0.3, 1.2)), 3)
    streaks = bool(rng.random() < 0.2)
    spacing = fixed.pixel_spacing or spacing
    thickness = fixed.slice_thickness or thickness
    z = round(min(length, _MAX_SLICES * thickness), 1)
    fov = fixed.fov_mm or (round(matrix * spacing, 2), round(matrix * spacing, 2), z)
    return Acquisition(
        pixel_spacing=spacing,
        slice_thickness=thickness,
        fov_mm=fov,
        patient_position=fixed.patient_position or position,
        blur_mm=blur,
        noise_sd=noise,
        noise_grain_mm=grain,
        streaks=streaks,
    )


def _body(rng: np.random.Generator, tumor_free_kind: str, prone: bool) -> Body:
    pancreas = float(rng.uniform(0.8, 1.2))
    if tumor_free_kind == "atrophic":
        pancreas = float(rng.uniform(0.5, 0.65))
    return Body(
        habitus=float(rng.uniform(0.88, 1.15)),
        fat=float(rng.uniform(0.5, 1.6)),
        scale=float(rng.uniform(0.85, 1.15)),
        organ_scale=float(rng.uniform(0.8, 1.2)),
        pancreas_scale=pancreas,
        node_jitter_mm=float(rng.uniform(1.0, 2.2)),
        calibre=float(rng.uniform(0.82, 1.2)),
        variant=REPLACED_RHA if rng.random() < REPLACED_RHA_RATE else "",
        prone=prone,
    )


def _attenuation(rng: np.random.Generator, iso_share: float) -> float:
    """Tumor minus pancreas HU: ``iso_share`` iso-attenuating, the rest mildly to strongly hypo."""
    if rng.random() < iso_share:
        return round(float(rng.uniform(-10.0, 0.0)), 1)
    return round(float(rng.uniform(-90.0, -15.0)), 1)


def _tumor(rng: np.random.Generator, target: int, small: bool, iso_share: float) -> TumorLook:
    """The tumor's look; the draws are in the order of earlier versions (one per property)."""
    site = str(rng.choice(TUMOR_SITES, p=_SITE_WEIGHTS[target]))
    span = pdac_diameter_range(small, _DIAMETER_MM[target])
    diameter = min(round(float(rng.uniform(*span)), 1), span[1])
    # A small tumor has no strands: they would reach past its 2 cm (one draw either way).
    shape = str(rng.choice(TUMOR_SHAPES, p=(0.55, 0.45, 0.0) if small else (0.4, 0.35, 0.25)))
    texture = str(rng.choice(TUMOR_TEXTURES, p=(0.4, 0.4, 0.2)))
    attenuation = _attenuation(rng, iso_share)
    if attenuation >= -10.0:
        # Iso-attenuating PDAC are told by secondary signs, not by a necrotic or mottled core.
        texture = "homogeneous"
    stent = site in ("head", "uncinate") and bool(rng.random() < 0.3)
    return TumorLook(site, diameter, shape, texture, attenuation, stent)


def draw_variation(
    rng: np.random.Generator,
    mode: str,
    target: int | None,
    fixed: FixedAcquisition,
    mix: LesionMix,
    lesion_rng: np.random.Generator,
    class_counts: tuple[float, float, float] = (85.0, 47.0, 27.0),
) -> Variation:
    """Draw one patient's variation.

    Parameters
    ----------
    rng
        The patient's variation stream.
    mode
        ``"wide"`` or ``"synth"``.
    target
        The NCCN class the tumor is drawn for, or ``None`` for a tumor-free patient.
    fixed
        Acquisition values fixed by the caller.
    mix
        The cohort's lesion mix.
    lesion_rng
        The patient's lesion stream (small PDAC, cysts, PNET, dilated duct).
    class_counts
        The cohort's NCCN class mix (how often a resectable or borderline PDAC is small).

    Returns
    -------
    Variation
        The same for the same stream states and arguments.
    """
    phase = str(rng.choice(CONTRAST_PHASES, p=(0.25, 0.3, 0.45)))
    kind = "" if target is not None else str(rng.choice(TUMOR_FREE_KINDS, p=mix.negative_p()))
    acquisition = _acquisition(rng, fixed)
    body = _body(rng, kind, acquisition.patient_position.endswith("P"))
    if target is None:
        tumor, lesions = None, draw_negative(lesion_rng, kind, phase)
    else:
        chance = mix.small_chance(target, class_counts)
        pdac = draw_pdac(lesion_rng, chance, mix.incidental_cyst)
        tumor = _tumor(rng, target, pdac.small, mix.iso_pdac)
        lesions = (incidental_cyst(lesion_rng, tumor.site),) if pdac.incidental else ()
    dilated = kind == "atrophic" and bool(lesion_rng.random() < mix.atrophic_dilated_duct)
    calcifications = int(rng.integers(2, 9)) if rng.random() < 0.2 else 0
    plaques = int(rng.integers(1, 7)) if rng.random() < 0.4 else 0
    return Variation(
        mode, phase, acquisition, body, tumor, kind, calcifications, plaques, lesions, dilated
    )
