"""The two key images of a board-packet case: an axial and a coronal plane with overlays.

Kept apart from :mod:`inference.board_packet` (value objects and pages). A board packet holds
many cases of real size (512 x 512 x 300 CT), so nothing here reads a whole CT volume: the
series' headers are scanned (:mod:`inference._dicom_read`, the volume reader's own helpers),
the slices are stacked and checked by :func:`inference._dicom_geometry.stack_geometry`, and
pixel data is decoded only for the two planes shown. The AI SEG is read with pydicom, and only
the frames of the structures drawn (pancreas, tumor, key vessels) are decoded and placed by
their Image Position (Patient), which works for single-frame and Enhanced CT alike.

The axial plane is the report's first key slice (:func:`inference.pdf_report.key_slices`: the
tumor's largest cross-section, else the pancreas'); the coronal plane passes through the
tumor's (else the pancreas') largest coronal cross-section.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import Decoder, get_decoder

from inference._dicom_geometry import StackGeometry, stack_geometry
from inference._dicom_read import (
    PARSE_ERRORS,
    FrameRef,
    ImageInstance,
    collect_files,
    decode_frames,
    frames_of,
    scan,
    single_slice_step,
)
from inference._pdf_layout import OVERLAY_LABELS
from inference.volume import LPS_TO_RAS, Volume, to_canonical
from pancreas_contracts.labels import LABELS, label_by_name

__all__ = ["KeyPlane", "PacketImageError", "load_key_planes"]

#: Margin (mm) kept around the pancreas and tumor when a plane is cropped.
CROP_MARGIN_MM: Final = 30.0
#: Structures read from the SEG: what the planes show, and what chooses them.
_SHOWN: Final = frozenset(("pancreas", "tumor", *OVERLAY_LABELS))
#: A SEG frame further than this (in slice steps) from every CT slice is not placed.
_SLICE_TOLERANCE: Final = 0.25


class PacketImageError(ValueError):
    """The SEG cannot be read or does not fit the CT series (no identifiers in the message)."""


@dataclass(frozen=True)
class KeyPlane:
    """One plane to show, display-ordered (radiological view: the patient's right on the left).

    ``ct`` holds HU and ``labels`` label values; rows run anterior to posterior (axial) or
    cranial to caudal (coronal). ``aspect`` is the row spacing over the column spacing.
    """

    view: Literal["axial", "coronal"]
    ct: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]
    aspect: float
    title: str


@dataclass(frozen=True, eq=False)
class _Stack:
    """The CT series' instances and frames, sorted along the slice normal, without pixels."""

    instances: tuple[ImageInstance, ...]
    frames: tuple[FrameRef, ...]
    geometry: StackGeometry

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.geometry.columns, self.geometry.rows, len(self.frames))

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        return LPS_TO_RAS @ self.geometry.affine_lps


def _stack(ct_files: Sequence[Path]) -> _Stack:
    images = scan(collect_files(list(ct_files))).images
    by_series: dict[str, dict[str, ImageInstance]] = {}
    for inst in images:
        # A series sent twice (a new version) repeats SOP instances: the first copy counts.
        by_series.setdefault(inst.series_instance_uid, {}).setdefault(inst.sop_instance_uid, inst)
    if not by_series:
        raise PacketImageError("no CT images among the series' files")
    instances = tuple(max(by_series.values(), key=len).values())
    per_instance = [frames_of(inst, n) for n, inst in enumerate(instances)]
    frames = [f for own in per_instance for f in own]
    single = single_slice_step(instances[0]) if len(frames) == 1 else None
    geometry = stack_geometry([f.plane for f in frames], single_slice_step_mm=single)
    return _Stack(instances, tuple(frames[i] for i in geometry.order), geometry)


def _segment_values(seg: Dataset) -> dict[int, int]:
    """Segment number -> label value, for the structures shown (by Tracking ID, else label)."""
    by_display = {entry.display.casefold(): entry for entry in LABELS}
    out = {}
    for item in seg.SegmentSequence:
        name = str(item.get("TrackingID", "") or "")
        entry = next((e for e in LABELS if e.name == name), None)
        entry = entry or by_display.get(str(item.get("SegmentLabel", "")).casefold())
        if entry is not None and entry.name in _SHOWN:
            out[int(item.SegmentNumber)] = entry.value
    return out


