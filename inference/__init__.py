"""Inference room: volume I/O, phantoms, preprocessing, model, training, analysis, writers.

Importing this package is cheap: torch and MONAI are imported only by the modules that need
them (model, training, analysis), never at package import.
"""

from inference.volume import LPS_TO_RAS, Volume, read_nifti, to_canonical, write_nifti
from inference.volume_io import (
    CorruptDicomError,
    DicomVolume,
    DuplicateSliceError,
    GantryTiltError,
    GeometryError,
    InconsistentShapeError,
    InconsistentSpacingError,
    MissingGeometryError,
    MissingSliceError,
    MixedOrientationError,
    MultipleSeriesError,
    NotAnImageError,
    SeriesNotFoundError,
    SeriesSummary,
    UnsupportedPixelDataError,
    VolumeError,
    list_dicom_series,
    read_dicom_series,
    resample_to_reference,
    resample_to_spacing,
)

__all__ = [
    "LPS_TO_RAS",
    "CorruptDicomError",
    "DicomVolume",
    "DuplicateSliceError",
    "GantryTiltError",
    "GeometryError",
    "InconsistentShapeError",
    "InconsistentSpacingError",
    "MissingGeometryError",
    "MissingSliceError",
    "MixedOrientationError",
    "MultipleSeriesError",
    "NotAnImageError",
    "SeriesNotFoundError",
    "SeriesSummary",
    "UnsupportedPixelDataError",
    "Volume",
    "VolumeError",
    "list_dicom_series",
    "read_dicom_series",
    "read_nifti",
    "resample_to_reference",
    "resample_to_spacing",
    "to_canonical",
    "write_nifti",
]
