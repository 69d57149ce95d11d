"""Turning what registries hold into model values: parsing, units, categories, dates.

Every function here is total: any input gives a value or "missing", never an exception,
because one odd cell must not stop a patient's analysis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "Censoring",
    "ParseIssue",
    "ParsedValue",
    "UnitConversion",
    "age_at",
    "from_model_units",
    "normalise_unit",
    "parse_category",
    "parse_registry_date",
    "parse_registry_value",
    "supported_units",
    "to_model_units",
]

DATE_OF_BIRTH = "date_of_birth"
_MAX_TEXT = 64  # longer cells are free text, not a number; also bounds the regex work


class Censoring(StrEnum):
    """Whether the registry reported a limit instead of a value (``"<2"``, ``">1000"``)."""

    NONE = "none"
    BELOW = "below"
    ABOVE = "above"


class ParseIssue(StrEnum):
    """Why a cell gave no number."""

    EMPTY = "empty"
    NOT_AVAILABLE = "not available"
    NOT_A_NUMBER = "not a number"
    NOT_FINITE = "not finite"


@dataclass(frozen=True)
class ParsedValue:
    """A parsed registry cell: a finite number or missing (``value is None``).

    Parameters
    ----------
    value
        The number, or ``None`` when missing.
    censoring
        ``BELOW``/``ABOVE`` when the cell gave a detection limit; ``value`` is then the limit.
    unit
        A unit written in the cell after the number (``"12 mg/dL"``), else ``None``.
    issue
        Why the value is missing.
    """

    value: float | None
    censoring: Censoring = Censoring.NONE
    unit: str | None = None
    issue: ParseIssue | None = None

    @property
    def missing(self) -> bool:
        """Whether no number was found."""
        return self.value is None


_NOT_AVAILABLE = frozenset(
    {
        "-", "--", "---", ".", "?", "na", "n.a.", "n.a", "n/a", "nan", "null", "none",
        "nd", "n.d.", "unknown", "unbekannt", "k.a.", "missing", "not available", "not done",
    }
)  # fmt: skip
_CENSOR = re.compile(r"^(<=|>=|=<|=>|<|>|≤|≥)\s*")
_NUMBER = re.compile(
    r"^(?P<sign>[+\-\u2212]?)\s*"
    r"(?P<digits>\d[\d.,'\u00a0\u202f ]*\d|\d|[.,]\d+)"
    r"(?P<exp>[eE][+\-]?\d{1,3}(?![A-Za-z]))?",
    re.ASCII,  # only ASCII digits: float() would also accept other scripts' digits
)
_UNIT_TEXT = re.compile(
    r"^[%A-Za-zµμ°][A-Za-z0-9µμ%/²³^.*·\-]{0,23}$"
)  # no spaces: "12 to 15" is text
_GROUP_SEPARATORS = frozenset(" '\u00a0\u202f")


def _digits_to_float(digits: str) -> float | None:
    """Decimal comma or point, thousands separators; ``None`` if the grouping is inconsistent.

    A single comma or a single point is the decimal separator (``"12,5"``, ``"1.234"`` read as
    12.5 and 1.234); with both, the last one is (``"1.234,5"``, ``"1,234.5"``); several of the
    same are thousands separators (``"1.234.567"``).
    """
    dots, commas = digits.count("."), digits.count(",")
    if dots and commas:
        decimal_sep = "." if digits.rfind(".") > digits.rfind(",") else ","
        if digits.count(decimal_sep) > 1:
            return None
        thousands = "," if decimal_sep == "." else "."
    elif commas:
        decimal_sep, thousands = ("," if commas == 1 else ""), ("," if commas > 1 else "")
    elif dots:
        decimal_sep, thousands = ("." if dots == 1 else ""), ("." if dots > 1 else "")
    else:
        decimal_sep, thousands = "", ""
    integer, fraction = digits, ""
    if decimal_sep:
        integer, _, fraction = digits.rpartition(decimal_sep)
    if not fraction.isdigit() and fraction:
        return None
    separators = _GROUP_SEPARATORS | ({thousands} if thousands else set())
    if any(ch in separators for ch in integer):
        groups = re.split("[" + re.escape("".join(sorted(separators))) + "]", integer)
        head, tail = groups[0], groups[1:]
        if not (1 <= len(head) <= 3 and head.isdigit()) or any(
            len(g) != 3 or not g.isdigit() for g in tail
        ):
            return None
        integer = "".join(groups)
    if integer and not integer.isdigit():
        return None
    return float(f"{integer or '0'}.{fraction or '0'}")


def _parse_text(text: str) -> ParsedValue:
    text = " ".join(text.split())  # all Unicode whitespace, incl. NBSP, becomes one space
    if not text:
        return ParsedValue(None, issue=ParseIssue.EMPTY)
    if text.casefold() in _NOT_AVAILABLE:
        return ParsedValue(None, issue=ParseIssue.NOT_AVAILABLE)
    if len(text) > _MAX_TEXT:
        return ParsedValue(None, issue=ParseIssue.NOT_A_NUMBER)
    censoring = Censoring.NONE
    prefix = _CENSOR.match(text)
    if prefix:
        censoring = (
            Censoring.BELOW if prefix.group(1) in {"<", "<=", "=<", "≤"} else Censoring.ABOVE
        )
        text = text[prefix.end() :]
    number = _NUMBER.match(text)
    if number is None:
        return ParsedValue(None, issue=ParseIssue.NOT_A_NUMBER)
    rest = text[number.end() :].strip()
    if rest and not _UNIT_TEXT.match(rest):
        return ParsedValue(None, issue=ParseIssue.NOT_A_NUMBER)
    magnitude = _digits_to_float(number.group("digits"))
    if magnitude is None:
        return ParsedValue(None, issue=ParseIssue.NOT_A_NUMBER)
    if number.group("exp"):
        try:
            magnitude *= 10.0 ** int(number.group("exp")[1:])
        except OverflowError:
            return ParsedValue(None, issue=ParseIssue.NOT_FINITE)
    value = -magnitude if number.group("sign") in {"-", "\u2212"} else magnitude
    if not math.isfinite(value):
        return ParsedValue(None, issue=ParseIssue.NOT_FINITE)
    return ParsedValue(value, censoring=censoring, unit=rest or None)


def parse_registry_value(raw: object) -> ParsedValue:
    """Parse one registry cell into a number or missing; never raises.

    Understands numbers of any SQL type, ``None``, booleans, and text such as ``"12,5"``,
    ``"1.234,5"``, ``" 7.1 "``, ``"12 mg/dL"`` (unit kept in :attr:`ParsedValue.unit`),
    ``"<2"``/``">1000"`` (the limit, marked censored) and ``"n.a."``, ``"NA"``, ``"-"``, ``""``
    (missing).
    """
    if raw is None:
        return ParsedValue(None, issue=ParseIssue.EMPTY)
    if isinstance(raw, bool):
        return ParsedValue(1.0 if raw else 0.0)
    if isinstance(raw, int | float | Decimal):
        try:
            value = float(raw)
        except (OverflowError, ValueError):  # huge ints; Decimal('sNaN')
            return ParsedValue(None, issue=ParseIssue.NOT_FINITE)
        if not math.isfinite(value):
            return ParsedValue(None, issue=ParseIssue.NOT_FINITE)
        return ParsedValue(value)
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        return _parse_text(raw)
    return ParsedValue(None, issue=ParseIssue.NOT_A_NUMBER)


def parse_category(raw: object, categories: Mapping[str, int]) -> int | None:
    """A categorical code from a cell: a mapped label (case- and space-insensitive) or an integer.

    Returns ``None`` when neither applies; whether the code is allowed is the caller's check.
    """
    if isinstance(raw, str | bytes):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        key = " ".join(text.split()).casefold()
        for label, code in categories.items():
            if " ".join(label.split()).casefold() == key:
                return code
    parsed = parse_registry_value(raw)
    if parsed.value is None or parsed.unit or parsed.censoring is not Censoring.NONE:
        return None
    if not parsed.value.is_integer():
        return None
    return int(parsed.value)


_DATE_FORMATS = ("%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%Y%m%d", "%Y/%m/%d")


def parse_registry_date(raw: object) -> date | None:
    """A date from a date, datetime or text cell (ISO 8601, ``YYYYMMDD``, ``DD.MM.YYYY``).

    Datetimes keep their time of day (returned as :class:`~datetime.datetime`, a ``date``
    subclass) so same-day values order correctly; ``None`` when unreadable.
    """
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt)
            except ValueError:
                continue
        return None
    return parsed


def day_of(moment: date) -> date:
    """The calendar day of a date or datetime."""
    return moment.date() if isinstance(moment, datetime) else moment


def age_at(birth: date, when: date) -> float:
    """Age in years (fractional, 365.25-day years) at ``when``."""
    return (day_of(when) - day_of(birth)).days / 365.25


def normalise_unit(unit: str | None) -> str:
    """Canonical spelling of a unit for comparison: ``"µmol/L"`` -> ``"umol/l"``."""
    if not unit:
        return ""
    text = unit.strip().casefold()
    for old, new in (("µ", "u"), ("μ", "u"), ("mcg", "ug"), ("²", "2"), ("^2", "2"), (" ", "")):
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class UnitConversion:
    """``model = scale * (registry - offset)``: linear, or affine for HbA1c % -> mmol/mol."""

    scale: float = 1.0
    offset: float = 0.0

    def to_model(self, value: float) -> float:
        """Registry unit -> model unit."""
        return self.scale * (value - self.offset)

    def from_model(self, value: float) -> float:
        """Model unit -> registry unit."""
        return value / self.scale + self.offset


_SAME = UnitConversion()
_TUMOUR_MARKER = MappingProxyType({"u/ml": _SAME, "ku/l": _SAME})  # 1 kU/L = 1 U/mL
# Conversions into the units of pancreas_contracts.clinical (the model's units).
_UNITS: Mapping[str, Mapping[str, UnitConversion]] = MappingProxyType(
    {
        "age": MappingProxyType({"a": _SAME, "y": _SAME, "yr": _SAME, "years": _SAME}),
        "bmi": MappingProxyType({"kg/m2": _SAME}),
        "cci": MappingProxyType({"": _SAME, "{score}": _SAME, "score": _SAME, "points": _SAME}),
        "ca19_9_baseline": _TUMOUR_MARKER,
        "ca19_9_delta": _TUMOUR_MARKER,
        "ca19_9_post": _TUMOUR_MARKER,
        "cea": MappingProxyType({"ng/ml": _SAME, "ug/l": _SAME}),  # 1 ng/mL = 1 ug/L
        "glucose": MappingProxyType({"mmol/l": _SAME, "mg/dl": UnitConversion(scale=1 / 18.016)}),
        # IFCC (mmol/mol) = 10.929 * (NGSP % - 2.15)
        "hba1c": MappingProxyType(
            {"mmol/mol": _SAME, "%": UnitConversion(scale=10.929, offset=2.15)}
        ),
        "bilirubin": MappingProxyType({"umol/l": _SAME, "mg/dl": UnitConversion(scale=17.104)}),
    }
)


def supported_units(variable: str) -> tuple[str, ...]:
    """Normalised units accepted for ``variable`` (empty for categorical variables)."""
    return tuple(_UNITS.get(variable, {}))


def _conversion(variable: str, unit: str | None) -> UnitConversion | None:
    units = _UNITS.get(variable)
    if units is None:
        return _SAME  # categorical: codes carry no unit
    return units.get(normalise_unit(unit))


def to_model_units(variable: str, value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to ``variable``'s model unit; ``None`` if unit unknown."""
    conversion = _conversion(variable, unit)
    return None if conversion is None else conversion.to_model(value)


def from_model_units(variable: str, value: float, unit: str | None) -> float:
    """The inverse of :func:`to_model_units` (the demo registry writes registry units).

    Raises
    ------
    ValueError
        If ``unit`` is not supported for ``variable``.
    """
    conversion = _conversion(variable, unit)
    if conversion is None:
        raise ValueError(f"unit not supported for {variable}")
    return conversion.from_model(value)