def _read_seg(seg_file: Path) -> tuple[Dataset, dict[int, int], Decoder]:
    """The SEG, its shown segments (number -> label value) and its pixel decoder."""
    try:
        seg = pydicom.dcmread(seg_file)
        return seg, _segment_values(seg), get_decoder(seg.file_meta.TransferSyntaxUID)
    except PARSE_ERRORS as exc:
        raise PacketImageError(f"unreadable SEG ({type(exc).__name__})") from exc


def _frame_slots(
    seg: Dataset, values: dict[int, int], stack: _Stack
) -> Iterator[tuple[int, int, int]]:
    """``(frame index, CT slice, label value)`` of each SEG frame of a shown structure.

    Frames are placed by their Image Position (Patient) along the CT's slice normal; a frame
    between slices or outside the series is left out.
    """
    affine = stack.geometry.affine_lps
    step = stack.geometry.slice_step_mm
    normal = affine[:3, 2] / step
    try:
        for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
            value = values.get(int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber))
            if value is None:
                continue  # a structure not shown: its frame is never decoded
            position = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
            offset = float((position - affine[:3, 3]) @ normal) / step
            k = round(offset)
            if abs(offset - k) <= _SLICE_TOLERANCE and 0 <= k < stack.shape[2]:
                yield index, k, value
    except PARSE_ERRORS as exc:
        raise PacketImageError(f"SEG frame geometry unreadable ({type(exc).__name__})") from exc


def _seg_labels(seg_file: Path, stack: _Stack) -> npt.NDArray[np.uint8]:
    """The SEG's shown structures on the CT's native ``(column, row, slice)`` grid."""
    seg, values, decoder = _read_seg(seg_file)
    if (seg.get("Rows"), seg.get("Columns")) != (stack.geometry.rows, stack.geometry.columns):
        raise PacketImageError("the SEG's frames differ in size from the CT images")
    labels = np.zeros(stack.shape, dtype=np.uint8)
    for index, k, value in _frame_slots(seg, values, stack):
        try:
            frame, _ = decoder.as_array(seg, index=index)
        except (*PARSE_ERRORS, RuntimeError) as exc:
            raise PacketImageError(f"SEG frame undecodable ({type(exc).__name__})") from exc
        labels[:, :, k][frame.T > 0] = value
    return labels


def _native_axis(affine: npt.NDArray[np.float64], canonical_axis: int) -> tuple[int, bool]:
    """The native axis that becomes ``canonical_axis`` in RAS+, and whether it is flipped."""
    ornt = nib.orientations.io_orientation(affine)
    axis = int(np.flatnonzero(ornt[:, 0] == canonical_axis)[0])
    return axis, bool(ornt[axis, 1] < 0)


def _ct_plane(stack: _Stack, axis: int, index: int) -> npt.NDArray[np.float32]:
    """HU of native plane ``index`` along native ``axis``, kept 3D (that axis of size 1).

    Only the slices crossing the plane are decoded: one slice for a plane along the slice
    axis, every slice (one row or column kept of each) otherwise.
    """
    shape = list(stack.shape)
    shape[axis] = 1
    out = np.empty(shape, dtype=np.float32)
    wanted = [index] if axis == 2 else range(stack.shape[2])
    cached: tuple[int, npt.NDArray[np.generic]] | None = None
    for k in wanted:
        frame = stack.frames[k]
        if cached is None or cached[0] != frame.instance:
            # An Enhanced CT holds every frame in one instance: decode it once.
            cached = (frame.instance, decode_frames(stack.instances[frame.instance]))
        pixels = cached[1][frame.frame].T  # (row, column) -> (column, row)
        taken = pixels if axis == 2 else np.take(pixels, [index], axis=axis)
        values = taken.astype(np.float32) * np.float32(frame.slope) + np.float32(frame.intercept)
        out[:, :, 0 if axis == 2 else k] = values.reshape(out.shape[:2])
    return out


def _canonical_plane(
    stack: _Stack, array: npt.NDArray[np.float32], canonical_axis: int
) -> npt.NDArray[np.float32]:
    """The canonical plane of a native array one voxel thick across the plane."""
    # The plane's own offset does not matter: only the axis order and flips are applied.
    canonical = to_canonical(Volume(array, stack.affine)).array
    plane: npt.NDArray[np.float32] = np.moveaxis(canonical, canonical_axis, 0)[0]
    return plane


def _native_index(stack: _Stack, canonical_axis: int, index: int) -> tuple[int, int]:
    axis, flipped = _native_axis(stack.affine, canonical_axis)
    return axis, stack.shape[axis] - 1 - index if flipped else index


