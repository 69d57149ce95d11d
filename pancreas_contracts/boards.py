"""The tumor board's vocabulary and inputs, defined once (issue 26).

The database, the Orthanc plugin's ``/pancreas-ai/`` routes, the OHIF extension (through the
published OpenAPI description), the board packet, the decision CSV, the notifications and the
``export-cases --reviewed`` training export all read this module, so a decision recorded in the
browser means the same thing in the packet, the CSV and the training label.

Two different judgements are kept apart:

- the **radiologist's review** of the node's result (:class:`ReviewVerdict`): agree, override
  the NCCN category (with the radiologist's category and a reason), or correct the
  segmentation (a new SEG version that references the AI one);
- the **board's decision** on the patient (:class:`BoardCategory` plus coded
  :class:`Treatment` choices and free text).

Every value object here is valid at construction (pydantic, ``frozen``); free texts are
bounded and stripped. Free texts may hold clinical content: they stay in the node database and
the board's own outputs and never reach a log line or a notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pancreas_contracts.result import CATEGORY_LABELS

__all__ = [
    "BOARD_CATEGORY_TEXT",
    "MAX_FREE_TEXT",
    "TREATMENT_TEXT",
    "AutoRule",
    "BoardCategory",
    "BoardInput",
    "CaseInput",
    "DecisionInput",
    "NotificationEvent",
    "ReviewInput",
    "ReviewVerdict",
    "Treatment",
    "nccn_board_category",
]

#: The longest free text (reason, decision text) accepted; longer is refused, not truncated.
MAX_FREE_TEXT = 4000


class ReviewVerdict(StrEnum):
    """The radiologist's verdict on the node's result (one review per submission)."""

    #: The node's category and segmentation are accepted as they are.
    AGREE = "agree"
    #: The NCCN category is replaced by the radiologist's, with a reason.
    OVERRIDE = "override"
    #: The segmentation was corrected in OHIF; a new SEG version references the AI one.
    CORRECT = "correct"


class BoardCategory(StrEnum):
    """The board's staging decision: NCCN resectability, or metastatic disease.

    The first three are the node's categories (``result.CATEGORY_LABELS`` order); metastatic
    disease is the board's to decide (the node has no M model).
    """

    RESECTABLE = "resectable"
    BORDERLINE = "borderline"
    LOCALLY_ADVANCED = "locally-advanced"
    METASTATIC = "metastatic"


BOARD_CATEGORY_TEXT: Mapping[BoardCategory, str] = MappingProxyType(
    {
        BoardCategory.RESECTABLE: "Resectable",
        BoardCategory.BORDERLINE: "Borderline resectable",
        BoardCategory.LOCALLY_ADVANCED: "Locally advanced",
        BoardCategory.METASTATIC: "Metastatic",
    }
)


class Treatment(StrEnum):
    """Coded treatment recommendations a board can choose (several may apply)."""

    UPFRONT_SURGERY = "upfront-surgery"
    NEOADJUVANT_THEN_SURGERY = "neoadjuvant-then-surgery"
    NEOADJUVANT_CHEMOTHERAPY = "neoadjuvant-chemotherapy"
    CHEMORADIOTHERAPY = "chemoradiotherapy"
    PALLIATIVE_CHEMOTHERAPY = "palliative-chemotherapy"
    BEST_SUPPORTIVE_CARE = "best-supportive-care"
    BIOPSY = "biopsy"
    FURTHER_IMAGING = "further-imaging"
    CLINICAL_TRIAL = "clinical-trial"
    SURVEILLANCE = "surveillance"


TREATMENT_TEXT: Mapping[Treatment, str] = MappingProxyType(
    {
        Treatment.UPFRONT_SURGERY: "Upfront surgical resection",
        Treatment.NEOADJUVANT_THEN_SURGERY: "Neoadjuvant therapy, then re-staging for surgery",
        Treatment.NEOADJUVANT_CHEMOTHERAPY: "Neoadjuvant chemotherapy",
        Treatment.CHEMORADIOTHERAPY: "Chemoradiotherapy",
        Treatment.PALLIATIVE_CHEMOTHERAPY: "Palliative chemotherapy",
        Treatment.BEST_SUPPORTIVE_CARE: "Best supportive care",
        Treatment.BIOPSY: "Biopsy / tissue diagnosis",
        Treatment.FURTHER_IMAGING: "Further imaging",
        Treatment.CLINICAL_TRIAL: "Clinical trial",
        Treatment.SURVEILLANCE: "Surveillance",
    }
)


class NotificationEvent(StrEnum):
    """What the node tells people about (each configurable per channel)."""

    RESULT_READY = "result-ready"
    RESULT_FAILED = "result-failed"
    DISAGREEMENT = "disagreement"
    PACKET_READY = "packet-ready"


def nccn_board_category(category: int) -> BoardCategory:
    """The :class:`BoardCategory` of a node NCCN category index (0, 1, 2).

    Raises
    ------
    ValueError
        If ``category`` is not 0, 1 or 2.
    """
    if category not in range(len(CATEGORY_LABELS)):
        raise ValueError(f"NCCN category index must be 0-2, not {category}")
    return list(BoardCategory)[category]


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AutoRule(_Frozen):
    """Which analysed studies a board takes on its own (all given conditions must hold).

    Parameters
    ----------
    outcomes
        ``result.json`` outcomes that qualify (default: ``done``, a tumor segmented and
        staged).
    min_pdac_likelihood
        The PDAC detector's likelihood at least this (studies without a detector result then
        do not qualify).
    categories
        NCCN categories that qualify (empty: any).
    referring_services
        Requesting services (DICOM RequestingService (0032,1033) or the institutional
        department, case-insensitive) that qualify (empty: any).
    """

    outcomes: tuple[str, ...] = ("done",)
    min_pdac_likelihood: float | None = Field(default=None, ge=0.0, le=1.0)
    categories: tuple[BoardCategory, ...] = ()
    referring_services: tuple[str, ...] = ()

    @field_validator("outcomes")
    @classmethod
    def _known_outcomes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {"done", "no-tumor", "out-of-domain", "no-pdac"}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown outcome(s) {sorted(unknown)}; known: {sorted(known)}")
        if not value:
            raise ValueError("an auto rule needs at least one outcome")
        return value


class BoardInput(_Frozen):
    """A board to schedule: date, name, members and an optional rule for automatic cases."""

    board_date: date
    title: str = Field(min_length=1, max_length=256)
    members: tuple[str, ...] = ()
    auto_rule: AutoRule | None = None

    @field_validator("title")
    @classmethod
    def _strip_title(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("a board needs a title")
        return stripped

    @field_validator("members")
    @classmethod
    def _members(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        members = tuple(m.strip() for m in value if m.strip())
        if any(len(m) > 128 for m in members):
            raise ValueError("a member's name is at most 128 characters")
        return members


class CaseInput(_Frozen):
    """A study to put on a board by hand."""

    study_instance_uid: str = Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")


class DecisionInput(_Frozen):
    """The board's decision on a case: category, coded treatments and free text."""

    category: BoardCategory
    treatments: tuple[Treatment, ...] = ()
    text: str | None = Field(default=None, max_length=MAX_FREE_TEXT)

    @field_validator("text")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _text(value)

    @field_validator("treatments")
    @classmethod
    def _unique(cls, value: tuple[Treatment, ...]) -> tuple[Treatment, ...]:
        return tuple(dict.fromkeys(value))


class ReviewInput(_Frozen):
    """The radiologist's review of the node's result.

    ``override`` needs the radiologist's category and a reason; ``agree`` takes neither a
    category nor needs a reason; ``correct`` (a segmentation correction) needs a reason and may
    carry a category when the correction changes it.
    """

    verdict: ReviewVerdict
    category: BoardCategory | None = None
    reason: str | None = Field(default=None, max_length=MAX_FREE_TEXT)

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _text(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.verdict is ReviewVerdict.OVERRIDE and (self.category is None or not self.reason):
            raise ValueError("an override needs the radiologist's category and a reason")
        if self.verdict is ReviewVerdict.AGREE and self.category is not None:
            raise ValueError("an agreement takes no category (it accepts the node's)")
        if self.verdict is ReviewVerdict.CORRECT and not self.reason:
            raise ValueError("a segmentation correction needs a reason")
        return self
