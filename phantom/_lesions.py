"""Lesions of the wide modes: the cohort's lesion mix and what is drawn per patient.

A detector must be shown PDAC it can miss and lesions it must not call PDAC (issue 23). Each
wide-mode patient therefore has either a PDAC (its look: :class:`phantom.TumorLook`) or a
*negative kind* (:data:`NEGATIVE_KINDS`):

- ``normal``: a normal gland;
- ``atrophic``: a thin gland (x0.5-0.65), in :attr:`LesionMix.atrophic_dilated_duct` of them
  with a dilated main duct (chronic pancreatitis-like, a hard negative for a detector that
  reads the duct);
- ``cyst``: one to three unilocular cysts of water density with a sharp margin (simple
  cyst or side-branch IPMN), 6-30 mm;
- ``pnet``: one solid, round, hyper-enhancing nodule (a neuroendocrine tumor), 8-25 mm, most
  conspicuous in the arterial and pancreatic phases.

PDAC patients get an incidental small cyst in :attr:`LesionMix.incidental_cyst` of cases.
Non-PDAC lesions are labelled pancreas in the 16-label map (the tumor label is PDAC only);
they are told apart in the lesion instance mask and ``lesions.json``
(:mod:`phantom._lesion_render`).

Every decision here is drawn from the patient's own lesion stream, so the variation's other
draws (scanner, body, tumor look) are those of earlier versions where they can be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LESION_KINDS: tuple[str, ...] = ("pdac", "cyst", "pnet")
#: Tumor-free patients' kinds (``negative_kind`` in ``truth.csv``).
NEGATIVE_KINDS: tuple[str, ...] = ("normal", "atrophic", "cyst", "pnet")
LESION_LOCATIONS: tuple[str, ...] = ("head", "uncinate", "body", "tail")
#: A small PDAC is one whose core diameter is at most this (T1, AJCC 8th edition).
SMALL_PDAC_MM = 20.0
#: PDAC share of PANORAMA's public training set (676 of 2238 cases): a detection cohort's
#: prevalence (``--pdac-prevalence 0.3``); the wide mode's default stays 0.8 (see docs).
PANORAMA_PDAC_PREVALENCE = 0.3

# Where non-PDAC lesions sit: head, uncinate, body, tail (cysts are spread along the gland;
# PNETs a little commoner in the body and tail).
_CYST_SITES = (0.35, 0.1, 0.3, 0.25)
_PNET_SITES = (0.3, 0.1, 0.3, 0.3)


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0-1, got {value}")


@dataclass(frozen=True)
class LesionMix:
    """What share of the wide-mode patients get which lesion look.

    Parameters
    ----------
    small_pdac
        Share of PDAC with a core diameter of at most :data:`SMALL_PDAC_MM` (10-20 mm; the
        others 20.5 mm up to their class's maximum). Only resectable and borderline tumors
        are small (a tumor around the SMA or celiac trunk spans more than 2 cm), at the rate
        that makes this share of all PDAC (at most all of those two classes; see
        :meth:`small_chance`). Default 0.25: small tumors are the ones
        a detector misses, so a test cohort holds more than the 10-15 % of T1 tumors at
        diagnosis in registries.
    iso_pdac
        Share of iso-attenuating PDAC (tumor minus pancreas 0 to -10 HU before noise; the
        others -15 to -90). Default 0.1: 5.4 % of PDAC were visually iso-attenuating in
        Kim et al. (Radiology 257:87-96, 2010), more among small tumors.
    negative_weights
        Relative weights of :data:`NEGATIVE_KINDS` among tumor-free patients (default
        normal 0.4, atrophic 0.2, cyst 0.25, PNET 0.15).
    incidental_cyst
        Share of PDAC patients who also have one small (5-15 mm) cyst elsewhere in the gland.
    atrophic_dilated_duct
        Share of atrophic glands with a dilated main duct (1.5-2.5 mm radius).

    Raises
    ------
    ValueError
        On a share outside 0-1 or weights that are not four non-negative numbers.
    """

    small_pdac: float = 0.25
    iso_pdac: float = 0.1
    negative_weights: tuple[float, float, float, float] = (0.4, 0.2, 0.25, 0.15)
    incidental_cyst: float = 0.1
    atrophic_dilated_duct: float = 0.4

    def __post_init__(self) -> None:
        _fraction("small PDAC share", self.small_pdac)
        _fraction("iso-attenuating PDAC share", self.iso_pdac)
        _fraction("incidental cyst share", self.incidental_cyst)
        _fraction("atrophic dilated-duct share", self.atrophic_dilated_duct)
        weights = self.negative_weights
        if len(weights) != 4 or any(not w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"negative weights must be four non-negative numbers: {weights}")

    def small_chance(self, target: int, class_counts: tuple[float, float, float]) -> float:
        """Probability that a PDAC of NCCN class ``target`` is small, given the class mix."""
        total = float(sum(class_counts))
        early = float(class_counts[0] + class_counts[1]) / total if total > 0 else 0.0
        if target == 2 or early <= 0.0:
            return 0.0
        return min(1.0, self.small_pdac / early)

    def negative_p(self) -> tuple[float, ...]:
        """:attr:`negative_weights` normalised to probabilities."""
        total = float(sum(self.negative_weights))
        return tuple(float(w) / total for w in self.negative_weights)


@dataclass(frozen=True)
class LesionSpec:
    """One planned non-PDAC lesion (its voxels are laid out when the patient is rendered).

    Parameters
    ----------
    kind
        ``"cyst"`` or ``"pnet"``.
    location
        One of :data:`LESION_LOCATIONS`: the part of the gland its centre is placed in.
    diameter_mm
        Mean diameter.
    contrast_hu
        Lesion minus pancreas HU before noise (a PNET's enhancement; 0 for a cyst, whose HU
        is water's).
    """

    kind: str
    location: str
    diameter_mm: float
    contrast_hu: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in LESION_KINDS[1:]:
            raise ValueError(f"a planned lesion is a cyst or a pnet, got {self.kind!r}")
        if self.location not in LESION_LOCATIONS:
            raise ValueError(f"lesion location must be one of {LESION_LOCATIONS}")
        if not 3.0 <= self.diameter_mm <= 40.0:
            raise ValueError(f"lesion diameter must be within 3-40 mm, got {self.diameter_mm}")


@dataclass(frozen=True)
class PdacDraw:
    """The lesion stream's say on a PDAC: small or not, with an incidental cyst or not."""

    small: bool
    incidental: bool


def _site(rng: np.random.Generator, weights: tuple[float, ...]) -> str:
    return str(rng.choice(LESION_LOCATIONS, p=weights))


def _cyst(rng: np.random.Generator, lo: float, hi: float, site: str | None = None) -> LesionSpec:
    where = site if site is not None else _site(rng, _CYST_SITES)
    return LesionSpec("cyst", where, round(float(rng.uniform(lo, hi)), 1))


def _pnet(rng: np.random.Generator, phase: str) -> LesionSpec:
    site = _site(rng, _PNET_SITES)
    diameter = round(float(rng.uniform(8.0, 25.0)), 1)
    # Hyper-enhancing: most in the arterial and pancreatic phases, less in the portal-venous.
    contrast = rng.uniform(10.0, 50.0) if phase == "portal-venous" else rng.uniform(30.0, 90.0)
    return LesionSpec("pnet", site, diameter, round(float(contrast), 1))


def draw_negative(rng: np.random.Generator, kind: str, phase: str) -> tuple[LesionSpec, ...]:
    """The non-PDAC lesions of a tumor-free patient of negative ``kind`` (none, or its own)."""
    if kind == "cyst":
        count = int(rng.choice((1, 2, 3), p=(0.6, 0.3, 0.1)))
        return tuple(_cyst(rng, 6.0, 30.0) for _ in range(count))
    if kind == "pnet":
        return (_pnet(rng, phase),)
    return ()


def draw_pdac(rng: np.random.Generator, small_chance: float, incidental: float) -> PdacDraw:
    """Whether a PDAC is small, and whether the patient also has an incidental cyst."""
    small = bool(rng.random() < small_chance)
    return PdacDraw(small, bool(rng.random() < incidental))


def incidental_cyst(rng: np.random.Generator, pdac_site: str) -> LesionSpec:
    """A 5-15 mm cyst in another part of the gland than the PDAC (never the small uncinate)."""
    others = [s for s in LESION_LOCATIONS if s not in (pdac_site, "uncinate")]
    return _cyst(rng, 5.0, 15.0, str(rng.choice(others)))


def pdac_diameter_range(small: bool, class_range: tuple[float, float]) -> tuple[float, float]:
    """Core diameter range of a PDAC: 10-20 mm when small, else above 20 mm in its class's."""
    if small:
        return (10.0, SMALL_PDAC_MM)
    lo, hi = class_range
    return (max(lo, SMALL_PDAC_MM + 0.5), hi)


Point = tuple[float, float, float]


@dataclass(frozen=True)
class Lesion:
    """The truth of one rendered lesion, as ``lesions.json`` and ``truth.csv`` give it.

    Parameters
    ----------
    id
        Its value in the lesion instance mask (1..K; PDAC first where there is one).
    kind
        One of :data:`LESION_KINDS`.
    location
        One of :data:`LESION_LOCATIONS`: the part of the gland it was placed in.
    diameter_mm
        Mean diameter as drawn (a PDAC's core, without its vessel cuffs and strands).
    center_lps
        Centroid of its voxels, patient LPS mm (DICOM's patient coordinates).
    bbox_min_lps, bbox_max_lps
        Corners of the box around its voxels (voxel edges, not centres), LPS mm.
    voxels, volume_ml
        Its size in the mask.
    contrast_hu
        Its mean HU minus that of the pancreas outside every lesion, before blur and noise.
    """

    id: int
    kind: str
    location: str
    diameter_mm: float
    center_lps: Point
    bbox_min_lps: Point
    bbox_max_lps: Point
    voxels: int
    volume_ml: float
    contrast_hu: float | None

    def __post_init__(self) -> None:
        if self.kind not in LESION_KINDS or self.location not in LESION_LOCATIONS:
            raise ValueError(f"unknown lesion kind or location: {self.kind}, {self.location}")
        if self.id < 1 or self.voxels < 1:
            raise ValueError("a lesion has an id from 1 and at least one voxel")

    @property
    def equivalent_diameter_mm(self) -> float:
        """Diameter of the sphere of the lesion's volume."""
        return round(float((6.0 * self.volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0)), 2)

    def as_json(self) -> dict[str, object]:
        """The lesion's entry in ``lesions.json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "location": self.location,
            "diameter_mm": self.diameter_mm,
            "equivalent_diameter_mm": self.equivalent_diameter_mm,
            "center_lps_mm": list(self.center_lps),
            "bbox_lps_mm": {"min": list(self.bbox_min_lps), "max": list(self.bbox_max_lps)},
            "voxels": self.voxels,
            "volume_ml": self.volume_ml,
            "contrast_hu": self.contrast_hu,
        }
