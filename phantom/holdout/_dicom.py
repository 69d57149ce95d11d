"""A small CT Image Storage writer for the held-out generator (pydicom).

Pixels are stored signed (Pixel Representation 1, 16 bits stored) with Rescale Intercept 0, so
the stored value is the HU. Head-first supine series are written as scanners write them: Image
Orientation ``1\\0\\0\\0\\1\\0`` and instances numbered from the head down; feet-first supine
series with the row direction towards the patient's right, ``-1\\0\\0\\0\\1\\0`` (PS3.3
C.7.6.2.1.1; the patient's left then lies on the image's left), numbered from the feet up.
Either is uncompressed (Explicit VR Little Endian) or RLE Lossless (PS3.5 annex G).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

from phantom.holdout._raster import ScanGrid

__all__ = ["HOLDOUT_SYNTAXES", "SeriesIdentity", "series_geometry", "write_ct_series"]

HOLDOUT_SYNTAXES: Mapping[str, UID] = MappingProxyType(
    {"uncompressed": ExplicitVRLittleEndian, "rle": RLELossless}
)
_ROOT = "pancreas-ai-holdout"


@dataclass(frozen=True)
class SeriesIdentity:
    """Identifiers and demographics shared by every instance of one series."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    study_uid: str
    series_uid: str
    frame_uid: str
    acquired: dt.datetime
    position: str
    seed_text: str

    def __post_init__(self) -> None:
        if self.position not in ("HFS", "FFS"):
            raise ValueError(f"patient position must be HFS or FFS, got {self.position!r}")


def _ds(value: float) -> str:
    """A Decimal String value (PS3.5 6.2: at most 16 characters)."""
    text = format(round(float(value), 5) + 0.0, ".9g")
    if len(text) > 16:
        raise ValueError(f"{value} does not fit a DS value")
    return text


def series_geometry(
    grid: ScanGrid, position: str
) -> tuple[list[int], list[float], tuple[float, float]]:
    """Slice index of each instance (in instance order), row direction cosines, first x.

    Returns
    -------
    tuple
        ``(slice order, ImageOrientationPatient, (x of the first column, column step))``.
    """
    nz, nx = grid.shape[0], grid.shape[2]
    if position == "HFS":
        return list(range(nz))[::-1], [1.0, 0, 0, 0, 1.0, 0], (grid.origin[0], grid.spacing[0])
    last_x = grid.origin[0] + (nx - 1) * grid.spacing[0]
    return list(range(nz)), [-1.0, 0, 0, 0, 1.0, 0], (last_x, -grid.spacing[0])


def _common(ds: Dataset, ident: SeriesIdentity, thickness: float) -> None:
    """Patient, General Study, General Series, Frame of Reference, Equipment (PS3.3 A.3)."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ident.birth_date
    ds.PatientSex = ident.sex
    ds.StudyInstanceUID = ident.study_uid
    ds.StudyDate = ident.acquired.strftime("%Y%m%d")
    ds.StudyTime = ident.acquired.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = "HO1"
    ds.AccessionNumber = ""
    ds.StudyDescription = "Synthetic held-out phantom, pancreas protocol"
    ds.Modality = "CT"
    ds.SeriesInstanceUID = ident.series_uid
    ds.SeriesNumber = 201
    ds.SeriesDescription = f"Portal venous {_ds(thickness)} mm"
    # A body part that is not a paired structure, so Laterality (Type 2C) is not needed
    # (PS3.3 C.7.3.1).
    ds.BodyPartExamined = "ABDOMEN"
    ds.PatientPosition = ident.position
    ds.FrameOfReferenceUID = ident.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "PancreasAI holdout generator"
    ds.ContrastBolusAgent = "Iodinated contrast, portal-venous phase"


def _ct_image(ds: Dataset, grid: ScanGrid) -> None:
    """Image Pixel and CT Image modules (PS3.3 C.7.6.3, C.8.2.1)."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.KVP = "100"
    ds.AcquisitionNumber = 1
    ds.ConvolutionKernel = "SOFT"
    ds.WindowCenter = "50"
    ds.WindowWidth = "350"


def _instance(
    ident: SeriesIdentity, grid: ScanGrid, number: int, k: int, pixels: npt.NDArray[np.int16]
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[_ROOT, ident.seed_text, "sop", str(number)])
    thickness = grid.spacing[2]
    _common(ds, ident, thickness)
    _ct_image(ds, grid)
    ds.InstanceNumber = number
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    _, cosines, (x_first, _) = series_geometry(grid, ident.position)
    z = grid.origin[2] + k * grid.spacing[2]
    ds.ImagePositionPatient = [_ds(x_first), _ds(grid.origin[1]), _ds(z)]
    ds.ImageOrientationPatient = [_ds(c) for c in cosines]
    ds.PixelSpacing = [_ds(grid.spacing[1]), _ds(grid.spacing[0])]
    ds.SliceThickness = _ds(thickness)
    ds.SliceLocation = _ds(z)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def write_ct_series(
    hu: npt.NDArray[np.int16],
    grid: ScanGrid,
    ident: SeriesIdentity,
    directory: Path,
    syntax: str,
    names: Sequence[str],
) -> list[Path]:
    """Write ``hu`` (``[k, r, c]`` on ``grid``) as one CT series; paths in instance order.

    Raises
    ------
    ValueError
        On an unknown transfer syntax, a wrong number of names or an unavailable encoder.
    """
    if syntax not in HOLDOUT_SYNTAXES:
        raise ValueError(f"transfer syntax must be one of {list(HOLDOUT_SYNTAXES)}")
    order, _, _ = series_geometry(grid, ident.position)
    if len(names) != len(order):
        raise ValueError("one file name per slice needed")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, (k, name) in enumerate(zip(order, names, strict=True), start=1):
        pixels = hu[k] if ident.position == "HFS" else hu[k, :, ::-1]
        ds = _instance(ident, grid, number, k, pixels)
        if syntax == "rle":
            try:
                ds.compress(RLELossless, np.ascontiguousarray(pixels), generate_instance_uid=False)
            except (RuntimeError, ImportError, NotImplementedError) as exc:
                raise ValueError(f"cannot encode RLE Lossless here ({exc})") from exc
        path = directory / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def holdout_uid(*parts: str) -> str:
    """A UID derived from ``parts`` (same parts, same UID)."""
    return str(generate_uid(entropy_srcs=[_ROOT, *parts]))
