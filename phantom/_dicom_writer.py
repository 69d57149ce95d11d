"""Write a phantom as a DICOM CT Image Storage series.

Stored values are unsigned 12-bit (``HU + 1024``, Rescale Intercept -1024). Head-first supine
series number their instances from the head down (``z`` falls with Instance Number); feet-first
series from the feet up. Image Orientation stays ``1\\0\\0\\0\\1\\0`` in both, as scanners
report it. Prone series (``HFP``, ``FFP``: wide phantom variation only) are stored rotated by
180 degrees, rows running to the patient's right and columns forwards
(``-1\\0\\0\\0\\-1\\0``), as a prone patient's images are (PS3.3 C.7.6.2.1.1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from phantom._jpeg_lossless import encode_jpeg_lossless
from phantom._render import PhantomScan

TRANSFER_SYNTAXES: Mapping[str, UID] = MappingProxyType(
    {
        "explicit": ExplicitVRLittleEndian,
        "implicit": ImplicitVRLittleEndian,
        "deflated": DeflatedExplicitVRLittleEndian,
        "jpeg2000": JPEG2000Lossless,
        "jpegls": JPEGLSLossless,
        "rle": RLELossless,
        "jpeg-lossless": JPEGLosslessSV1,
    }
)
_INTERCEPT = -1024
_BITS_STORED = 12
_UID_ROOT = "pancreas-ai-phantom"
_PHASE_SHORT = MappingProxyType(
    {"portal-venous": "PV", "pancreatic": "PANC", "late-arterial": "ART"}
)


@dataclass(frozen=True)
class SeriesHeader:
    """Patient, study and series attributes shared by every instance of one series."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    age_years: int
    height_m: float
    weight_kg: float
    study_uid: str
    series_uid: str
    frame_uid: str
    uid_entropy: tuple[str, ...]
    acquired: dt.datetime
    position: str
    thickness: float
    contrast_phase: str = "portal-venous"


def ds_number(value: float) -> str:
    """A decimal string of at most 16 characters that reads back as the same rounded value."""
    text = format(round(float(value), 4) + 0.0, ".10g")
    if len(text) > 16:
        raise ValueError(f"{value} does not fit a DS value")
    return text


def instance_uid(entropy: tuple[str, ...], *parts: str) -> str:
    """A UID derived from the patient's entropy and ``parts`` (same inputs, same UID)."""
    return str(generate_uid(entropy_srcs=[_UID_ROOT, *entropy, *parts]))


def _patient_and_study(ds: Dataset, header: SeriesHeader) -> None:
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.birth_date
    ds.PatientSex = header.sex
    ds.PatientComments = "Synthetic phantom: no real patient"
    ds.StudyInstanceUID = header.study_uid
    ds.StudyDate = header.acquired.strftime("%Y%m%d")
    ds.StudyTime = header.acquired.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = header.patient_id.replace("PHANTOM-", "PH")
    ds.StudyDescription = "CT ABDOMEN PANCREAS PROTOCOL (PHANTOM)"
    ds.PatientAge = f"{header.age_years:03d}Y"
    ds.PatientSize = ds_number(header.height_m)
    ds.PatientWeight = ds_number(header.weight_kg)


def _series_and_equipment(ds: Dataset, header: SeriesHeader) -> None:
    ds.Modality = "CT"
    ds.SeriesInstanceUID = header.series_uid
    ds.SeriesNumber = 3
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = (header.acquired + dt.timedelta(seconds=70)).strftime("%H%M%S")
    short = _PHASE_SHORT.get(header.contrast_phase, "CT")
    ds.SeriesDescription = f"{short} {ds_number(header.thickness)}mm"
    ds.BodyPartExamined = "ABDOMEN"
    ds.PatientPosition = header.position
    ds.FrameOfReferenceUID = header.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "PancreasAI"
    ds.ManufacturerModelName = "Synthetic phantom"
    ds.SoftwareVersions = "pancreas-ai-node phantom 1"
    ds.InstitutionName = "Synthetic"
    ds.ContrastBolusAgent = f"Iodinated contrast ({header.contrast_phase} phase)"
    ds.ContrastBolusRoute = "IV"
    ds.ContrastBolusVolume = "100"
    ds.ContrastBolusIngredient = "IODINE"
    ds.ContrastBolusIngredientConcentration = "350"


