"""Lenient DICOM file reading for :mod:`inference.volume_io`.

File discovery, header parsing (``force=True`` so preamble-less files still read), image versus
non-image classification, per-frame geometry and rescale for single-frame and Enhanced
multi-frame instances (PS3.3 C.7.6.16 Multi-frame Functional Groups), and pixel decoding through
pydicom's decoders (pylibjpeg, pyjpegls for compressed transfer syntaxes).
"""

from __future__ import annotations

import errno
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from inference._dicom_geometry import PlaneGeometry
from inference._volume_errors import (
    CorruptDicomError,
    MissingGeometryError,
    NotAnImageError,
    UnsupportedPixelDataError,
)

__all__ = [
    "PARSE_ERRORS",
    "FrameRef",
    "ImageInstance",
    "ScanResult",
    "collect_files",
    "decode_frames",
    "drop_pixel_data",
    "frames_of",
    "scan",
    "single_slice_step",
]

#: Elements larger than this are read only when accessed (pixel data of unselected series).
_DEFER_SIZE: Final = 8192
_PIXEL_KEYWORDS: Final = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: Parsing failures pydicom raises on damaged files (IO errors propagate unchanged).
PARSE_ERRORS: Final = (
    InvalidDicomError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    struct.error,
)


@dataclass(frozen=True, eq=False)
class ImageInstance:
    """One parsed image instance (pixel data deferred until decoded)."""

    path: Path
    dataset: Dataset
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str


@dataclass(frozen=True)
class FrameRef:
    """One image plane: which instance and frame it comes from, its geometry and rescale."""

    instance: int
    frame: int
    plane: PlaneGeometry
    slope: float
    intercept: float


@dataclass(frozen=True, eq=False)
class ScanResult:
    """Outcome of reading every file of a source."""

    images: tuple[ImageInstance, ...]
    non_images: tuple[tuple[Path, str], ...]
    skipped: tuple[Path, ...]


def collect_files(source: Path | str | Sequence[Path | str]) -> list[tuple[Path, bool]]:
    """List candidate files; ``True`` marks files named explicitly (not found by a walk).

    Directories are walked recursively in sorted order; hidden entries and DICOMDIR are left out.
    """
    roots: list[Path] = (
        [Path(source)] if isinstance(source, str | os.PathLike) else [Path(p) for p in source]
    )
    if not roots:
        raise NotAnImageError("no input files given")
    found: dict[Path, bool] = {}
    for root in roots:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if path.is_file() and path.name.upper() != "DICOMDIR":
                    found.setdefault(path, False)
        elif root.is_file():
            found[root] = True
        elif not root.exists():
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(root))
        else:
            raise NotAnImageError(f"{root.name}: not a regular file or directory")
    if not found:
        raise NotAnImageError(f"no files found in {', '.join(r.name for r in roots)}")
    return list(found.items())


def scan(files: Sequence[tuple[Path, bool]]) -> ScanResult:
    """Read the headers of ``files`` and sort them into images, non-images and skipped files.

    Raises
    ------
    CorruptDicomError
        A file that claims to be DICOM (preamble or file meta) cannot be parsed, or a file
        named explicitly is not DICOM at all.
    """
    images: list[ImageInstance] = []
    non_images: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    for path, explicit in files:
        ds = _read_header(path, explicit=explicit)
        if ds is None:
            skipped.append(path)
            continue
        sop_class = _text(ds, "SOPClassUID") or _text(ds.file_meta, "MediaStorageSOPClassUID")
        if sop_class == MediaStorageDirectoryStorage:
            skipped.append(path)
            continue
        has_pixels = any(k in ds for k in _PIXEL_KEYWORDS)
        image_class = _is_image_class(sop_class)
        if not has_pixels and image_class is True:
            raise CorruptDicomError(f"{path.name}: image SOP class without pixel data (truncated?)")
        if not has_pixels or image_class is False:
            non_images.append((path, sop_class))
            continue
        images.append(
            ImageInstance(
                path=path,
                dataset=ds,
                sop_class_uid=sop_class,
                sop_instance_uid=_text(ds, "SOPInstanceUID")
                or _text(ds.file_meta, "MediaStorageSOPInstanceUID"),
                series_instance_uid=_text(ds, "SeriesInstanceUID"),
                study_instance_uid=_text(ds, "StudyInstanceUID"),
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            )
        )
    return ScanResult(tuple(images), tuple(non_images), tuple(skipped))


def _read_header(path: Path, *, explicit: bool) -> Dataset | None:
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=_DEFER_SIZE)
        claims_dicom = ds.preamble is not None or "TransferSyntaxUID" in ds.file_meta
        looks_dicom = "SOPClassUID" in ds or ("Rows" in ds and "PixelData" in ds)
    except PARSE_ERRORS as exc:
        raise CorruptDicomError(f"{path.name}: unreadable DICOM ({type(exc).__name__})") from exc
    if not claims_dicom and not looks_dicom:
        if explicit:
            raise CorruptDicomError(f"{path.name}: not a DICOM file")
        return None
    if len(ds) == 0:
        raise CorruptDicomError(f"{path.name}: no data set after the file meta (truncated?)")
    if "TransferSyntaxUID" not in ds.file_meta:
        # Preamble-less raw data set: record the encoding pydicom detected while parsing.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _is_image_class(sop_class_uid: str) -> bool | None:
    """``True`` for a known "... Image Storage" class, ``False`` for other known classes."""
    if not sop_class_uid:
        return None
    uid = UID(sop_class_uid)
    if uid.name == uid or not uid.is_valid:
        return None
    return "Image Storage" in uid.name


