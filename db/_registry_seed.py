"""``registry seed``: a demo clinical registry built from a phantom ``clinical.csv``.

The registry's schema is deliberately unlike the model's variables, the way hospital
registries are: a ``patients`` table keyed by an internal MRN (the DICOM PatientID is ``pid``),
dated lab results as text in the lab's own units (glucose and bilirubin in mg/dL, HbA1c in %,
decimal commas, ``<`` limits, ``n.a.``), and a ``history`` table of coded free text. Several
rows per analyte (too old, after the CT, not available) exercise the time rule.
``deploy/registry/example-registry.toml`` maps it back to the model's variables.
"""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from db._registry_values import from_model_units, parse_registry_date
from pancreas_contracts.clinical import CLINICAL_VARIABLES

__all__ = ["DEFAULT_CT_DATE", "SeedSummary", "seed_demo_registry"]

_log = logging.getLogger(__name__)

DEFAULT_CT_DATE = date(2025, 3, 14)
_META = "demo_registry_meta"
_TABLES = (_META, "history", "lab_results", "patients")

# variable -> (analyte code, registry unit(s)); units alternate between patients.
_LABS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "bmi": ("BMI", ("kg/m²",)),
        "glucose": ("GLU", ("mg/dL",)),
        "bilirubin": ("TBIL", ("mg/dL",)),
        "hba1c": ("HBA1C", ("%",)),
        "ca19_9_baseline": ("CA19-9", ("U/mL", "kU/L")),
        "cea": ("CEA", ("µg/L", "ng/mL")),
    }
)
# variable -> (history item, code -> text); numeric items have no code table.
_HISTORY: Mapping[str, tuple[str, Mapping[int, str] | None]] = MappingProxyType(
    {
        "cci": ("CHARLSON", None),
        "asa": ("ASA", {1: "ASA I", 2: "ASA II", 3: "ASA III", 4: "ASA IV", 5: "ASA V"}),
        "diabetes": ("DIABETES", {0: "no", 1: "yes"}),
        "nicotine": ("SMOKER", {0: "never", 1: "current"}),
        "alcohol": ("ALCOHOL", {0: "No", 1: "Yes"}),
        "grade": ("GRADING", {1: "G1", 2: "G2", 3: "G3"}),
        "neoadjuvant": ("NEOADJUVANT", {0: "none", 1: "chemotherapy", 2: "radiochemotherapy"}),
        "ca19_9_post": ("CA19-9 POST", None),
        "ca19_9_delta": ("CA19-9 DELTA", None),
    }
)


@dataclass(frozen=True)
class SeedSummary:
    """Counts of what was written."""

    patients: int
    lab_rows: int
    history_rows: int


def _schema() -> tuple[MetaData, dict[str, Table]]:
    metadata = MetaData()
    tables = {
        _META: Table(
            _META,
            metadata,
            Column("key", String(64), primary_key=True),
            Column("value", String(256)),
        ),
        "patients": Table(
            "patients",
            metadata,
            Column("mrn", String(16), primary_key=True),
            Column("pid", String(64), index=True),  # not unique: real registries have dupes
            Column("birth_date", Date),
            Column("gender", String(1)),
        ),
        "lab_results": Table(
            "lab_results",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("mrn", String(16), index=True),
            Column("analyte_code", String(16)),
            Column("value_text", String(32)),
            Column("unit", String(16)),
            Column("taken_at", DateTime),
        ),
        "history": Table(
            "history",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("mrn", String(16), index=True),
            Column("item", String(32)),
            Column("value_text", String(64)),
            Column("recorded_on", Date),
        ),
    }
    return metadata, tables


def _number(value: float, style: int, unit: str) -> str:
    """Registry-style text for a number: plain, decimal comma, unit glued, or padded."""
    plain = f"{value:.4f}".rstrip("0")
    plain = plain + "0" if plain.endswith(".") else plain
    if style == 1:  # European: decimal comma, point as thousands separator
        grouped = f"{value:,.4f}".rstrip("0")
        grouped = grouped + "0" if grouped.endswith(".") else grouped
        return grouped.translate(str.maketrans(",.", ".,"))
    if style == 2:
        return f"{plain} {unit}" if unit and " " not in unit else plain
    if style == 3:
        return f"  {plain} "
    return plain


def _read_clinical(path: Path) -> list[dict[str, Any]]:
    names = {v.name for v in CLINICAL_VARIABLES}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "patient_id" not in reader.fieldnames:
                raise ValueError(f"{path}: needs a patient_id column")
            patients = []
            for number, row in enumerate(reader, start=2):
                record: dict[str, Any] = {"patient_id": (row.get("patient_id") or "").strip()}
                if not record["patient_id"]:
                    raise ValueError(f"{path}: line {number}: empty patient_id")
                for column, cell in row.items():
                    if column in names:
                        record[column] = _cell(path, number, column, cell)
                record["ct_date"] = parse_registry_date(row.get("study_date") or row.get("ct_date"))
                patients.append(record)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    return patients


def _cell(path: Path, number: int, column: str, cell: str | None) -> float | None:
    if cell is None or not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"{path}: line {number}: {column} is not a number") from None


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return create_engine(parsed)
    except (ArgumentError, ImportError) as exc:
        raise ValueError(f"cannot use registry URL ({type(exc).__name__})") from exc


