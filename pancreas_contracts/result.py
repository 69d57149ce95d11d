"""``result.json`` / :class:`AnalysisResult`: the one schema of an analysis outcome.

The SR writer, the PDF report, the Orthanc plugin routes, the OHIF panel and the tests all read
this schema (``docs/architecture.md``, "Shared contracts"). It is versioned by
``schema_version``; a result that exists is valid (pydantic validation at construction, frozen).

Schema history: ``1.0`` the resectability result; ``1.1`` adds ``tasks``, one
:class:`TaskSection` per further analysis task (``inference.tasks``), whose coded findings the
SR writer and the PDF render without knowing the task; ``1.2`` adds ``outcome``: ``no-tumor``
when no tumor was segmented, and then there is no NCCN ``category`` (``None``), no
``rule_category`` and no disagreement; ``1.3`` adds ``domain``, how far the CT and its
segmentation are from the bundle's training cohort (:class:`DomainCheck`), and the outcome
``out-of-domain``: a tumor was segmented but the CT is strongly out of domain, so the NCCN
category and the rule category are withheld (``None``) with the reason; ``1.4`` adds ``source``,
which version of the series the analysis read and how many instances it had
(:class:`SourceSeries`): a series that grows after its analysis is analysed again, and each
result says which one it is. Readers accept all six versions (``domain`` is ``None`` before
1.3, ``source`` before 1.4). ``1.5`` adds ``detection``, the PDAC detector's answer
(:class:`pancreas_contracts.detection.Detection`), and the outcome ``no-pdac``: the detector
found no PDAC, so the NCCN category is not given (the segmentation is still delivered).
``1.6`` adds ``lymph_nodes``, the lymph-node model's answer
(:class:`pancreas_contracts.lymph_nodes.LymphNodeAssessment`), and
``outputs.lymph_node_seg_sop_uid``. ``1.7`` adds ``prognosis``, the survival model's answer
(:class:`pancreas_contracts.prognosis.SurvivalPrognosis`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pancreas_contracts.detection import NO_PDAC_NOTE, Detection
from pancreas_contracts.lymph_nodes import LymphNodeAssessment
from pancreas_contracts.prognosis import SurvivalPrognosis

__all__ = [
    "CATEGORY_LABELS",
    "INVESTIGATIONAL_NOTICE",
    "KEY_VESSELS",
    "KEY_VESSEL_LABELS",
    "NO_TUMOR_NOTE",
    "OUT_OF_DOMAIN_NOTE",
    "RESULT_SCHEMA_VERSION",
    "AnalysisResult",
    "BundleRef",
    "Category",
    "ClinicalUse",
    "CodeRef",
    "DomainCheck",
    "Localisation",
    "Measurements",
    "Outputs",
    "SourceSeries",
    "TaskFinding",
    "TaskSection",
]

RESULT_SCHEMA_VERSION: Final = "1.7"
INVESTIGATIONAL_NOTICE: Final = "Investigational, not for clinical use."
#: The warning of a result without tumor (``outcome`` ``no-tumor``), and the sentence the SR,
#: the PDF and the OHIF panel show instead of a category.
NO_TUMOR_NOTE: Final = "no tumor segmented: staging not possible"
#: The warning of a result whose category is withheld (``outcome`` ``out-of-domain``), and the
#: sentence the SR, the PDF and the OHIF panel show instead of a category.
OUT_OF_DOMAIN_NOTE: Final = "CT out of the training domain: NCCN category withheld"
#: NCCN resectability classes of METHOD.md section 1, by index.
CATEGORY_LABELS: tuple[str, str, str] = ("resectable", "borderline", "locally advanced")
#: Vessels whose tumor contact angle is reported (METHOD.md "Geometry read-out").
KEY_VESSELS: tuple[str, ...] = ("SMA", "CA", "CHA", "SMV", "PV")
#: The label (pancreas_contracts.labels) of each key vessel.
KEY_VESSEL_LABELS: Mapping[str, str] = MappingProxyType(
    {"SMA": "sma", "CA": "celiac_trunk", "CHA": "cha", "SMV": "smv", "PV": "portal_vein"}
)

_Frozen = ConfigDict(frozen=True, extra="forbid")


class BundleRef(BaseModel):
    """The model bundle that produced the result."""

    model_config = _Frozen
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Category(BaseModel):
    """The network's NCCN category with its class probabilities."""

    model_config = _Frozen
    label: Literal["resectable", "borderline", "locally advanced"]
    probabilities: tuple[float, float, float]
    uncertainty: float = Field(ge=0.0)
    #: Models in the ensemble; with one there is no spread and ``uncertainty`` (0) says nothing,
    #: so the SR leaves it out and the PDF says so. ``None`` in results written before the field.
    ensemble_size: int | None = Field(default=None, ge=1)
    #: Classification passes per model that ``uncertainty`` spans: 4 with test-time flips
    #: (settings ``tta_flips``; schema 1.3), so a one-model bundle has a spread; ``None``: one.
    passes: int | None = Field(default=None, ge=2)

    @property
    def has_spread(self) -> bool:
        """Whether ``uncertainty`` measures a spread (several models or flip passes)."""
        return self.ensemble_size != 1 or self.passes is not None

    @field_validator("probabilities")
    @classmethod
    def _is_distribution(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not 0.0 <= p <= 1.0 for p in value) or not math.isclose(
            sum(value), 1.0, abs_tol=1e-3
        ):
            raise ValueError("probabilities must be in [0, 1] and sum to 1")
        return value

    @model_validator(mode="after")
    def _label_is_argmax(self) -> Category:
        best = max(range(3), key=lambda i: self.probabilities[i])
        if CATEGORY_LABELS[best] != self.label:
            raise ValueError("label must be the most probable class")
        return self


