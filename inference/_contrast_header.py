"""What a CT series' header says about contrast and the kind of scanner.

Two pieces of header evidence, both read from the first instance:

- **ContrastBolusAgent (0018,0010)**, Type 2 in the Contrast/Bolus module (PS3.3 C.7.6.4):
  present and non-empty means contrast was recorded. Empty or absent is *weak* evidence of no
  contrast: many sites never fill it in (the public NIH Pancreas-CT case is portal-venous with
  it empty), so it never overrules what the image shows; it only keeps a low-confidence
  "arterial from the aorta alone" from being called.
- **Cone-beam CT.** A C-arm or on-board-imager CBCT is stored as CT Image Storage with
  Modality CT, so the storage class cannot tell. The header says so in words: "CBCT", "CONE
  BEAM", "DYNACT" (Siemens syngo DynaCT) or "XPERCT" (Philips XperCT) in SeriesDescription,
  ProtocolName, ImageType, ManufacturerModelName or AcquisitionDeviceProcessingDescription.
  CT Acquisition Type (0018,9302; PS3.3 C.8.15.3.1) is not used: its STATIONARY and
  CONSTANT_ANGLE values are also written by wide-detector diagnostic CT and by localizers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom import Dataset

__all__ = ["PhaseHeader", "read_phase_header"]

_CONE_BEAM = re.compile(r"(CBCT|CONE[\s_-]*BEAM|DYNA[\s_-]*CT|XPER[\s_-]*CT)", re.IGNORECASE)
_CONE_BEAM_ATTRIBUTES = (
    "SeriesDescription",
    "ProtocolName",
    "ImageType",
    "ManufacturerModelName",
    "AcquisitionDeviceProcessingDescription",
)


@dataclass(frozen=True)
class PhaseHeader:
    """Header evidence for the contrast-phase decision.

    Parameters
    ----------
    contrast_agent_recorded
        True when ContrastBolusAgent holds a value, False when it is empty or absent.
    cone_beam_attribute
        The attribute that names a cone-beam acquisition, or ``None``.
    """

    contrast_agent_recorded: bool
    cone_beam_attribute: str | None = None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return "\\".join(str(v) for v in value)
    return str(value)


def read_phase_header(ds: Dataset) -> PhaseHeader:
    """The header evidence of one instance (its values are never returned or logged)."""
    agent = _text(ds.get("ContrastBolusAgent")).strip()
    cone_beam = next(
        (name for name in _CONE_BEAM_ATTRIBUTES if _CONE_BEAM.search(_text(ds.get(name)))),
        None,
    )
    return PhaseHeader(contrast_agent_recorded=bool(agent), cone_beam_attribute=cone_beam)