def _ct_image(ds: Dataset) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP = "120"
    ds.AcquisitionNumber = 1
    ds.ConvolutionKernel = "STANDARD"
    ds.RescaleIntercept = str(_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0


def instance_order(count: int, position: str) -> list[int]:
    """Slice index ``k`` (``z`` ascending) of instance numbers 1..count."""
    ascending = list(range(count))
    return ascending if position.startswith("FF") else ascending[::-1]


def _stored(scan: PhantomScan, k: int, position: str) -> npt.NDArray[np.uint16]:
    """Stored values of slice ``k`` in the series' row and column order."""
    plane = scan.hu[k, ::-1, ::-1] if position.endswith("P") else scan.hu[k]
    return np.ascontiguousarray((plane.astype(np.int32) - _INTERCEPT).astype(np.uint16))


def _instance(scan: PhantomScan, header: SeriesHeader, number: int, k: int) -> Dataset:
    grid = scan.grid
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = instance_uid(header.uid_entropy, "sop", str(number))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = header.acquired.strftime("%Y%m%d")
    ds.InstanceCreationTime = header.acquired.strftime("%H%M%S")
    _patient_and_study(ds, header)
    _series_and_equipment(ds, header)
    _ct_image(ds)
    ds.InstanceNumber = number
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.SeriesTime
    x0, y0, z0 = grid.origin
    dx, dy, dz = grid.spacing
    z = z0 + k * dz
    ds.ImagePositionPatient = [ds_number(x0), ds_number(y0), ds_number(z)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    if header.position.endswith("P"):
        # The first stored pixel is the patient's most left and most posterior voxel.
        x1, y1 = x0 + dx * (grid.shape[2] - 1), y0 + dy * (grid.shape[1] - 1)
        ds.ImagePositionPatient = [ds_number(x1), ds_number(y1), ds_number(z)]
        ds.ImageOrientationPatient = ["-1", "0", "0", "0", "-1", "0"]
    ds.PixelSpacing = [ds_number(dy), ds_number(dx)]
    ds.SliceThickness = ds_number(header.thickness)
    ds.SpacingBetweenSlices = ds_number(dz)
    ds.SliceLocation = ds_number(z)
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.LossyImageCompression = "00"
    ds.PixelData = _stored(scan, k, header.position).tobytes()
    return ds


def _file_meta(ds: Dataset, syntax: UID) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta


def encode_pixels(ds: Dataset, syntax: UID, stored: npt.NDArray[np.uint16]) -> None:
    """Re-encode ``ds``'s pixel data in ``syntax`` (native syntaxes leave it unchanged).

    Raises
    ------
    ValueError
        If no encoder for ``syntax`` is available in this environment.
    """
    if not syntax.is_compressed:
        return
    if syntax == JPEGLosslessSV1:
        ds.PixelData = encapsulate([encode_jpeg_lossless(stored, _BITS_STORED)])
        ds["PixelData"].VR = "OB"
        return
    try:
        ds.compress(syntax, stored, generate_instance_uid=False)
    except (RuntimeError, ImportError, NotImplementedError) as exc:
        raise ValueError(f"cannot encode {syntax.name} here ({exc})") from exc


def file_names(count: int, shuffle: bool, rng: np.random.Generator) -> list[str]:
    """File name of each instance (by instance number); shuffled names break any name order."""
    numbers = rng.permutation(count) + 1 if shuffle else np.arange(1, count + 1)
    return [f"IM{int(n):05d}.dcm" for n in numbers]


def write_series(
    scan: PhantomScan,
    header: SeriesHeader,
    directory: Path,
    syntax: UID,
    names: list[str],
) -> list[Path]:
    """Write every slice of ``scan`` to ``directory`` and return the paths (instance order)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    order = instance_order(scan.grid.shape[0], header.position)
    for number, (k, name) in enumerate(zip(order, names, strict=True), start=1):
        ds = _instance(scan, header, number, k)
        _file_meta(ds, syntax)
        encode_pixels(ds, syntax, _stored(scan, k, header.position))
        path = directory / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
