"""``result.json``'s ``detection`` section (schema 1.5): the PDAC detector's answer, the gate.

The detector (``inference/tasks/detection``, METHOD.md section 2) runs first on every CT the
node analyses when a detection bundle is configured. Its patient-level PDAC likelihood is
compared with the bundle's operating threshold: below it (``detected`` false) the NCCN staging
is withheld and the result's outcome is ``no-pdac``. The staging network's segmentation still
runs (the organs and vessels are delivered); where it and the detector disagree, both are
reported and ``agreement`` says how.
"""

from __future__ import annotations

import math
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["NO_PDAC_NOTE", "DetectedLesion", "Detection", "DetectionAgreement"]

#: The warning of a result whose staging the detector gated (outcome ``no-pdac``), and the
#: sentence the SR, the PDF and the OHIF panel show instead of a category.
NO_PDAC_NOTE: Final = "PDAC detection found no PDAC: NCCN staging not given"

#: How the detector and the staging segmentation relate:
#: ``agree`` both found the tumor at the same place (or both found none); ``detection-only``
#: the detector found a PDAC the staging segmentation has no tumor for; ``staging-only`` the
#: staging segmentation has a tumor the detector did not find; ``elsewhere`` both found one,
#: at different places.
DetectionAgreement = Literal["agree", "detection-only", "staging-only", "elsewhere"]

_Frozen = ConfigDict(frozen=True, extra="forbid")


def _finite(values: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError("coordinates must be finite")
    return values


class DetectedLesion(BaseModel):
    """One lesion the detector reports, in DICOM patient coordinates (LPS, mm)."""

    model_config = _Frozen
    centre_lps_mm: tuple[float, float, float]
    diameter_mm: float = Field(ge=0.0)
    volume_ml: float = Field(ge=0.0)
    probability: float = Field(ge=0.0, le=1.0)

    @field_validator("centre_lps_mm")
    @classmethod
    def _finite_centre(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        _finite(value)
        return value


class Detection(BaseModel):
    """The detector's answer for one CT (investigational, not for clinical use).

    Attributes
    ----------
    model_version
        The detection bundle's ``name version``.
    pdac_likelihood
        The combined patient score (classification and detection-map maximum).
    classification, detection_max
        The two scores it combines (reported for the paper's ablation).
    threshold
        The operating point of the gate (from the detection bundle).
    detected
        ``pdac_likelihood >= threshold``.
    lesions
        Reported lesions, most probable first.
    agreement
        How the staging segmentation relates (``None`` when staging did not segment).
    distance_mm
        From the most probable lesion's centre to the nearest staging tumor voxel, when both
        exist.
    """

    model_config = _Frozen
    model_version: str = Field(min_length=1)
    pdac_likelihood: float = Field(ge=0.0, le=1.0)
    classification: float = Field(ge=0.0, le=1.0)
    detection_max: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    detected: bool
    lesions: tuple[DetectedLesion, ...] = ()
    agreement: DetectionAgreement | None = None
    distance_mm: float | None = Field(default=None, ge=0.0)
    warnings: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _detected_is_the_threshold(self) -> Detection:
        if self.detected != (self.pdac_likelihood >= self.threshold):
            raise ValueError("detected must say whether pdac_likelihood reaches the threshold")
        return self

    def describe(self) -> str:
        """One line: ``PDAC likelihood 0.91 (threshold 0.50): detected, 1 lesion``."""
        verdict = "detected" if self.detected else "not detected"
        count = len(self.lesions)
        lesions = f", {count} lesion{'s' if count != 1 else ''}" if count else ""
        return (
            f"PDAC likelihood {self.pdac_likelihood:.2f} (threshold {self.threshold:.2f}): "
            f"{verdict}{lesions}"
        )
