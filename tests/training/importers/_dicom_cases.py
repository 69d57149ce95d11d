"""Small DICOM CT series, SEGs and RTSTRUCTs written here, for the importer round trips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

__all__ = ["assert_no_identifiers", "native_lookup", "write_ct_series", "write_seg"]

#: Identifiers the tests look for in every file an import writes: none may appear.
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "MRN-7731"
BIRTH_DATE = "19500102"


def write_ct_series(
    folder: Path,
    hu: npt.NDArray[np.int16],
    *,
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.0),
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    origin: tuple[float, float, float] = (-12.0, -10.0, 30.0),
    rescale_intercept: float = -1024.0,
) -> list[Dataset]:
    """Write ``hu`` (``(slices, rows, columns)``) as a CT series; slice k at ``origin + k*dz``."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    row_cos = np.array(orientation[:3])
    col_cos = np.array(orientation[3:])
    normal = np.cross(row_cos, col_cos)
    datasets = []
    for k in range(hu.shape[0]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName = PATIENT_NAME
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = BIRTH_DATE
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.StudyID = "1"
        ds.StudyDate = "20260101"
        ds.StudyTime = "120000"
        ds.AccessionNumber = "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality = "CT"
        ds.Manufacturer = "test"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.PositionReferenceIndicator = ""
        ds.ImageOrientationPatient = list(orientation)
        position = np.array(origin) + k * spacing[2] * normal
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = spacing[2]
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = rescale_intercept
        ds.RescaleSlope = 1.0
        ds.RescaleType = "HU"
        ds.KVP = 120
        stored = (hu[k].astype(np.int32) - int(rescale_intercept)).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"ct_{k:03d}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return datasets


def write_seg(
    path: Path,
    ct: Sequence[Dataset],
    masks: dict[str, npt.NDArray[np.bool_]],
    *,
    fractional: bool = False,
) -> None:
    """Write one SEG segment per ``masks`` entry (``(slices, rows, columns)``, ``ct``'s order)."""
    names = list(masks)
    stacked = np.stack([masks[name] for name in names], axis=-1).astype(np.uint8)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name,
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Organ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, name in enumerate(names, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=ct,
        pixel_array=stacked.astype(np.float32) if fractional else stacked,
        segmentation_type=(
            hd.seg.SegmentationTypeValues.FRACTIONAL
            if fractional
            else hd.seg.SegmentationTypeValues.BINARY
        ),
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=True,
    )
    seg.save_as(path)


def native_lookup(
    label_affine: npt.NDArray[np.float64],
    shape: tuple[int, ...],
    mask: npt.NDArray[np.bool_],
    *,
    spacing: tuple[float, float, float],
    orientation: tuple[float, ...],
    origin: tuple[float, float, float],
) -> npt.NDArray[np.bool_]:
    """``mask`` (``(slices, rows, columns)`` as written) seen on a NIfTI grid, from first
    principles: each voxel centre to RAS, to LPS, to (column, row, slice) of the series."""
    index = np.indices(shape).reshape(3, -1)
    world = (label_affine @ np.vstack([index, np.ones(index.shape[1])]))[:3]
    lps = world * np.array([[-1.0], [-1.0], [1.0]])
    row_cos, col_cos = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row_cos, col_cos)
    offset = lps - np.array(origin)[:, None]
    column = np.rint(row_cos @ offset / spacing[1]).astype(int)
    row = np.rint(col_cos @ offset / spacing[0]).astype(int)
    slice_ = np.rint(normal @ offset / spacing[2]).astype(int)
    result: npt.NDArray[np.bool_] = mask[slice_, row, column].reshape(shape)
    return result


def assert_no_identifiers(folder: Path) -> None:
    """No file under ``folder`` holds the test patient's name, id or birth date."""
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip

                data = gzip.decompress(data)
            for identifier in (PATIENT_NAME, "Doe", PATIENT_ID, BIRTH_DATE):
                assert identifier.encode() not in data, (path.name, identifier)
