"""read_dicom_series on the two public CTs: geometry, HU, label alignment, file order, FFS."""

from __future__ import annotations

import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from inference import (
    DicomVolume,
    read_dicom_series,
    read_nifti,
    resample_to_reference,
    to_canonical,
)
from tests.inference.conftest_volume import (
    NIH_CASE,
    TS_CASE,
    assert_pixels_at_world_positions,
    copy_nih_slices,
    edit_dicom,
    nih_files,
    require_shared,
    set_pixels,
)

NIH_SPACING = 0.859375


@pytest.fixture(scope="module")
def nih() -> DicomVolume:
    """The full NIH case, read once for the module."""
    return read_dicom_series(require_shared(NIH_CASE) / "dicom")


@pytest.fixture(scope="module")
def totalseg() -> DicomVolume:
    """The TotalSegmentator example (JPEG 2000 lossless), read once for the module."""
    return read_dicom_series(require_shared(TS_CASE) / "dicom")


def test_nih_grid_and_metadata(nih: DicomVolume) -> None:
    volume = nih.volume
    assert volume.shape == (512, 512, 240)
    assert volume.spacing == pytest.approx((NIH_SPACING, NIH_SPACING, 1.0))
    assert volume.array.dtype == np.float32
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert nih.num_slices == 240
    assert nih.slice_step_mm == pytest.approx(1.0)
    assert nih.image_orientation == pytest.approx((1, 0, 0, 0, -1, 0))
    assert nih.pixel_spacing == pytest.approx((NIH_SPACING, NIH_SPACING))
    assert nih.transfer_syntaxes == ("1.2.840.10008.1.2",)
    assert nih.modality == "CT"
    assert nih.warnings == ()
    # Native grid: columns towards patient left, rows anterior, slices cranial -> caudal.
    expected_lps = np.diag([NIH_SPACING, -NIH_SPACING, -1.0, 1.0])
    np.testing.assert_allclose(nih.dicom_affine, expected_lps)
    files = nih_files()
    first, last = pydicom.dcmread(files[0]), pydicom.dcmread(files[-1])
    assert len(set(nih.sop_instance_uids)) == 240
    assert nih.sop_instance_uids[0] == first.SOPInstanceUID  # z = 0, the cranial slice
    assert nih.sop_instance_uids[-1] == last.SOPInstanceUID
    assert nih.series_instance_uid == first.SeriesInstanceUID
    assert nih.study_instance_uid == first.StudyInstanceUID
    assert set(nih.frame_numbers) == {1}


def test_nih_hu_plausible(nih: DicomVolume) -> None:
    array = nih.volume.array
    assert -1100 <= float(array.min()) <= -900  # air / outside the field of view
    assert 1000 <= float(array.max()) <= 4000  # bone and contrast
    assert float(array[0, 0, 120]) == pytest.approx(-1024, abs=50)  # corner: air
    soft = np.median(array[200:312, 200:312, 100:140])
    assert -200 < soft < 200


def test_nih_pixels_at_their_world_positions(nih: DicomVolume) -> None:
    files = nih_files()
    assert_pixels_at_world_positions(nih, files[::40], np.random.default_rng(1))


def test_nih_pancreas_mask_lands_on_pancreas(nih: DicomVolume) -> None:
    label_path = require_shared(NIH_CASE) / "pancreas_label.nii.gz"
    raw = read_nifti(label_path)
    mask = to_canonical(raw)
    # Same world grid once both are canonical (README: identical world coordinates).
    assert mask.shape == nih.volume.shape
    np.testing.assert_allclose(mask.affine, nih.volume.affine, atol=1e-6)
    # World-coordinate resampling of the stored (LAI) mask lands on the same voxels exactly.
    onto = resample_to_reference(raw, nih.volume, order=0)
    assert np.array_equal(onto.array, mask.array)
    hu = nih.volume.array[mask.array > 0]
    in_range = float(np.mean((hu >= 30) & (hu <= 200)))
    assert in_range >= 0.90, f"only {in_range:.1%} of pancreas voxels in 30-200 HU"
    # The label's index order is the DICOM native order (column, row, slice cranial -> caudal).
    native = nih.to_native(mask)
    assert np.array_equal(native.array, raw.array)


def test_totalsegmentator_jpeg2000(totalseg: DicomVolume) -> None:
    volume = totalseg.volume
    assert volume.shape == (512, 512, 20)
    assert totalseg.slice_step_mm == pytest.approx(2.0)
    assert volume.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert totalseg.transfer_syntaxes == (JPEG2000Lossless,)
    # Its data set leaves Series/SOP UIDs empty: SOP UIDs come from the file meta.
    assert all(totalseg.sop_instance_uids)
    assert len(set(totalseg.sop_instance_uids)) == 20
    assert float(volume.array.min()) >= -1100 and float(volume.array.max()) < 4000


