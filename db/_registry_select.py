"""From a variable's registry rows to one model value: conversion and the time rule.

Pure functions (no database): the bridge fetches rows, this module decides. Warnings name the
variable and the problem, never the value or the patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from db._registry_config import TimeRule, VariableConfig
from db._registry_values import (
    DATE_OF_BIRTH,
    Censoring,
    ParseIssue,
    age_at,
    day_of,
    parse_category,
    parse_registry_date,
    parse_registry_value,
    to_model_units,
)
from pancreas_contracts.clinical import VariableKind, variable_by_name

__all__ = ["Choice", "RegistryRow", "choose_value", "convert_cell"]

_OUT_OF_RANGE = "value out of plausible range"


@dataclass(frozen=True)
class RegistryRow:
    """One row a variable's query returned: the cell, its unit cell and its date cell."""

    value: object
    unit: object = None
    taken_at: object = None


@dataclass(frozen=True)
class Converted:
    """A cell in model units, or the reason it is unusable."""

    value: float | None
    issue: str | None = None
    censoring: Censoring = Censoring.NONE


@dataclass(frozen=True)
class Choice:
    """The value chosen for a variable, where it came from, and what went wrong on the way."""

    value: float | None
    taken_at: date | None
    warnings: tuple[str, ...] = ()


def convert_cell(
    name: str, config: VariableConfig, value: object, unit: object, ct_date: date
) -> Converted:
    """One cell of variable ``name`` in model units (or why not)."""
    spec = variable_by_name(name)
    if config.unit == DATE_OF_BIRTH:
        birth = parse_registry_date(value)
        if birth is None:
            return Converted(None, "date of birth not readable")
        age = age_at(birth, ct_date)
        return Converted(age) if spec.is_valid(age) else Converted(None, _OUT_OF_RANGE)
    if spec.kind is VariableKind.CATEGORICAL:
        code = parse_category(value, config.categories)
        if code is None:
            missing = parse_registry_value(value).issue in {
                ParseIssue.EMPTY,
                ParseIssue.NOT_AVAILABLE,
            }
            return Converted(None, "value not available" if missing else "unknown category")
        return Converted(float(code)) if spec.is_valid(code) else Converted(None, _OUT_OF_RANGE)
    parsed = parse_registry_value(value)
    if parsed.value is None:
        if parsed.issue in {ParseIssue.EMPTY, ParseIssue.NOT_AVAILABLE}:
            return Converted(None, "value not available")
        return Converted(None, "value not a number")
    unit_text = parsed.unit or (unit if isinstance(unit, str) and unit.strip() else config.unit)
    model_value = to_model_units(name, parsed.value, unit_text)
    if model_value is None:
        return Converted(None, "unit not recognised")
    if not spec.is_valid(model_value):
        return Converted(None, _OUT_OF_RANGE)
    return Converted(model_value, censoring=parsed.censoring)


def _sort_key(taken: date | None) -> tuple[int, datetime]:
    # Undated rows sort after dated ones; dates without time sort as midnight of their day.
    if taken is None:
        return (0, datetime.min)
    if isinstance(taken, datetime):
        return (1, taken.replace(tzinfo=None))
    return (1, datetime(taken.year, taken.month, taken.day))


def choose_value(
    name: str,
    config: VariableConfig,
    rows: Sequence[RegistryRow],
    ct_date: date,
    window_days: int,
) -> Choice:
    """Apply ``config.time_rule`` to ``rows`` and return the chosen value in model units.

    ``latest_before_ct``/``latest`` walk the rows newest first and take the first usable one
    (an ``"n.a."`` entry does not hide an older valid value); ``single`` needs all usable rows
    to agree.
    """
    dated = [(parse_registry_date(row.taken_at), row) for row in rows]
    warnings: list[str] = []
    if config.time_rule is TimeRule.LATEST_BEFORE_CT:
        start = ct_date - timedelta(days=window_days)
        undated = sum(1 for taken, _ in dated if taken is None)
        if undated:
            warnings.append(f"{name}: {undated} undated value(s) ignored")
        in_window: list[tuple[date | None, RegistryRow]] = [
            (taken, row)
            for taken, row in dated
            if taken is not None and start <= day_of(taken) <= ct_date
        ]
        if dated and not in_window and undated < len(dated):
            warnings.append(f"{name}: no value within {window_days} days before the CT date")
        dated = in_window
    dated.sort(key=lambda item: _sort_key(item[0]), reverse=True)
    converted = [
        (taken, convert_cell(name, config, row.value, row.unit, ct_date)) for taken, row in dated
    ]
    usable = [c for _, c in converted if c.value is not None]
    issues = sorted({c.issue for _, c in converted if c.issue is not None})
    if config.time_rule is TimeRule.SINGLE:
        distinct = {round(c.value, 9) for c in usable if c.value is not None}
        if len(distinct) > 1:
            warnings.append(f"{name}: conflicting values in {len(usable)} rows, treated as missing")
            return Choice(None, None, tuple(warnings))
    if not usable:
        warnings.extend(
            f"{name}: {issue}, treated as missing"
            for issue in issues
            if issue != "value not available"
        )
        return Choice(None, None, tuple(warnings))
    first = next(i for i, (_, c) in enumerate(converted) if c.value is not None)
    taken, chosen = converted[first]
    for issue in sorted({c.issue for _, c in converted[:first] if c.issue}):
        warnings.append(f"{name}: newer row skipped ({issue})")
    if chosen.censoring is Censoring.BELOW:
        warnings.append(f"{name}: censored value ('<' limit) used as the value")
    elif chosen.censoring is Censoring.ABOVE:
        warnings.append(f"{name}: censored value ('>' limit) used as the value")
    return Choice(chosen.value, taken, tuple(warnings))
