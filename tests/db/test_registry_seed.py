"""The demo registry round trip: seed from clinical.csv, look every patient up (both backends)."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db._registry_values import day_of
from db.registry import RegistryBridge, RegistryLookupStatus, seed_demo_registry
from pancreas_contracts.clinical import CLINICAL_VARIABLES, VariableKind
from tests.db.registry_helpers import CT, NAMES, PATIENTS, example_config, write_clinical_csv


def test_seed_then_lookup_gives_the_original_values_back(
    registry_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    summary = seed_demo_registry(
        write_clinical_csv(tmp_path / "clinical.csv"), registry_url, ct_date=CT
    )
    assert summary.patients == len(PATIENTS)
    with RegistryBridge(example_config(registry_url)) as bridge:
        for patient in PATIENTS:
            result = bridge.lookup(str(patient["patient_id"]), CT)
            expected_missing = [n for n in NAMES if patient[n] == ""]
            assert list(result.variables.missing) == expected_missing, patient["patient_id"]
            assert result.status is (
                RegistryLookupStatus.PARTIAL if expected_missing else RegistryLookupStatus.OK
            )
            assert not result.imaging_only
            for spec in CLINICAL_VARIABLES:
                original = patient[spec.name]
                got = result.variables.values[spec.name]
                if original == "":
                    continue
                assert got is not None
                if spec.kind is VariableKind.CATEGORICAL:
                    assert got == original, spec.name
                elif spec.name == "age":
                    assert got == pytest.approx(float(str(original)), abs=0.01)
                else:
                    assert got == pytest.approx(float(str(original)), rel=1e-4, abs=1e-3), spec.name
                assert spec.name in result.source_timestamps
            # Lab values come from before the CT, within the window.
            for name in ("glucose", "bilirubin", "hba1c", "cea", "ca19_9_baseline"):
                taken = result.source_timestamps.get(name)
                if taken is not None:
                    assert 0 <= (CT - day_of(taken)).days <= 60
    logged = caplog.text
    for patient in PATIENTS:
        assert str(patient["patient_id"]) not in logged
    assert "1234.5" not in logged and "98765" not in logged


def test_reseeding_replaces_the_demo_but_never_foreign_tables(
    registry_url: str, tmp_path: Path
) -> None:
    csv_path = write_clinical_csv(tmp_path / "clinical.csv")
    seed_demo_registry(csv_path, registry_url, ct_date=CT)
    assert seed_demo_registry(csv_path, registry_url, ct_date=CT).patients == len(PATIENTS)
    engine = create_engine(registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE demo_registry_meta"))
    finally:
        engine.dispose()
    with pytest.raises(ValueError, match="not made by registry seed"):
        seed_demo_registry(csv_path, registry_url, ct_date=CT)


def test_per_patient_study_date_column(tmp_path: Path) -> None:
    path = tmp_path / "clinical.csv"
    path.write_text(
        "patient_id,study_date,glucose,age\nP1,20240601,5.5,60\nP2,,6.0,61\n", encoding="utf-8"
    )
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    seed_demo_registry(path, url, ct_date=CT)
    with RegistryBridge(example_config(url)) as bridge:
        early = bridge.lookup("P1", date(2024, 6, 1))
        assert early.variables.values["glucose"] == pytest.approx(5.5, rel=1e-4)
        assert early.variables.values["age"] == pytest.approx(60, abs=0.01)
        assert bridge.lookup("P1", CT).variables.values["glucose"] is None  # outside the window
        assert bridge.lookup("P2", CT).variables.values["glucose"] == pytest.approx(6.0, rel=1e-4)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,age\nP1,60\n", "patient_id"),
        ("patient_id,age\n,60\n", "empty patient_id"),
        ("patient_id,age\nP1,sixty\n", "age is not a number"),
    ],
)
def test_bad_clinical_csv_is_a_value_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "clinical.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        seed_demo_registry(path, f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ValueError, match="cannot read"):
        seed_demo_registry(tmp_path / "absent.csv", f"sqlite:///{tmp_path / 'r.db'}")
