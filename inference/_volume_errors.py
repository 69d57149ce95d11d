"""Errors raised while reading DICOM series into volumes (re-exported by ``inference.volume_io``).

Every message is one line and names files, UIDs and geometry only, never a patient attribute.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CorruptDicomError",
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
    "UnsupportedPixelDataError",
    "VolumeError",
]


class VolumeError(ValueError):
    """Base class: the input cannot be turned into a trustworthy volume."""


class CorruptDicomError(VolumeError):
    """A file is not readable DICOM, is truncated, or its pixel data cannot be decoded."""


class NotAnImageError(VolumeError):
    """The input holds no image instances (e.g. only SR, SEG or presentation states)."""


class UnsupportedPixelDataError(VolumeError):
    """Pixel data that this reader does not turn into a scalar volume (colour, no decoder)."""


class MultipleSeriesError(VolumeError):
    """The input holds more than one series and none was chosen.

    Parameters
    ----------
    series_uids
        The SeriesInstanceUIDs found, in sorted order.
    """

    def __init__(self, series_uids: Sequence[str]) -> None:
        self.series_uids: tuple[str, ...] = tuple(series_uids)
        shown = ", ".join(uid or "<empty>" for uid in self.series_uids)
        super().__init__(
            f"{len(self.series_uids)} series found ({shown}); choose one with series_uid"
        )


class SeriesNotFoundError(VolumeError):
    """The requested SeriesInstanceUID is not among the input's image series."""


class GeometryError(VolumeError):
    """Base class for slice geometry that cannot be stacked into a regular grid."""


class MissingGeometryError(GeometryError):
    """ImagePositionPatient, ImageOrientationPatient or PixelSpacing is absent or invalid."""


class GantryTiltError(GeometryError):
    """Slice positions are sheared relative to the slice normal (gantry tilt)."""


class MixedOrientationError(GeometryError):
    """Slices of one series have different ImageOrientationPatient."""


class InconsistentShapeError(GeometryError):
    """Slices of one series have different Rows or Columns."""


class InconsistentSpacingError(GeometryError):
    """Slice positions or pixel spacings are not regular."""


class MissingSliceError(InconsistentSpacingError):
    """A gap between neighbouring slices is larger than 1.5 times the median step."""


class DuplicateSliceError(InconsistentSpacingError):
    """Two slices lie at the same position along the slice normal."""
