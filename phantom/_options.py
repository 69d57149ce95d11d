"""Phantom cohort options: what a cohort of synthetic patients looks like.

One frozen value object, valid at construction; :mod:`phantom._cohort` plans patients from it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from phantom._dicom_writer import TRANSFER_SYNTAXES
from phantom._lesions import LesionMix
from phantom._variation import DEFAULT_TUMOR_FREE_FRACTION, VARIATIONS, FixedAcquisition

__all__ = ["POSITIONS", "PhantomOptions", "check_class_counts"]

POSITIONS: tuple[str, ...] = ("HFS", "FFS", "random")


def check_class_counts(counts: tuple[float, ...]) -> None:
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
    lymph_nodes
        Draw lymph nodes at the JPS stations with N-status truth and the ten attention
        structures (``organs.nii.gz``, ``nodes.nii.gz``, ``lymph_nodes.json``,
        :mod:`phantom._lymph_nodes`); ``None``: by variation (on in the wide modes, off in the
        standard mode, which stays byte for byte as before).
    follow_up
        Draw overall survival follow-up for every PDAC patient (``truth.csv`` gains
        ``os_months``, ``os_event`` and ``hazard_lp``; :mod:`phantom._follow_up`) from a
        stream of its own, so no other byte of the cohort changes; ``None``: by variation (on
        in the wide modes when lymph nodes are on, off in the standard mode). Needs lymph
        nodes (the hazard depends on the N status).

    Raises
    ------
    ValueError
        On any out-of-range value, or follow-up asked for with lymph nodes off.
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
    lymph_nodes: bool | None = None
    follow_up: bool | None = None

    def __post_init__(self) -> None:
        check_class_counts(self.class_counts)
        self._check_variation()
        if self.follow_up and not self.nodes_on:
            raise ValueError(
                "follow-up needs lymph nodes (the hazard depends on the N status): turn lymph"
                " nodes on or follow-up off"
            )
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
    def nodes_on(self) -> bool:
        """Whether lymph nodes are drawn (the variation's default unless given)."""
        return self.wide if self.lymph_nodes is None else self.lymph_nodes

    @property
    def follow_up_on(self) -> bool:
        """Whether follow-up is drawn (``None``: on exactly in the wide modes with nodes on)."""
        if self.follow_up is None:
            return self.wide and self.nodes_on
        return self.follow_up

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
        if self.nodes_on != self.wide:
            # Left out at the variation's default, so earlier cohorts keep their UIDs.
            fields = (*fields, ("lymph_nodes", self.nodes_on))
        text = repr(fields)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
