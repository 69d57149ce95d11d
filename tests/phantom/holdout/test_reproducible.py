"""Held-out generator: the same seed gives the same files; another seed another patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.volume import read_nifti
from pancreas_node.cli import main
from phantom.holdout import HoldoutCohort, HoldoutOptions, generate_holdout_cohort

COARSE = HoldoutOptions(matrix=48, pixel_spacing=3.0, slices=8)


def _files(cohort: HoldoutCohort) -> dict[str, bytes]:
    root = cohort.out
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.dcm"))}


def test_same_seed_same_files(tmp_path: Path) -> None:
    first = generate_holdout_cohort(tmp_path / "a", 2, 11, COARSE)
    second = generate_holdout_cohort(tmp_path / "b", 2, 11, COARSE)
    assert (first.out / "truth.csv").read_text() != ""
    for table in ("truth.csv", "clinical.csv"):
        assert (first.out / table).read_bytes() == (second.out / table).read_bytes()
    assert _files(first) == _files(second)
    for a, b in zip(first.records, second.records, strict=True):
        np.testing.assert_array_equal(read_nifti(a.label).array, read_nifti(b.label).array)


def test_other_seed_other_patients(tmp_path: Path) -> None:
    first = generate_holdout_cohort(tmp_path / "a", 1, 11, COARSE)
    other = generate_holdout_cohort(tmp_path / "b", 1, 12, COARSE)
    a, b = first.records[0], other.records[0]
    assert a.truth["SeriesInstanceUID"] != b.truth["SeriesInstanceUID"]
    assert not np.array_equal(read_nifti(a.image).array, read_nifti(b.image).array)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="position"):
        HoldoutOptions(position="HFP")
    with pytest.raises(ValueError, match="transfer syntax"):
        HoldoutOptions(transfer_syntax="jpeg2000")


def test_cli_refuses_an_unknown_generator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["phantom", "--generator", "mine", "--out", str(tmp_path / "x")]) == 1
    assert "--generator must be one of standard, holdout" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
