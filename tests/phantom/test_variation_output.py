"""Wide variation, written: truth.csv columns, tumor-free rows, DICOM geometry, the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference import read_dicom_series, read_nifti
from pancreas_contracts.labels import label_by_name
from pancreas_node.cli import main
from phantom import (
    CONTRAST_PHASES,
    FOLLOW_UP_TRUTH_COLUMNS,
    KEY_VESSELS,
    LESION_COLUMNS,
    NODE_COLUMNS,
    TRUTH_COLUMNS,
    WIDE_TRUTH_COLUMNS,
    Material,
    PhantomCohort,
    PhantomOptions,
    generate_cohort,
    plan_cohort,
    render_patient,
    write_patient,
)

SMALL = PhantomOptions(
    variation="wide",
    tumor_free_fraction=0.4,
    fov_mm=(200.0, 180.0, 120.0),
    pixel_spacing=1.5,
    slice_thickness=3.0,
    shuffle=True,
)


def _truth(out: Path) -> list[dict[str, str]]:
    with (out / "truth.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> PhantomCohort:
    return generate_cohort(tmp_path_factory.mktemp("wide"), 5, 9, SMALL)


def test_truth_has_the_standard_columns_then_the_wide_ones(cohort: PhantomCohort) -> None:
    rows = _truth(cohort.out)
    # Lymph nodes and follow-up are on by default in the wide modes: their columns come last.
    assert tuple(rows[0]) == (*WIDE_TRUTH_COLUMNS, *NODE_COLUMNS, *FOLLOW_UP_TRUTH_COLUMNS)
    assert WIDE_TRUTH_COLUMNS[: len(TRUTH_COLUMNS)] == TRUTH_COLUMNS
    assert WIDE_TRUTH_COLUMNS[len(TRUTH_COLUMNS) :] == (
        "has_tumor", "tumor_attenuation", "tumor_shape", "contrast_phase", "variant", "generator",
        *LESION_COLUMNS,
    )  # fmt: skip
    assert {r["generator"] for r in rows} == {"phantom-wide"}
    assert all(r["contrast_phase"] in CONTRAST_PHASES for r in rows)
    assert [r["has_tumor"] for r in rows].count("0") == 2


def test_tumor_free_rows_leave_the_tumor_truth_empty(cohort: PhantomCohort) -> None:
    tumor = label_by_name("tumor").value
    for row, patient in zip(_truth(cohort.out), cohort, strict=True):
        labels = read_nifti(patient.files.label).array
        if row["has_tumor"] == "0":
            assert row["nccn_label"] == row["rule_category"] == ""
            assert all(row[f"contact_{v}"] == "" for v in KEY_VESSELS)
            assert row["tumor_location"] == "none" and float(row["tumor_volume_ml"]) == 0.0
            assert row["tumor_attenuation"] == row["tumor_shape"] == ""
            assert tumor not in np.unique(labels)
        else:
            assert row["nccn_label"] in ("0", "1", "2") and row["rule_category"] in ("0", "1", "2")
            assert row["tumor_shape"] and all(row[f"contact_{v}"] != "" for v in KEY_VESSELS)
            if float(row["tumor_volume_ml"]) > 0:
                assert float(row["tumor_attenuation"]) < 15
                assert tumor in np.unique(labels)


def test_dicom_reads_back_on_the_label_grid(cohort: PhantomCohort) -> None:
    assert {"HFS", "FFS"} <= {p.plan.patient_position for p in cohort}
    for patient in cohort:
        dicom = read_dicom_series(patient.dicom_dir)
        label = read_nifti(patient.files.label)
        image = read_nifti(patient.files.image)
        assert dicom.volume.shape == label.shape
        # NIfTI stores the affine in float32: compare to that precision.
        np.testing.assert_allclose(dicom.volume.affine, label.affine, atol=1e-4)
        assert np.array_equal(dicom.volume.array, image.array.astype(np.float32))
        assert dicom.series_instance_uid == patient.series_uid
        assert dicom.warnings == ()


def test_headers_name_the_drawn_contrast_phase(cohort: PhantomCohort) -> None:
    short = {"portal-venous": "PV", "pancreatic": "PANC", "late-arterial": "ART"}
    assert len({row["contrast_phase"] for row in _truth(cohort.out)}) >= 2
    for row, patient in zip(_truth(cohort.out), cohort, strict=True):
        header = pydicom.dcmread(patient.files.dicom[0], stop_before_pixels=True)
        assert header.ContrastBolusAgent == f"Iodinated contrast ({row['contrast_phase']} phase)"
        assert header.SeriesDescription.startswith(short[row["contrast_phase"]] + " ")


@pytest.mark.parametrize("position", ["HFP", "FFP"])
def test_a_prone_series_reads_back_on_the_label_grid(tmp_path: Path, position: str) -> None:
    options = PhantomOptions(
        variation="wide", fov_mm=(200.0, 180.0, 60.0), pixel_spacing=1.5, slice_thickness=3.0
    )
    plan = next(p for p in plan_cohort(60, 6, options) if p.patient_position == position)
    scan = render_patient(plan)
    files = write_patient(plan, scan, tmp_path, options)
    header = pydicom.dcmread(files.dicom[0], stop_before_pixels=True)
    assert header.PatientPosition == position
    assert [float(v) for v in header.ImageOrientationPatient] == [-1, 0, 0, 0, -1, 0]
    dicom = read_dicom_series(files.dicom_dir)
    label, image = read_nifti(files.label), read_nifti(files.image)
    assert dicom.volume.shape == label.shape
    np.testing.assert_allclose(dicom.volume.affine, label.affine, atol=1e-4)
    assert np.array_equal(dicom.volume.array, image.array.astype(np.float32))
    # Prone, the bowel gas collects at the back of each loop: posterior of its fluid.
    gas_y = np.argwhere(scan.materials == Material.GAS)[:, 1].mean()
    fluid_y = np.argwhere(scan.materials == Material.FLUID)[:, 1].mean()
    assert gas_y > fluid_y


def test_the_cli_writes_a_wide_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    small = ["--fov-mm", "160,150,45", "--pixel-spacing", "2", "--slice-thickness", "3"]
    args = ["phantom", "--out", str(out), "--patients", "3", "--seed", "2", *small]
    assert main([*args, "--variation", "synth", "--tumor-free-fraction", "0.34"]) == 0
    assert "wrote 3 phantom patients" in capsys.readouterr().out
    rows = _truth(out)
    assert tuple(rows[0]) == (*WIDE_TRUTH_COLUMNS, *NODE_COLUMNS, *FOLLOW_UP_TRUTH_COLUMNS)
    assert {r["generator"] for r in rows} == {"phantom-synth"}
    assert [r["has_tumor"] for r in rows].count("0") == 1


@pytest.mark.parametrize(
    "extra",
    [["--variation", "wild"], ["--tumor-free-fraction", "0.2"], ["--variation", "wide",
     "--tumor-free-fraction", "2"]],
)  # fmt: skip
def test_the_cli_rejects_bad_variation_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    out = tmp_path / "bad"
    assert main(["phantom", "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert "variation" in err or "tumor-free" in err
    assert not out.exists()


def test_workers_write_the_same_wide_cohort(tmp_path: Path) -> None:
    options = PhantomOptions(
        variation="wide", tumor_free_fraction=0.5, fov_mm=(120.0, 110.0, 30.0),
        pixel_spacing=2.0, slice_thickness=3.0,
    )  # fmt: skip
    generate_cohort(tmp_path / "one", 4, 3, options)
    generate_cohort(tmp_path / "two", 4, 3, options, workers=2)
    assert (tmp_path / "one" / "truth.csv").read_bytes() == (
        tmp_path / "two" / "truth.csv"
    ).read_bytes()
    assert [r["has_tumor"] for r in _truth(tmp_path / "one")].count("0") == 2