def test_totalsegmentator_labels_aligned(totalseg: DicomVolume) -> None:
    seg = read_nifti(require_shared(TS_CASE) / "segmentation_predicted.nii.gz")
    labels = resample_to_reference(seg, totalseg.volume, order=0)
    assert labels.array.dtype == seg.array.dtype
    assert np.array_equal(labels.array, to_canonical(seg).array)
    hu = totalseg.volume.array
    aorta = float(hu[labels.array == 52].mean())
    assert aorta > 100, f"aorta mean {aorta:.0f} HU: labels misaligned"
    veins = float(hu[labels.array == 64].mean())
    assert veins > 80
    pancreas = float(hu[labels.array == 7].mean())
    assert 0 < pancreas < 200


def test_file_order_does_not_matter(totalseg: DicomVolume) -> None:
    files = sorted((require_shared(TS_CASE) / "dicom").iterdir())
    random.Random(7).shuffle(files)
    shuffled = read_dicom_series(files)
    assert np.array_equal(shuffled.volume.array, totalseg.volume.array)
    np.testing.assert_allclose(shuffled.volume.affine, totalseg.volume.affine)
    assert shuffled.sop_instance_uids == totalseg.sop_instance_uids


def test_nih_subset_shuffled_and_instance_numbers_ignored(tmp_path: Path) -> None:
    files = copy_nih_slices(tmp_path / "hfs", start=90, count=24)
    reference = read_dicom_series(tmp_path / "hfs")
    assert reference.volume.shape == (512, 512, 24)
    # Scramble InstanceNumber and the order files are given in: the result must not change.
    numbers = list(range(1, 25))
    random.Random(3).shuffle(numbers)
    for path, number in zip(files, numbers, strict=True):
        edit_dicom(path, lambda ds, n=number: setattr(ds, "InstanceNumber", n))
    shuffled = list(files)
    random.Random(5).shuffle(shuffled)
    again = read_dicom_series(shuffled)
    assert np.array_equal(again.volume.array, reference.volume.array)
    np.testing.assert_allclose(again.volume.affine, reference.volume.affine)
    assert again.sop_instance_uids == reference.sop_instance_uids


def _to_feet_first(ds: Dataset, instance_number: int) -> None:
    """Re-express a head-first supine slice as a feet-first supine scanner writes it.

    Same anatomy at the same world positions: the image is mirrored in both directions with
    IOP ``-1\\0\\0\\0\\1\\0`` and the first-pixel position moved accordingly (PS3.3 C.7.6.2.1.1);
    instance numbers run from the feet.
    """
    rows, cols = int(ds.Rows), int(ds.Columns)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    new_ipp = ipp + (cols - 1) * dc * iop[:3] + (rows - 1) * dr * iop[3:]
    set_pixels(ds, ds.pixel_array[::-1, ::-1])
    ds.ImageOrientationPatient = [f"{v:g}" for v in (*(-iop[:3]), *(-iop[3:]))]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in new_ipp]
    ds.PatientPosition = "FFS"
    ds.InstanceNumber = instance_number


def test_feet_first_reads_the_same_world_volume(tmp_path: Path) -> None:
    count = 12
    hfs_files = copy_nih_slices(tmp_path / "hfs", start=120, count=count)
    ffs_files = copy_nih_slices(tmp_path / "ffs", start=120, count=count)
    for k, path in enumerate(ffs_files, start=1):
        edit_dicom(path, lambda ds, k=k: _to_feet_first(ds, count + 1 - k))
    hfs = read_dicom_series(tmp_path / "hfs")
    ffs = read_dicom_series(tmp_path / "ffs")
    assert ffs.image_orientation == pytest.approx((-1, 0, 0, 0, 1, 0))
    np.testing.assert_allclose(ffs.volume.affine, hfs.volume.affine, atol=1e-6)
    assert np.array_equal(ffs.volume.array, hfs.volume.array)
    assert ffs.sop_instance_uids == hfs.sop_instance_uids  # edits keep the SOP UIDs
    assert_pixels_at_world_positions(ffs, ffs_files[::3], np.random.default_rng(2))
    assert hfs_files  # both copies exist


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless, RLELossless])
def test_compressed_transfer_syntaxes(tmp_path: Path, syntax: str) -> None:
    files = copy_nih_slices(tmp_path / "plain", start=110, count=4)
    plain = read_dicom_series(files)
    packed_dir = tmp_path / "packed"
    packed_dir.mkdir()
    for path in files:
        edit_dicom(path, lambda ds: ds.compress(syntax), out=packed_dir / path.name)
    packed = read_dicom_series(packed_dir)
    assert packed.transfer_syntaxes == (syntax,)
    assert np.array_equal(packed.volume.array, plain.volume.array)


def test_headers_come_with_the_volume_once_per_instance_without_pixels(tmp_path: Path) -> None:
    # The DICOM writers cite these headers instead of reading the files again.
    files = copy_nih_slices(tmp_path / "series", start=100, count=6)
    duplicate = tmp_path / "series" / "copy-of-first.dcm"
    duplicate.write_bytes(files[0].read_bytes())
    read = read_dicom_series(tmp_path / "series")
    assert len(read.headers) == 6  # the duplicate SOPInstanceUID is left out, as in the volume
    assert {str(ds.SOPInstanceUID) for ds in read.headers} == set(read.sop_instance_uids)
    for ds in read.headers:
        assert "PixelData" not in ds
        assert str(ds.SeriesInstanceUID) == read.series_instance_uid
