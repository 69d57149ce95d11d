"""Held-out generator: its own DICOM writer (HFS and FFS, RLE and uncompressed, dciodvfy)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.volume_io import read_dicom_series
from phantom.holdout import (
    HOLDOUT_SYNTAXES,
    HoldoutCohort,
    HoldoutOptions,
    HoldoutPatient,
    SeriesIdentity,
    make_patient,
    scan_volumes,
    write_ct_series,
)
from tests.conftest import require_executable

CASES = [(p, s) for p in ("HFS", "FFS") for s in ("uncompressed", "rle")]


@pytest.fixture(scope="module")
def tiny() -> HoldoutPatient:
    """A tumor patient on a coarse grid (the writer, not the anatomy, is under test)."""
    return make_patient(5, 0, 1, HoldoutOptions(matrix=64, pixel_spacing=2.5, slices=12))


def _write(patient: HoldoutPatient, folder: Path, position: str, syntax: str) -> list[Path]:
    ident = SeriesIdentity(
        patient_id="HOLDOUT-TEST",
        patient_name="Holdout^Test",
        birth_date="19500101",
        sex="F",
        study_uid="1.2.826.0.1.3680043.8.498.1",
        series_uid="1.2.826.0.1.3680043.8.498.2",
        frame_uid="1.2.826.0.1.3680043.8.498.3",
        acquired=dt.datetime(2026, 1, 2, 3, 4, 5),
        position=position,
        seed_text="test",
    )
    names = [f"x{i:03d}.dcm" for i in range(patient.scan.grid.shape[0])]
    return write_ct_series(patient.scan.hu, patient.scan.grid, ident, folder, syntax, names)


@pytest.mark.parametrize(("position", "syntax"), CASES)
def test_series_reads_back_on_the_label_maps_grid(
    tiny: HoldoutPatient, tmp_path: Path, position: str, syntax: str
) -> None:
    paths = _write(tiny, tmp_path, position, syntax)
    first = pydicom.dcmread(paths[0])
    assert first.file_meta.TransferSyntaxUID == HOLDOUT_SYNTAXES[syntax]
    assert first.PatientPosition == position
    row_x = float(first.ImageOrientationPatient[0])
    assert row_x == (1.0 if position == "HFS" else -1.0)
    read = read_dicom_series(tmp_path)
    image, label = scan_volumes(tiny.scan)
    np.testing.assert_allclose(read.volume.affine, label.affine, atol=1e-3)
    np.testing.assert_array_equal(np.rint(read.volume.array), image.array)


@pytest.mark.parametrize(("position", "syntax"), CASES)
def test_dciodvfy_finds_no_error(
    tiny: HoldoutPatient, tmp_path: Path, position: str, syntax: str
) -> None:
    tool = require_executable("dciodvfy")
    paths = _write(tiny, tmp_path, position, syntax)
    for path in (paths[0], paths[-1]):
        done = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
        report = done.stdout + done.stderr
        assert "Error" not in report, report
        assert "Warning" not in report, report


def test_cohort_files_are_shuffled_and_mixed(holdout_cohort: HoldoutCohort) -> None:
    """Names say nothing about slice order; the cohort mixes positions and syntaxes."""
    record = holdout_cohort.records[0]
    numbers = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in
               sorted(record.dicom)]  # fmt: skip
    assert numbers != sorted(numbers)
    read = read_dicom_series(record.dicom[0].parent)
    assert read.series_instance_uid == record.truth["SeriesInstanceUID"]