def _largest_section(canonical: npt.NDArray[np.uint8], axis: int) -> tuple[int, str]:
    """Index of the tumor's (else the pancreas') largest section across ``axis``."""
    others = tuple(a for a in range(3) if a != axis)
    for name in ("tumor", "pancreas"):
        entry = label_by_name(name)
        areas = (canonical == entry.value).sum(axis=others)
        if areas.any():
            return int(np.argmax(areas)), f"largest {entry.display.lower()} section"
    return canonical.shape[axis] // 2, "middle (no pancreas or tumor)"


def _crop(canonical: npt.NDArray[np.uint8], spacing: tuple[float, ...]) -> list[slice]:
    """Per canonical axis: the pancreas and tumor extent plus the margin."""
    wanted = np.zeros(len(LABELS), dtype=bool)
    wanted[[label_by_name(n).value for n in ("pancreas", "tumor")]] = True
    mask = wanted[canonical]  # a lookup: several times faster than np.isin on 80 M voxels
    if not mask.any():
        return [slice(None)] * 3
    out = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        margin = int(np.ceil(CROP_MARGIN_MM / spacing[axis]))
        lo = max(int(present[0]) - margin, 0)
        out.append(slice(lo, min(int(present[-1]) + margin + 1, canonical.shape[axis])))
    return out


def _square(
    box: list[slice], axes: tuple[int, int], spacing: tuple[float, ...], shape: tuple[int, ...]
) -> list[slice]:
    """Grow the box along ``axes`` to one extent in mm, so the panels share one scale."""
    out = list(box)
    spans = [(box[a].start or 0, shape[a] if box[a].stop is None else box[a].stop) for a in axes]
    extent = max((hi - lo) * spacing[a] for a, (lo, hi) in zip(axes, spans, strict=True))
    for a, (lo, hi) in zip(axes, spans, strict=True):
        want = min(int(np.ceil(extent / spacing[a])), shape[a])
        lo = max(lo - (want - (hi - lo)) // 2, 0)
        hi = min(lo + want, shape[a])
        out[a] = slice(max(hi - want, 0), hi)
    return out


_View = tuple[Literal["axial", "coronal"], int, tuple[int, int]]
#: The two views: name, the canonical axis across the plane, the canonical axes it shows.
_VIEWS: Final[tuple[_View, _View]] = (("axial", 2, (0, 1)), ("coronal", 1, (0, 2)))


def _plane(stack: _Stack, canonical: Volume, box: list[slice], view: _View) -> KeyPlane:
    name, axis, kept = view
    labels = np.asarray(canonical.array, dtype=np.uint8)
    index, reason = _largest_section(labels, axis)
    native_axis, native_index = _native_index(stack, axis, index)
    ct = _canonical_plane(stack, _ct_plane(stack, native_axis, native_index), axis)
    crop = _square(box, kept, canonical.spacing, canonical.shape)
    window = (crop[kept[0]], crop[kept[1]])
    # Canonical (right, anterior|superior) -> rows anterior|cranial first, the right first.
    show_ct = ct[window][::-1, ::-1].T
    show_labels = np.moveaxis(labels, axis, 0)[index][window][::-1, ::-1].T
    voxel = [0, 0, 0]
    voxel[axis] = index
    where = float(canonical.voxel_to_world([voxel])[0, axis])
    return KeyPlane(
        view=name,
        ct=np.ascontiguousarray(show_ct),
        labels=np.ascontiguousarray(show_labels),
        aspect=canonical.spacing[kept[1]] / canonical.spacing[kept[0]],
        title=f"{name.capitalize()}: {reason}, {'zy'[2 - axis]} = {where:.1f} mm",
    )


def load_key_planes(ct_files: Sequence[Path], seg_file: Path) -> tuple[KeyPlane, KeyPlane]:
    """The axial and coronal key planes of one case, cropped to the pancreas and tumor.

    The axial plane crosses the tumor's largest axial section (else the pancreas'), as the
    PDF report's first key slice; the coronal plane its largest coronal section.

    Raises
    ------
    inference.VolumeError
        If the CT files are not one readable, regular series.
    PacketImageError
        If the SEG cannot be read or does not lie on the CT's grid.
    OSError
        If a file cannot be read.
    """
    stack = _stack(ct_files)
    canonical = to_canonical(Volume(_seg_labels(seg_file, stack), stack.affine))
    box = _crop(np.asarray(canonical.array, dtype=np.uint8), canonical.spacing)
    return _plane(stack, canonical, box, _VIEWS[0]), _plane(stack, canonical, box, _VIEWS[1])