def seed_demo_registry(
    clinical_csv: Path, url: str, *, ct_date: date = DEFAULT_CT_DATE, seed: int = 0
) -> SeedSummary:
    """Build the demo registry at ``url`` from ``clinical_csv`` (model units, ``patient_id``).

    An optional ``study_date`` (or ``ct_date``) column gives each patient's CT date; else
    ``ct_date``. Lab dates are placed relative to it. Re-seeding replaces a previous demo
    registry; tables of another origin are never touched.

    Raises
    ------
    ValueError
        If the CSV is unreadable, the URL unusable, or the target holds foreign tables.
    OSError
        If the database cannot be written.
    """
    patients = _read_clinical(clinical_csv)
    metadata, tables = _schema()
    engine = _engine(url)
    rng = random.Random(seed)
    labs = history = 0
    try:
        existing = set(inspect(engine).get_table_names())
        if existing & set(_TABLES) and _META not in existing:
            raise ValueError("target database has registry tables not made by registry seed")
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(
                tables[_META].insert(),
                [
                    {"key": "created_by", "value": "pancreas-node registry seed"},
                    {"key": "ct_date", "value": ct_date.isoformat()},
                ],
            )
            for index, patient in enumerate(patients):
                day = patient["ct_date"] or ct_date
                day = day.date() if isinstance(day, datetime) else day
                mrn = f"M{700000 + index * 7 + rng.randrange(7)}"
                connection.execute(tables["patients"].insert(), [_patient_row(mrn, patient, day)])
                lab_rows = _lab_rows(mrn, patient, day, index, rng)
                history_rows = _history_rows(mrn, patient, day, index, rng)
                if lab_rows:
                    connection.execute(tables["lab_results"].insert(), lab_rows)
                if history_rows:
                    connection.execute(tables["history"].insert(), history_rows)
                labs += len(lab_rows)
                history += len(history_rows)
    except SQLAlchemyError as exc:
        raise OSError(f"cannot write the demo registry: {type(exc).__name__}") from exc
    finally:
        engine.dispose()
    _log.info("demo registry seeded: %d patients, %d lab rows", len(patients), labs)
    return SeedSummary(patients=len(patients), lab_rows=labs, history_rows=history)


def _patient_row(mrn: str, patient: Mapping[str, Any], ct_date: date) -> dict[str, Any]:
    age = patient.get("age")
    sex = patient.get("sex")
    return {
        "mrn": mrn,
        "pid": patient["patient_id"],
        "birth_date": None if age is None else ct_date - timedelta(days=round(age * 365.25)),
        "gender": None if sex is None else ("M" if int(sex) == 1 else "F"),
    }


def _lab_rows(
    mrn: str, patient: Mapping[str, Any], ct_date: date, index: int, rng: random.Random
) -> list[dict[str, Any]]:
    ct = datetime.combine(ct_date, time(9, 0))
    rows = []
    for name, (code, units) in _LABS.items():
        unit = units[index % len(units)]
        value = patient.get(name)

        def row(text: str, taken: datetime, code: str = code, unit: str = unit) -> dict[str, Any]:
            return {
                "mrn": mrn,
                "analyte_code": code,
                "value_text": text,
                "unit": unit,
                "taken_at": taken,
            }

        # Too old for any window, and after the CT: both must be ignored by the time rule.
        old = 1.7 * value if value is not None else 5.0
        rows.append(row(f"<{_number(old, 0, unit)}", ct - timedelta(days=400)))
        if value is None:
            if index % 2:
                rows.append(row("n.a.", ct - timedelta(days=3)))
            continue
        registry_value = from_model_units(name, value, unit)
        taken = ct - timedelta(days=2 + index % 20, hours=rng.randrange(0, 12))
        rows.append(row(_number(registry_value, rng.randrange(4), unit), taken))
        rows.append(row(_number(registry_value * 1.3 + 1, 0, unit), ct + timedelta(days=4)))
        if index % 3 == 0:  # a newer unusable entry must not hide the valid one
            rows.append(row("n.a.", ct - timedelta(days=1)))
    return rows


def _history_rows(
    mrn: str, patient: Mapping[str, Any], ct_date: date, index: int, rng: random.Random
) -> list[dict[str, Any]]:
    rows = []
    for name, (item, codes) in _HISTORY.items():
        value = patient.get(name)
        if value is None:
            continue
        if codes is None:
            text = _number(value, rng.randrange(2), "")
        else:
            # A code outside the table is written as is; the lookup then reports it.
            text = codes.get(int(value), _number(value, 0, ""))
        recorded = ct_date - timedelta(days=10 + index % 30)
        if name == "asa":  # superseded older assessment: "latest" must win
            older = codes.get((int(value) % 5) + 1, text) if codes else text
            rows.append(
                {
                    "mrn": mrn,
                    "item": item,
                    "value_text": older,
                    "recorded_on": recorded - timedelta(days=700),
                }
            )
        rows.append({"mrn": mrn, "item": item, "value_text": text, "recorded_on": recorded})
    return rows