class Measurements(BaseModel):
    """Read off the segmentation (``None`` when no tumor was found)."""

    model_config = _Frozen
    tumor_volume_ml: float | None = Field(default=None, ge=0.0)
    tumor_max_diameter_mm: float | None = Field(default=None, ge=0.0)
    contact_deg: dict[str, float | None] = Field(default_factory=dict)

    @field_validator("contact_deg")
    @classmethod
    def _known_vessels(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        if set(value) - set(KEY_VESSELS):
            raise ValueError(f"contact_deg keys must be among {KEY_VESSELS}")
        if any(v is not None and not 0.0 <= v <= 360.0 for v in value.values()):
            raise ValueError("contact angles must be within 0-360 degrees")
        return value


class ClinicalUse(BaseModel):
    """Which clinical variables were used, missing or imputed."""

    model_config = _Frozen
    used: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    imputed: tuple[str, ...] = ()
    knocked_out: bool = False
    registry_status: str = "not_configured"


class DomainCheck(BaseModel):
    """How far the CT and its segmentation are from the bundle's training cohort (schema 1.3).

    Attributes
    ----------
    grade
        ``in-domain``, ``borderline``, ``out-of-domain`` (the NCCN category is withheld), or
        ``not-available`` when the bundle holds no ``domain`` statistics (never silently
        in-domain).
    reasons
        One line per check that was not passed, with its numbers; empty when in domain.
    numbers
        What was measured (e.g. ``intensity_distance_iqr``, ``pancreas_ml``), ``None`` when not
        measurable.
    source
        Which training sample the bundle's statistics came from.
    """

    model_config = _Frozen
    grade: Literal["in-domain", "borderline", "out-of-domain", "not-available"]
    reasons: tuple[str, ...] = ()
    numbers: dict[str, float | None] = Field(default_factory=dict)
    source: str | None = None

    @field_validator("numbers")
    @classmethod
    def _finite_numbers(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        if any(v is not None and not math.isfinite(v) for v in value.values()):
            raise ValueError("domain numbers must be finite (None when not measured)")
        return value

    @model_validator(mode="after")
    def _reasons_when_not_in_domain(self) -> DomainCheck:
        if self.grade != "in-domain" and not self.reasons:
            raise ValueError(f"a {self.grade} domain check must give its reasons")
        return self


class Localisation(BaseModel):
    """Where the coarse stage found the pancreas."""

    model_config = _Frozen
    found: bool
    confidence: float = Field(ge=0.0, le=1.0)
    box_mm: tuple[float, float, float, float, float, float] | None = None
    #: Which localiser ran (e.g. ``learned-unet-5mm v1`` or ``landmarks: ...``); ``None`` in
    #: results written before the field existed.
    method: str | None = None


class Outputs(BaseModel):
    """SOP Instance UIDs of the DICOM objects written."""

    model_config = _Frozen
    seg_sop_uid: str | None = None
    sr_sop_uid: str | None = None
    pdf_sop_uid: str | None = None
    #: The SEG of the lesions the PDAC detector reports (schema 1.5; ``None`` without one).
    detection_seg_sop_uid: str | None = None
    #: The SEG of the nodes the lymph-node model reports (schema 1.6; ``None`` without one).
    lymph_node_seg_sop_uid: str | None = None


class CodeRef(BaseModel):
    """A coded concept (PS3.3 Code Sequence Macro, Table 8.8-1): value, scheme and meaning.

    Findings carry their concept names and UCUM units as codes so that the SR can hold them
    as coded measurements (PS3.16 TID 300) without the writer knowing the task.
    """

    model_config = _Frozen
    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=64)


class TaskFinding(BaseModel):
    """One numeric finding of a task: a coded name, a value and a UCUM unit.

    ``value`` is ``None`` when the task could not measure it (stated, never guessed).
    """

    model_config = _Frozen
    name: CodeRef
    value: float | None
    unit: CodeRef

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("a finding's value must be finite")
        return value

    @field_validator("unit")
    @classmethod
    def _ucum(cls, value: CodeRef) -> CodeRef:
        if value.scheme != "UCUM":
            raise ValueError("a finding's unit must be a UCUM code")
        return value


class TaskSection(BaseModel):
    """What one analysis task (other than the resectability task) contributed.

    Attributes
    ----------
    title
        Human-readable task name (PDF heading, SR tracking identifier).
    model_version
        Version of the task's model within the bundle.
    outcome
        What happened: ``done``, ``no-finding`` or ``refused: <reason>``.
    finding_type
        The coded concept of the task's SR group (e.g. a SNOMED CT finding).
    findings
        Its coded numeric findings.
    notes
        Plain-text lines for the PDF and the SR's qualitative evaluations.
    """

    model_config = _Frozen
    title: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1)
    outcome: str = Field(pattern=r"^(done|no-finding|refused: .+)$")
    finding_type: CodeRef
    findings: tuple[TaskFinding, ...] = ()
    notes: tuple[str, ...] = ()