def _floats(value: Any, count: int, name: str, where: str) -> tuple[float, ...]:
    if value is None:
        raise MissingGeometryError(f"{where}: {name} missing")
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError) as exc:
        raise MissingGeometryError(f"{where}: {name} is not numeric") from exc
    if len(out) != count or not all(math.isfinite(v) for v in out):
        raise MissingGeometryError(f"{where}: {name} must hold {count} finite numbers")
    return out


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None:
        return None
    seq = ds.get(keyword)
    if not seq:
        return None
    item = seq[0]
    return item if isinstance(item, Dataset) else None


def _group_value(
    per_frame: Dataset | None, shared: Dataset | None, sequence: str, keyword: str
) -> Any:
    """Look ``keyword`` up in ``sequence`` of the per-frame, then the shared functional groups.

    PS3.3 C.7.6.16.1.1: a functional group macro is in the Shared or in the Per-frame Functional
    Groups Sequence, never both; the per-frame item wins if a writer put it in both.
    """
    for group in (per_frame, shared):
        item = _first_item(group, sequence)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def frames_of(instance: ImageInstance, index: int) -> list[FrameRef]:
    """Geometry and rescale of every frame of ``instance`` (``index``: its position in the list).

    Single-frame images use the Image Plane module (PS3.3 C.7.6.2) and RescaleSlope/Intercept
    (C.8.2.1); multi-frame images use the Plane Position, Plane Orientation, Pixel Measures and
    Pixel Value Transformation functional groups (C.7.6.16.2.3, .4, .1, .9).
    """
    ds = instance.dataset
    where = instance.path.name
    try:
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        rows, columns = int(ds.Rows), int(ds.Columns)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CorruptDicomError(f"{where}: invalid Rows/Columns/NumberOfFrames") from exc
    if samples != 1:
        raise UnsupportedPixelDataError(
            f"{where}: SamplesPerPixel {samples} (colour) is not a scalar volume"
        )
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame_seq is not None and len(per_frame_seq) != n_frames:
        raise CorruptDicomError(
            f"{where}: {len(per_frame_seq)} per-frame functional groups for {n_frames} frames"
        )
    if n_frames > 1 and per_frame_seq is None:
        raise MissingGeometryError(f"{where}: multi-frame image without per-frame positions")
    frames: list[FrameRef] = []
    for f in range(n_frames):
        per = per_frame_seq[f] if per_frame_seq is not None else None
        label = f"{where} frame {f + 1}" if n_frames > 1 else where

        def lookup(sequence: str, keyword: str, per: Dataset | None = per) -> Any:
            value = _group_value(per, shared, sequence, keyword)
            return ds.get(keyword) if value is None else value

        iop = _floats(
            lookup("PlaneOrientationSequence", "ImageOrientationPatient"),
            6,
            "ImageOrientationPatient",
            label,
        )
        ipp = _floats(
            lookup("PlanePositionSequence", "ImagePositionPatient"),
            3,
            "ImagePositionPatient",
            label,
        )
        spacing = _floats(lookup("PixelMeasuresSequence", "PixelSpacing"), 2, "PixelSpacing", label)
        slope_raw = lookup("PixelValueTransformationSequence", "RescaleSlope")
        intercept_raw = lookup("PixelValueTransformationSequence", "RescaleIntercept")
        try:
            slope = 1.0 if slope_raw in (None, "") else float(slope_raw)
            intercept = 0.0 if intercept_raw in (None, "") else float(intercept_raw)
        except (TypeError, ValueError) as exc:
            raise CorruptDicomError(f"{label}: RescaleSlope/Intercept not numeric") from exc
        if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
            raise CorruptDicomError(f"{label}: invalid RescaleSlope {slope} / Intercept")
        plane = PlaneGeometry(
            orientation=(iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]),
            position=(ipp[0], ipp[1], ipp[2]),
            pixel_spacing=(spacing[0], spacing[1]),
            rows=rows,
            columns=columns,
        )
        frames.append(FrameRef(index, f, plane, slope, intercept))
    return frames


def single_slice_step(instance: ImageInstance) -> float | None:
    """SpacingBetweenSlices, else SliceThickness, for a one-slice volume (``None`` if absent)."""
    ds = instance.dataset
    measures = _first_item(
        _first_item(ds, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence"
    )
    for source in (measures, ds):
        if source is None:
            continue
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = source.get(keyword)
            try:
                step = float(value) if value not in (None, "") else 0.0
            except (TypeError, ValueError):
                continue
            if math.isfinite(step) and step > 0:
                return abs(step)
    return None


def decode_frames(instance: ImageInstance) -> npt.NDArray[np.generic]:
    """Decode all frames of ``instance`` as stored values, shape ``(frames, rows, columns)``.

    Raises
    ------
    UnsupportedPixelDataError
        No decoder for the transfer syntax, or its plugin is not installed.
    CorruptDicomError
        The pixel data cannot be decoded (truncated, damaged codestream).
    """
    ts = UID(instance.transfer_syntax_uid)
    name = instance.path.name
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise UnsupportedPixelDataError(f"{name}: no decoder for transfer syntax {ts}") from exc
    if not decoder.is_available:
        raise UnsupportedPixelDataError(
            f"{name}: decoder plugin for {ts.name} is not installed (pylibjpeg/pyjpegls)"
        )
    try:
        array, _ = decoder.as_array(instance.dataset)
    except (*PARSE_ERRORS, RuntimeError) as exc:
        raise CorruptDicomError(f"{name}: pixel data cannot be decoded ({_short(exc)})") from exc
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise UnsupportedPixelDataError(f"{name}: decoded pixel data has shape {array.shape}")
    return array


def drop_pixel_data(ds: Dataset) -> None:
    """Remove the pixel data elements of ``ds`` (once decoded), keeping its header."""
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 120:
        text = text[:117].rstrip() + "..."
    return text or type(exc).__name__
