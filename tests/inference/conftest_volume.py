"""Helpers shared by the ``test_volume_io*`` modules (imported explicitly, not a conftest).

Shared public CT data lives beside the checkout (``../shared/data``): tests needing it skip with
a clear message where it is absent, and fail instead when ``CI`` is set.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from inference import LPS_TO_RAS, DicomVolume
from tests.conftest import require_shared_data

NIH_CASE = "pancreas-ct-0001"
TS_CASE = "totalsegmentator-example"
#: Patient identifiers of the shared cases: they must never show up in an error message.
PATIENT_IDENTIFIERS = ("PANCREAS_0001",)


def require_shared(case: str) -> Path:
    """Directory of a shared public case; skip where absent, fail under ``CI``.

    The folder comes from ``PANCREAS_AI_SHARED_DATA`` (default ``../shared/data``); see
    :func:`tests.conftest.require_shared_data`.
    """
    return require_shared_data(f"{case}/dicom").parent


def nih_files() -> list[Path]:
    """The NIH case's 240 files; their names sort cranial to caudal (1-001 is z = 0)."""
    return sorted((require_shared(NIH_CASE) / "dicom").iterdir())


def copy_nih_slices(dest: Path, start: int = 100, count: int = 8) -> list[Path]:
    """Copy ``count`` consecutive NIH slices (cranial first) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for src in nih_files()[start : start + count]:
        target = dest / src.name
        shutil.copyfile(src, target)
        target.chmod(0o644)
        out.append(target)
    return out


def edit_dicom(path: Path, change: Callable[[Dataset], None], out: Path | None = None) -> Path:
    """Read ``path``, apply ``change`` and save to ``out`` (default: in place)."""
    ds = pydicom.dcmread(path)
    change(ds)
    target = out or path
    ds.save_as(target)
    return target


def set_pixels(ds: Dataset, pixels: npt.NDArray[np.generic]) -> None:
    """Replace uncompressed pixel data (keeps the dataset's bit depth and signedness)."""
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()


def assert_clean_message(exc: BaseException) -> None:
    """Error messages are one line and carry no patient identifier."""
    text = str(exc)
    assert text and "\n" not in text, text
    for identifier in PATIENT_IDENTIFIERS:
        assert identifier not in text, text


def write_ct_slice(
    path: Path,
    pixels: npt.NDArray[np.int16],
    *,
    orientation: Sequence[float],
    position: Sequence[float],
    pixel_spacing: Sequence[float] = (1.0, 1.0),
    series_uid: str,
    study_uid: str,
    frame_of_reference_uid: str,
    instance_number: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    patient_position: str = "HFS",
) -> Path:
    """Write a minimal synthetic single-frame CT Image Storage instance."""
    meta = FileMetaDataset()
    sop_uid = generate_uid()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.Modality = "CT"
    ds.PatientName = "SYNTHETIC^PHANTOM"
    ds.PatientID = "SYNTH"
    ds.PatientPosition = patient_position
    ds.InstanceNumber = instance_number
    ds.ImageOrientationPatient = [f"{v:.10f}" for v in orientation]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    set_pixels(ds, pixels.astype(np.int16))
    ds.save_as(path, enforce_file_format=True)
    return path


def stored_to_world_lps(ds: Dataset, row: int, col: int) -> npt.NDArray[np.float64]:
    """PS3.3 C.7.6.2.1.1: LPS position of pixel (row, col) of a single-frame image."""
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    world: npt.NDArray[np.float64] = ipp + col * dc * iop[:3] + row * dr * iop[3:]
    return world


def assert_pixels_at_world_positions(
    dicom: DicomVolume, files: Sequence[Path], rng: np.random.Generator, per_file: int = 5
) -> None:
    """Every sampled stored pixel is found, rescaled, at its DICOM world position."""
    volume = dicom.volume
    for path in files:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        rows = rng.integers(0, pixels.shape[0], per_file)
        cols = rng.integers(0, pixels.shape[1], per_file)
        for r, c in zip(rows, cols, strict=True):
            lps = stored_to_world_lps(ds, int(r), int(c))
            ras = (LPS_TO_RAS @ np.r_[lps, 1.0])[:3]
            index = volume.world_to_voxel(ras)[0]
            assert np.allclose(index, np.round(index), atol=1e-3), index
            i, j, k = (int(v) for v in np.round(index))
            expected = float(pixels[r, c]) * slope + intercept
            assert volume.array[i, j, k] == pytest.approx(expected), (path.name, r, c)


def build_enhanced_ct(
    sources: Sequence[Path],
    out: Path,
    *,
    orientation_per_frame: bool = False,
    frame_order: Sequence[int] | None = None,
) -> Path:
    """Build an Enhanced CT Image (PS3.3 A.38, C.7.6.16) from single-frame CT slices.

    Orientation and pixel measures go in the shared functional groups (or orientation per frame),
    positions and a per-frame Pixel Value Transformation (each frame with its own intercept,
    stored values shifted to match) in the per-frame groups.
    """
    slices = [pydicom.dcmread(p) for p in sources]
    order = list(frame_order) if frame_order is not None else list(range(len(slices)))
    first = slices[0]
    meta = FileMetaDataset()
    sop_uid = generate_uid()
    meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = first.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(order)
    ds.Rows, ds.Columns = first.Rows, first.Columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = "1"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    if not orientation_per_frame:
        shared.PlaneOrientationSequence = DicomSequence([orientation])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    frames = []
    for f, index in enumerate(order):
        src = slices[index]
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = src.ImagePositionPatient
        item.PlanePositionSequence = DicomSequence([position])
        if orientation_per_frame:
            item.PlaneOrientationSequence = DicomSequence([orientation])
        transform = Dataset()
        intercept = -1024.0 - f
        transform.RescaleIntercept = f"{intercept:g}"
        transform.RescaleSlope = "1"
        transform.RescaleType = "HU"
        item.PixelValueTransformationSequence = DicomSequence([transform])
        content = Dataset()
        content.InStackPositionNumber = f + 1
        item.FrameContentSequence = DicomSequence([content])
        per_frame.append(item)
        slope, icpt = float(src.RescaleSlope), float(src.RescaleIntercept)
        hu = np.round(src.pixel_array * slope + icpt).astype(np.int32)
        frames.append((hu - intercept).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.stack(frames).tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out
