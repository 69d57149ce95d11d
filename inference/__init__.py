"""Inference room: what runs at analysis time.

Volume I/O, contrast phase, preprocessing, the analysis pipeline (:mod:`inference.analysis`),
bundle loading, the SEG/SR/PDF writers and one folder per model under
:mod:`inference.tasks`. Training and the phantom generator live in rooms of their own
(``training``, ``phantom``) and are never imported from here.

Importing this package is cheap: torch and MONAI are imported only by the modules that need
them (the tasks' networks, the analysis), never at package import.
"""

from inference.contrast_phase import (
    ContrastLandmarks,
    ContrastPhase,
    ContrastPhaseEstimate,
    PhaseRules,
    VesselLandmark,
    decide_phase,
    estimate_contrast_phase,
    estimate_series_phase,
    locate_contrast_landmarks,
)
from inference.landmark_store import LandmarkStore
from inference.tasks.resectability.measurements import (
    ContactSettings,
    MeasurementResult,
    measure,
    nccn_rule_category,
)
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
    "ContactSettings",
    "ContrastLandmarks",
    "ContrastPhase",
    "ContrastPhaseEstimate",
    "CorruptDicomError",
    "DicomVolume",
    "DuplicateSliceError",
    "GantryTiltError",
    "GeometryError",
    "InconsistentShapeError",
    "InconsistentSpacingError",
    "LandmarkStore",
    "MeasurementResult",
    "MissingGeometryError",
    "MissingSliceError",
    "MixedOrientationError",
    "MultipleSeriesError",
    "NotAnImageError",
    "PhaseRules",
    "SeriesNotFoundError",
    "SeriesSummary",
    "UnsupportedPixelDataError",
    "VesselLandmark",
    "Volume",
    "VolumeError",
    "decide_phase",
    "estimate_contrast_phase",
    "estimate_series_phase",
    "list_dicom_series",
    "locate_contrast_landmarks",
    "measure",
    "nccn_rule_category",
    "read_dicom_series",
    "read_nifti",
    "resample_to_reference",
    "resample_to_spacing",
    "to_canonical",
    "write_nifti",
]