class SourceSeries(BaseModel):
    """Which state of the series an analysis read (schema 1.4, issue 22 item 4).

    The node versions a series: an instance arriving after the series was complete opens
    version + 1, whose analysis supersedes the earlier one. ``series_version`` is ``None``
    outside the node (``pancreas-node analyze`` on a folder).
    """

    model_config = _Frozen
    instance_count: int = Field(ge=1)
    series_version: int | None = Field(default=None, ge=1)

    def describe(self) -> str:
        """One line for the SR, the PDF and the viewer: ``series version 2, 301 instances``."""
        count = f"{self.instance_count} instance{'s' if self.instance_count != 1 else ''}"
        if self.series_version is None:
            return count
        return f"series version {self.series_version}, {count}"


class AnalysisResult(BaseModel):
    """Everything one analysis produced; serialised as ``result.json``."""

    model_config = _Frozen
    schema_version: Literal["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"] = (
        RESULT_SCHEMA_VERSION
    )
    study_uid: str
    series_uid: str
    job_id: str | None = None
    bundle: BundleRef
    #: ``no-tumor``: no tumor was segmented, so there is no category to stage (schema 1.2;
    #: ``done`` in older results); ``out-of-domain``: the category is withheld because the CT
    #: is strongly out of the training domain (schema 1.3).
    #: ``no-pdac``: the PDAC detector found none, so no category is given (schema 1.5).
    outcome: Literal["done", "no-tumor", "out-of-domain", "no-pdac"] = "done"
    #: The network's NCCN category; ``None`` exactly when ``outcome`` is not ``done``.
    category: Category | None
    rule_category: Literal["resectable", "borderline", "locally advanced"] | None = None
    disagreement: bool = False
    measurements: Measurements = Field(default_factory=Measurements)
    clinical: ClinicalUse = Field(default_factory=ClinicalUse)
    localisation: Localisation
    outputs: Outputs = Field(default_factory=Outputs)
    #: Sections of further analysis tasks by task name (schema 1.1; empty in 1.0 results).
    tasks: dict[str, TaskSection] = Field(default_factory=dict)
    #: The domain check (schema 1.3; ``None`` in older results).
    domain: DomainCheck | None = None
    #: The series version and instances analysed (schema 1.4; ``None`` in older results and
    #: for a NIfTI input).
    source: SourceSeries | None = None
    #: The PDAC detector's answer (schema 1.5; ``None`` without a detection bundle).
    detection: Detection | None = None
    #: The lymph-node model's answer (schema 1.6; ``None`` without a lymph-node bundle).
    lymph_nodes: LymphNodeAssessment | None = None
    #: The survival model's answer (schema 1.7; ``None`` without a survival bundle, or when
    #: no tumor was segmented).
    prognosis: SurvivalPrognosis | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notice: Literal["Investigational, not for clinical use."] = INVESTIGATIONAL_NOTICE

    @model_validator(mode="after")
    def _no_tumor_has_no_category(self) -> AnalysisResult:
        if (self.category is None) != (self.outcome != "done"):
            raise ValueError("category must be None exactly when outcome is not done")
        if self.outcome != "done" and self.rule_category is not None:
            raise ValueError(f"a {self.outcome} result has no rule_category")
        if self.outcome == "no-tumor" and NO_TUMOR_NOTE not in self.warnings:
            raise ValueError(f"a no-tumor result must warn {NO_TUMOR_NOTE!r}")
        if self.outcome == "out-of-domain":
            if self.domain is None or self.domain.grade != "out-of-domain":
                raise ValueError("an out-of-domain result needs an out-of-domain domain check")
            if OUT_OF_DOMAIN_NOTE not in self.warnings:
                raise ValueError(f"an out-of-domain result must warn {OUT_OF_DOMAIN_NOTE!r}")
        if self.outcome == "no-pdac":
            if self.detection is None or self.detection.detected:
                raise ValueError("a no-pdac result needs a detection that found no PDAC")
            if NO_PDAC_NOTE not in self.warnings:
                raise ValueError(f"a no-pdac result must warn {NO_PDAC_NOTE!r}")
        elif self.detection is not None and not self.detection.detected and self.category:
            raise ValueError("a category is given only when the detector found a PDAC")
        return self

    @model_validator(mode="after")
    def _disagreement_is_consistent(self) -> AnalysisResult:
        label = None if self.category is None else self.category.label
        expected = self.rule_category is not None and self.rule_category != label
        if self.disagreement != expected:
            raise ValueError("disagreement must say whether rule_category differs from category")
        return self

    def no_category_note(self) -> str | None:
        """Why there is no NCCN category (the outcome's note), ``None`` for ``done``."""
        notes = {"no-tumor": NO_TUMOR_NOTE, "out-of-domain": OUT_OF_DOMAIN_NOTE}
        return notes.get(self.outcome, NO_PDAC_NOTE if self.outcome == "no-pdac" else None)

    def to_json(self) -> str:
        """``result.json`` text."""
        return self.model_dump_json(indent=2)
