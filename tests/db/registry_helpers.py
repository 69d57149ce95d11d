"""Helpers shared by the registry tests."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

from db.registry import RegistryConfig, load_registry_config
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "deploy" / "registry" / "example-registry.toml"
CT = date(2025, 3, 14)
NAMES = [v.name for v in CLINICAL_VARIABLES]

# Model units, written the way the phantom generator writes clinical.csv ("" = missing).
PATIENTS: list[dict[str, object]] = [
    {"patient_id": "PHANTOM-0001", "age": 67, "sex": 1, "bmi": 24.3, "cci": 3, "asa": 3,
     "diabetes": 1, "nicotine": 0, "alcohol": 1, "ca19_9_baseline": 1234.5,
     "ca19_9_delta": -200.5, "ca19_9_post": 1034.0, "cea": 4.2, "glucose": 5.5,
     "hba1c": 48, "bilirubin": 15.2, "grade": 2, "neoadjuvant": 1},
    {"patient_id": "PHANTOM-0002", "age": 55.5, "sex": 0, "bmi": "", "cci": 0, "asa": 2,
     "diabetes": 0, "nicotine": 1, "alcohol": 0, "ca19_9_baseline": 2.0, "ca19_9_delta": "",
     "ca19_9_post": "", "cea": 0.8, "glucose": "", "hba1c": 39.2, "bilirubin": 120,
     "grade": 3, "neoadjuvant": 0},
    {"patient_id": "PHANTOM-0003", "age": 81.25, "sex": 1, "bmi": 31.7, "cci": 7, "asa": 4,
     "diabetes": 1, "nicotine": 1, "alcohol": 1, "ca19_9_baseline": 98765.4,
     "ca19_9_delta": 1500.25, "ca19_9_post": 100265.65, "cea": 250.75, "glucose": 12.31,
     "hba1c": 86.4, "bilirubin": 310.9, "grade": 1, "neoadjuvant": 2},
    {"patient_id": "PHANTOM-0004", **dict.fromkeys(NAMES, "")},
    {"patient_id": "PHANTOM-0005", "age": 45, "sex": 0, "bmi": 19.05, "cci": 1, "asa": 1,
     "diabetes": 0, "nicotine": 0, "alcohol": 0, "ca19_9_baseline": 37.0, "ca19_9_delta": -30,
     "ca19_9_post": 7.0, "cea": 2.5, "glucose": 4.9, "hba1c": 33, "bilirubin": 8.5,
     "grade": 2, "neoadjuvant": 0},
    {"patient_id": "PHANTOM-0006", "age": 72, "sex": 1, "bmi": 22.0, "cci": 4, "asa": 3,
     "diabetes": 1, "nicotine": 0, "alcohol": 0, "ca19_9_baseline": 512.0, "ca19_9_delta": -400,
     "ca19_9_post": 112.0, "cea": 9.99, "glucose": 8.02, "hba1c": 58.5, "bilirubin": 25.0,
     "grade": 3, "neoadjuvant": 1},
]  # fmt: skip


def write_clinical_csv(path: Path) -> Path:
    """The synthetic cohort above as clinical.csv."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["patient_id", *NAMES])
        writer.writeheader()
        writer.writerows(PATIENTS)
    return path


def example_config(url: str, **connection: Any) -> RegistryConfig:
    """The shipped example mapping pointed at ``url`` (environment override off)."""
    config = load_registry_config(EXAMPLE)
    registry = config.registry.model_copy(update={"url": url, "url_env": None, **connection})
    return config.model_copy(update={"registry": registry})
