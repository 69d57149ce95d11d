"""Phantom DICOM output: headers, geometry, transfer syntaxes, NIfTI twin, dciodvfy/dcmdump."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from inference.volume import read_nifti
from phantom import (
    TRANSFER_SYNTAXES,
    TRUTH_COLUMNS,
    PhantomCohort,
    PhantomOptions,
    generate_cohort,
)
from phantom._jpeg_lossless import encode_jpeg_lossless
from tests.conftest import require_executable

SMALL = {"fov_mm": (150.0, 140.0, 36.0), "pixel_spacing": 1.25, "slice_thickness": 3.0}


def _cohort(out: Path, **options: object) -> PhantomCohort:
    merged = {**SMALL, **options}
    return generate_cohort(out, 1, 9, PhantomOptions(**merged))  # type: ignore[arg-type]


def _series(cohort: PhantomCohort) -> list[pydicom.Dataset]:
    files = sorted(cohort[0].dicom_dir.glob("*.dcm"))
    return sorted((pydicom.dcmread(f) for f in files), key=lambda ds: int(ds.InstanceNumber))


def _stack(datasets: Sequence[pydicom.Dataset]) -> npt.NDArray[np.uint16]:
    """Stored values ordered by ascending z."""
    ordered = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array for ds in ordered])


@pytest.fixture(scope="module")
def explicit(tmp_path_factory: pytest.TempPathFactory) -> PhantomCohort:
    return _cohort(tmp_path_factory.mktemp("explicit"))


def test_headers_describe_a_portal_venous_ct(explicit: PhantomCohort) -> None:
    datasets = _series(explicit)
    assert len(datasets) == 12
    first = datasets[0]
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert list(first.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert first.Modality == "CT" and first.BodyPartExamined == "ABDOMEN"
    assert first.SeriesDescription == "PV 3mm" and first.ContrastBolusAgent
    assert str(first.PatientName) == "Phantom^0001" and first.PatientID == "PHANTOM-0001"
    assert (first.RescaleIntercept, first.RescaleSlope) == (-1024, 1)
    assert (first.BitsAllocated, first.BitsStored, first.HighBit, first.PixelRepresentation) == (
        16, 12, 11, 0,
    )  # fmt: skip
    assert first.PatientPosition == "HFS"
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert {ds.SeriesInstanceUID for ds in datasets} == {explicit[0].series_uid}
    with (explicit.out / "truth.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TRUTH_COLUMNS
    assert rows[0]["StudyInstanceUID"] == first.StudyInstanceUID
    assert rows[0]["SeriesInstanceUID"] == first.SeriesInstanceUID
    assert float(rows[0]["slice_thickness"]) == 3.0


def test_head_first_slices_descend_with_instance_number(explicit: PhantomCohort) -> None:
    datasets = _series(explicit)
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert np.allclose(np.diff(z), -3.0)
    for ds in datasets:
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.SliceLocation) == float(ds.ImagePositionPatient[2])
        assert [float(v) for v in ds.PixelSpacing] == [1.25, 1.25]


def test_feet_first_slices_ascend_and_names_can_be_shuffled(tmp_path: Path) -> None:
    cohort = _cohort(tmp_path, position="FFS", shuffle=True)
    datasets = _series(cohort)
    assert datasets[0].PatientPosition == "FFS"
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert np.allclose(np.diff(z), 3.0)
    by_name = [
        int(pydicom.dcmread(f).InstanceNumber) for f in sorted(cohort[0].dicom_dir.glob("*"))
    ]
    assert sorted(by_name) == list(range(1, 13)) and by_name != sorted(by_name)


def test_nifti_holds_the_same_voxels_in_the_same_place(explicit: PhantomCohort) -> None:
    datasets = _series(explicit)
    image = read_nifti(explicit[0].files.image)
    label = read_nifti(explicit[0].files.label)
    assert image.array.dtype == np.int16 and label.array.dtype == np.uint8
    assert np.all(np.diag(image.affine)[:3] > 0)  # canonical RAS+
    hu = image.array
    stored = _stack(datasets).astype(np.int32)
    # DICOM [slice, row, column] in LPS -> canonical RAS [i, j, k]: both in-plane axes flip.
    assert np.array_equal(hu, (stored - 1024).transpose(2, 1, 0)[::-1, ::-1, :])
    lowest = min(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
    corner_lps = np.array([float(v) for v in lowest.ImagePositionPatient])
    corner_ras = image.affine @ np.array([hu.shape[0] - 1, hu.shape[1] - 1, 0, 1.0])
    np.testing.assert_allclose(corner_ras[:3], corner_lps * [-1, -1, 1], atol=1e-4)
    np.testing.assert_allclose(label.affine, image.affine)
    assert set(np.unique(label.array).tolist()) <= set(range(16))


@pytest.mark.parametrize("syntax", [s for s in TRANSFER_SYNTAXES if s != "explicit"])
def test_every_transfer_syntax_decodes_losslessly(
    tmp_path: Path, explicit: PhantomCohort, syntax: str
) -> None:
    datasets = _series(_cohort(tmp_path, transfer_syntax=syntax))
    assert datasets[0].file_meta.TransferSyntaxUID == TRANSFER_SYNTAXES[syntax]
    assert np.array_equal(_stack(datasets), _stack(_series(explicit)))
    assert [ds.SOPInstanceUID for ds in datasets] == [ds.SOPInstanceUID for ds in _series(explicit)]


@pytest.mark.parametrize("precision", [2, 8, 12, 16])
def test_jpeg_lossless_encoder_round_trips(precision: int) -> None:
    from libjpeg.utils import decode

    rng = np.random.default_rng(precision)
    top = (1 << precision) - 1
    frames = [
        rng.integers(0, top + 1, size=(37, 53)),
        np.full((8, 8), top),
        np.zeros((1, 1)),
        np.indices((16, 16)).sum(axis=0) % 2 * top,  # largest possible differences
        np.cumsum(rng.integers(-3, 4, size=(64, 64)), axis=1).clip(0, top),
    ]
    for frame in frames:
        values = frame.astype(np.uint16)
        decoded = decode(encode_jpeg_lossless(values, precision))
        assert np.array_equal(decoded, values)


def test_jpeg_lossless_encoder_rejects_values_too_wide() -> None:
    with pytest.raises(ValueError):
        encode_jpeg_lossless(np.full((4, 4), 4096, dtype=np.uint16), 12)


def _dciodvfy_findings(path: Path, tool: str) -> list[str]:
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith(("Error", "Warning"))]


@pytest.mark.integration
@pytest.mark.parametrize("syntax", list(TRANSFER_SYNTAXES))
def test_dciodvfy_and_dcmdump_accept_every_file(tmp_path: Path, syntax: str) -> None:
    dciodvfy = require_executable("dciodvfy")
    dcmdump = require_executable("dcmdump")
    cohort = _cohort(tmp_path / "cohort", transfer_syntax=syntax)
    for path in sorted(cohort[0].dicom_dir.glob("*.dcm")):
        dump = subprocess.run([dcmdump, str(path)], capture_output=True, text=True, check=False)
        assert dump.returncode == 0 and "E: " not in dump.stderr, dump.stderr
        checked = path
        if syntax == "deflated":
            # dicom3tools cannot inflate (it fails on DCMTK's deflated files too): check the
            # same dataset re-encoded explicit; dcmdump above read the deflated file itself.
            ds = pydicom.dcmread(path)
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            checked = tmp_path / f"inflated-{path.name}"
            ds.save_as(checked, enforce_file_format=True)
        assert _dciodvfy_findings(checked, dciodvfy) == [], path.name


@pytest.mark.integration
def test_dcmtk_decodes_the_jpeg_lossless_series(tmp_path: Path, explicit: PhantomCohort) -> None:
    dcmdjpeg = require_executable("dcmdjpeg")
    cohort = _cohort(tmp_path / "cohort", transfer_syntax="jpeg-lossless")
    decoded = []
    for path in sorted(cohort[0].dicom_dir.glob("*.dcm")):
        target = tmp_path / f"plain-{path.name}"
        subprocess.run([dcmdjpeg, str(path), str(target)], check=True, capture_output=True)
        decoded.append(pydicom.dcmread(target))
    assert np.array_equal(_stack(decoded), _stack(_series(explicit)))
