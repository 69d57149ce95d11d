"""The study status words, defined once: routes, filters, Orthanc labels, panel and worklist.

Every study the node touched has exactly one of these, with a reason a person can read:

========================  ====================================================================
``ai-pending``            received or queued or running; no outcome yet
``ai-done``               analysed: a tumor was segmented and staged
``ai-no-tumor``           analysed: no tumor segmented, so no NCCN category (staging not
                          possible); organs, vessels and the note are still delivered
``ai-out-of-domain``      analysed, but the CT or its segmentation is out of the model's
                          training domain, so the NCCN category is withheld; the segmentation
                          and the domain check's reasons are still delivered
``ai-no-pdac``            analysed: the PDAC detector found no PDAC, so no NCCN category;
                          the segmentation and the detector's answer are still delivered
``ai-refused``            the analysis checks refused the CT (e.g. the pancreas was not
                          localised); the reason says what was measured
``ai-failed``             the analysis failed (which stage, after how many attempts)
``ai-skipped``            the routing rules did not send the series to analysis (which rule)
``none``                  nothing the node analyses (e.g. only SEG/SR/PDF series)
========================  ====================================================================

The Orthanc plugin's filters (``?status=``) accept every word; the OHIF worklist offers them
all; Orthanc study labels use the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = ["REFUSED_PREFIX", "STATUS_TEXT", "StudyStatus"]

#: How a job ``done`` without a result records a refusal in its reason: the analysis checks
#: refused the CT, and the refusal document (not a SEG/SR/PDF) is what the job delivers
#: (``refused: not-localised: confidence 0.11, ...``).
REFUSED_PREFIX = "refused: "


class StudyStatus(StrEnum):
    """A study's PancreasAI status (the one vocabulary of every reader)."""

    PENDING = "ai-pending"
    DONE = "ai-done"
    NO_TUMOR = "ai-no-tumor"
    OUT_OF_DOMAIN = "ai-out-of-domain"
    NO_PDAC = "ai-no-pdac"
    REFUSED = "ai-refused"
    FAILED = "ai-failed"
    SKIPPED = "ai-skipped"
    NONE = "none"


#: The words a person reads for each status (panel, worklist, PDF).
STATUS_TEXT: Mapping[StudyStatus, str] = MappingProxyType(
    {
        StudyStatus.PENDING: "AI pending",
        StudyStatus.DONE: "AI done",
        StudyStatus.NO_TUMOR: "No tumor segmented: staging not possible",
        StudyStatus.OUT_OF_DOMAIN: "CT out of the training domain: NCCN category withheld",
        StudyStatus.NO_PDAC: "No PDAC detected: NCCN staging not given",
        StudyStatus.REFUSED: "AI refused",
        StudyStatus.FAILED: "AI failed",
        StudyStatus.SKIPPED: "AI skipped",
        StudyStatus.NONE: "No AI result",
    }
)
