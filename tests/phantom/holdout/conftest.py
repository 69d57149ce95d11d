"""A small held-out cohort shared by the held-out generator's tests (rendered once).

Seed 3 with a third of the patients tumor-free gives: a resectable head tumor touching no key
vessel, a locally advanced body tumor around the celiac trunk that also touches the portal
vein, and a tumor-free patient. 256 x 256 pixels of 0.78 mm and 50 slices of 2 mm
hold the pancreas and its vessels and keep the render to seconds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from phantom.holdout import HoldoutCohort, HoldoutOptions, generate_holdout_cohort

SMALL = HoldoutOptions(matrix=256, slices=50, tumor_free_fraction=1 / 3)
SEED = 3


@pytest.fixture(scope="session")
def holdout_cohort(tmp_path_factory: pytest.TempPathFactory) -> HoldoutCohort:
    """Three written patients (see the module docstring)."""
    return generate_holdout_cohort(tmp_path_factory.mktemp("holdout"), 3, SEED, SMALL)


@pytest.fixture(scope="session")
def truth_rows(holdout_cohort: HoldoutCohort) -> dict[str, dict[str, str]]:
    """``truth.csv`` by patient ID, as read back from the file."""
    with (holdout_cohort.out / "truth.csv").open(encoding="utf-8") as handle:
        return {row["patient_id"]: row for row in csv.DictReader(handle)}


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file."""
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
