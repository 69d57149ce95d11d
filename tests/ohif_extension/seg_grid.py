"""Synthetic CT grids of any size for the SEG tests: headers only, and a label map on them.

The SEG writer needs only the source headers, so a grid of ``rows x columns x slices`` costs no
pixel data: :func:`grid_case` builds one CT header per slice (axial, head first, 0.7 mm pixels)
and a label map with a few structures on a few slices, reaching the last row and column so that
a frame cut at the wrong byte shows. Used by ``tests/inference/test_seg_writer.py`` (the label
map read back) and ``test_seg_frames_orthanc.py`` (frames served by Orthanc).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from inference import Volume
from pancreas_contracts.labels import label_by_name

#: (rows, columns, slices) of the tests: an odd grid (427 x 427, the demo's matrix: a bit-packed
#: frame is not a whole number of bytes; 3 segments x 12 slices, all kept, pack into 820,481
#: bytes, an odd length padded by one) and a 512 x 512 one.
ODD_GRID = (427, 427, 12)
EVEN_GRID = (512, 512, 300)
PIXEL_MM = 0.7
SLICE_MM = 1.0


@dataclass(frozen=True)
class GridCase:
    """Source headers (one per slice, in slice order) and a label map on their grid."""

    headers: tuple[Dataset, ...]
    label: Volume
    #: The label map as frames: ``frames[k]`` is slice ``k`` as (row, column).
    frames: npt.NDArray[np.uint8]


def grid_case(rows: int, columns: int, slices: int, seed: int = 3) -> GridCase:
    """A head-first axial CT grid and a label map with tumor, SMA and SMV on four slices."""
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    origin = (-0.5 * columns * PIXEL_MM, -0.5 * rows * PIXEL_MM, -100.0)
    headers = tuple(
        _header(rows, columns, k, origin, study, series, frame_of_reference) for k in range(slices)
    )
    frames = np.zeros((slices, rows, columns), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:columns]
    labelled = sorted({1, slices // 2, slices // 2 + 1, slices - 1})
    for k in labelled:
        cy, cx = rng.uniform(0.3, 0.7, size=2) * (rows, columns)
        frames[k][(yy - cy) ** 2 + (xx - cx) ** 2 < (0.1 * rows) ** 2] = label_by_name(
            "tumor"
        ).value
        frames[k][(yy - cy + 0.2 * rows) ** 2 + (xx - cx) ** 2 < 9.0] = label_by_name("sma").value
    # The last row and column (the bits that straddle a byte in a bit-packed frame), and a
    # lone pixel at the end of the last slice.
    frames[labelled[-1], -1, :] = label_by_name("smv").value
    frames[labelled[-1], :, -1] = label_by_name("smv").value
    frames[slices - 1, rows - 1, columns - 1] = label_by_name("sma").value
    # Voxel (x, y, k) of the label map is pixel (row y, column x) of slice k; LPS -> RAS.
    affine = np.diag([-PIXEL_MM, -PIXEL_MM, SLICE_MM, 1.0])
    affine[:3, 3] = (-origin[0], -origin[1], origin[2])
    return GridCase(headers, Volume(frames.transpose(2, 1, 0), affine), frames)


def _header(
    rows: int,
    columns: int,
    k: int,
    origin: tuple[float, float, float],
    study: str,
    series: str,
    frame_of_reference: str,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientName, ds.PatientID = "Grid^Test", "GRID-1"
    ds.PatientBirthDate, ds.PatientSex = "19600101", "F"
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "A1", ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 2, k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows, ds.Columns = rows, columns
    ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
    ds.SliceThickness = SLICE_MM
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * SLICE_MM]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    return ds
