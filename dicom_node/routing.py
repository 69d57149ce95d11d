"""Declarative routing rules: which complete series the node analyses, and why.

Rules are TOML (see ``dicom_node/rules/default.toml``): an ordered list of named rules whose
conditions look at DICOM attributes (Modality, SOP Class, number of slices, SliceThickness,
BodyPartExamined, SeriesDescription), the calling AE title, and the contrast phase measured
on the image itself (:mod:`inference.contrast_phase`), never trusted from the description.
The first rule whose conditions all hold decides; the decision keeps every reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "RoutingDecisionResult",
    "Rule",
    "RuleAction",
    "RuleConditions",
    "RuleSet",
    "SeriesFacts",
    "load_rules",
]


class RuleAction(StrEnum):
    """What to do with a series."""

    ANALYZE = "analyze"
    IGNORE = "ignore"


@dataclass(frozen=True)
class SeriesFacts:
    """What the rules may look at for one series.

    ``contrast_phase`` is computed only when a rule asks for it (it reads the pixels).
    ``slice_thickness_mm`` may be the spacing of the slice positions where SliceThickness is
    empty (Type 2, PS3.3 C.7.6.2); ``slice_thickness_source`` then says so.
    """

    modality: str
    sop_class: str
    num_slices: int
    slice_thickness_mm: float | None
    body_part: str
    series_description: str
    calling_ae: str
    contrast_phase: Callable[[], tuple[str, str]] = field(
        default=lambda: ("unknown", "contrast phase not measured")
    )
    #: Where ``slice_thickness_mm`` came from, in words (SliceThickness, or derived from the
    #: slice positions when SliceThickness is empty, absent or multi-valued); "" when not told.
    slice_thickness_source: str = ""


class RuleConditions(BaseModel):
    """Conditions of one rule; an absent condition always holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    modality: list[str] | None = None
    sop_class: list[str] | None = None
    min_slices: int | None = Field(default=None, ge=1)
    max_slices: int | None = Field(default=None, ge=1)
    min_slice_thickness_mm: float | None = Field(default=None, ge=0)
    max_slice_thickness_mm: float | None = Field(default=None, gt=0)
    body_part: list[str] | None = None
    series_description_matches: str | None = None
    series_description_excludes: str | None = None
    calling_ae: list[str] | None = None
    contrast_phase: list[str] | None = None

    @field_validator("series_description_matches", "series_description_excludes")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @field_validator("contrast_phase")
    @classmethod
    def _known_phases(cls, value: list[str] | None) -> list[str] | None:
        known = {"portal-venous", "arterial", "non-contrast", "unknown"}
        if value is not None and not set(value) <= known:
            raise ValueError(f"contrast_phase must be among {sorted(known)}")
        return value

    def check(self, facts: SeriesFacts) -> tuple[bool, list[str]]:
        """Return whether every condition holds and one reason per condition checked."""
        reasons: list[str] = []
        for check in (
            self._check_lists,
            self._check_slices,
            self._check_thickness,
            self._check_description,
            self._check_phase,
        ):
            ok, why = check(facts)
            reasons.extend(why)
            if not ok:
                return False, reasons
        return True, reasons

    def _check_lists(self, facts: SeriesFacts) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        for label, allowed, value in (
            ("Modality", self.modality, facts.modality),
            ("SOP Class", self.sop_class, facts.sop_class),
            ("BodyPartExamined", self.body_part, facts.body_part),
            ("calling AE", self.calling_ae, facts.calling_ae),
        ):
            if allowed is None:
                continue
            ok = value.strip().upper() in {a.strip().upper() for a in allowed}
            reasons.append(f"{label} '{value}' {'in' if ok else 'not in'} {allowed}")
            if not ok:
                return False, reasons
        return True, reasons

    def _check_slices(self, facts: SeriesFacts) -> tuple[bool, list[str]]:
        n = facts.num_slices
        if self.min_slices is not None and n < self.min_slices:
            return False, [f"{n} slices < {self.min_slices}"]
        if self.max_slices is not None and n > self.max_slices:
            return False, [f"{n} slices > {self.max_slices}"]
        if self.min_slices is None and self.max_slices is None:
            return True, []
        return True, [f"{n} slices within limits"]

    def _check_thickness(self, facts: SeriesFacts) -> tuple[bool, list[str]]:
        if self.min_slice_thickness_mm is None and self.max_slice_thickness_mm is None:
            return True, []
        t = facts.slice_thickness_mm
        source = f" ({facts.slice_thickness_source})" if facts.slice_thickness_source else ""
        if t is None:
            return False, [f"slice thickness unknown{source}"]
        shown = f"slice thickness {t:.3g} mm{source}"
        if self.max_slice_thickness_mm is not None and t > self.max_slice_thickness_mm:
            return False, [f"{shown} > {self.max_slice_thickness_mm:g} mm"]
        if self.min_slice_thickness_mm is not None and t < self.min_slice_thickness_mm:
            return False, [f"{shown} < {self.min_slice_thickness_mm:g} mm"]
        return True, [f"{shown} within limits"]

    def _check_description(self, facts: SeriesFacts) -> tuple[bool, list[str]]:
        text = facts.series_description
        if self.series_description_matches and not re.search(self.series_description_matches, text):
            return False, ["SeriesDescription does not match the required pattern"]
        if self.series_description_excludes and re.search(self.series_description_excludes, text):
            return False, ["SeriesDescription matches an excluded pattern"]
        return True, []

    def _check_phase(self, facts: SeriesFacts) -> tuple[bool, list[str]]:
        if self.contrast_phase is None:
            return True, []
        phase, detail = facts.contrast_phase()
        ok = phase in self.contrast_phase
        return ok, [
            f"contrast phase {phase} {'in' if ok else 'not in'} {self.contrast_phase} ({detail})"
        ]


class Rule(BaseModel):
    """One named rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    action: RuleAction
    when: RuleConditions = Field(default_factory=RuleConditions)


@dataclass(frozen=True)
class RoutingDecisionResult:
    """The outcome for one series: action, deciding rule (if any) and all reasons."""

    action: RuleAction
    rule: str | None
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line: action, rule and reasons (stored with the series)."""
        head = (
            f"{self.action.value} by rule '{self.rule}'"
            if self.rule
            else f"{self.action.value} (no rule matched)"
        )
        return head + ": " + "; ".join(self.reasons) if self.reasons else head


class RuleSet(BaseModel):
    """An ordered list of rules and the action when none matches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    default_action: RuleAction = RuleAction.IGNORE

    def evaluate(self, facts: SeriesFacts) -> RoutingDecisionResult:
        """Apply the rules in order to ``facts``."""
        misses: list[str] = []
        for rule in self.rules:
            ok, reasons = rule.when.check(facts)
            if ok:
                return RoutingDecisionResult(rule.action, rule.name, tuple(reasons))
            misses.append(f"'{rule.name}': {reasons[-1] if reasons else 'no match'}")
        return RoutingDecisionResult(self.default_action, None, tuple(misses))


def load_rules(path: Path | None = None) -> RuleSet:
    """Load a TOML rule file, or the packaged default rules when ``path`` is None.

    Raises
    ------
    ValueError
        If the file cannot be read or is not a valid rule set (one-line message).
    """
    try:
        if path is None:
            text = resources.files("dicom_node").joinpath("rules/default.toml").read_text("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return RuleSet.model_validate(tomllib.loads(text))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read routing rules {path or 'default'}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(
            f"invalid routing rules {path or 'default'}: {where}: {first['msg']}"
        ) from exc
