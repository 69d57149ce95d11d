"""Named DIMSE statuses the node answers with.

Values come from PS3.4 Annex B.2.3 (Storage Service Class C-STORE statuses) and PS3.7 C.4.2
(C-STORE general statuses). Sub-codes inside a range say which check failed.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["StoreStatus"]


class StoreStatus(IntEnum):
    """C-STORE response statuses used by :mod:`dicom_node.handlers`."""

    SUCCESS = 0x0000
    #: Failure: Processing failure (PS3.7 C.4.2.1.9) - an unexpected error in the node; the
    #: instance is not kept and the sender may retry.
    PROCESSING_FAILURE = 0x0110
    #: Failure: Duplicate SOP Instance (PS3.7 C.4.2.1.8) - this SOPInstanceUID is already stored
    #: with other content; the stored object is kept and the attempt audited.
    DUPLICATE_SOP_INSTANCE = 0x0111
    #: Refused: Out of Resources (A7xx) - the spool's disk is full or not writable.
    OUT_OF_RESOURCES = 0xA700
    #: Refused: Out of Resources - the instance is larger than the configured limit.
    INSTANCE_TOO_LARGE = 0xA701
    #: Refused: Out of Resources - the node database could not record the instance.
    DATABASE_UNAVAILABLE = 0xA702
    #: Refused: Out of Resources - a Deflated Explicit VR Little Endian data set inflates past
    #: the instance limit (PS3.5 A.5).
    INFLATED_TOO_LARGE = 0xA703
    #: Error: Data Set does not match SOP Class (A9xx) - a Type 1 UID is missing or invalid.
    MISSING_REQUIRED_UID = 0xA900
    #: Error: Data Set does not match SOP Class - the SOP Class UID differs from the request.
    SOP_CLASS_MISMATCH = 0xA901
    #: Error: Cannot understand (Cxxx) - the data set cannot be parsed.
    CANNOT_PARSE = 0xC000
    #: Error: Cannot understand - the pixel data is truncated or its fragments are corrupt.
    CORRUPT_PIXEL_DATA = 0xC001
    #: Error: Cannot understand - the Image Pixel module (PS3.3 C.7.6.3) is missing attributes or
    #: they contradict each other, so the node could not decode the image.
    PIXEL_MODULE_INVALID = 0xC002
