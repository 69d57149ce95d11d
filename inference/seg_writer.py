"""DICOM Segmentation (PS3.3 A.51 Segmentation IOD) of the node's 16-class label map.

:func:`write_seg` turns a label map on the source CT grid into a Segmentation with highdicom:
one segment per foreground structure present (codes and colours from
:data:`pancreas_contracts.labels.LABELS`), the model identified in each segment's Algorithm
Identification Sequence, and references to every source instance.

Alignment
---------
Each frame is cut out of the label map at the world positions of one source frame's pixels,
using that frame's own ImagePositionPatient, ImageOrientationPatient and PixelSpacing
(PS3.3 C.7.6.2.1.1), so file order, slice order (head- or feet-first), InstanceNumber and the
label map's axis order do not matter; a label map that is not on the source grid (voxel centres
off by more than :data:`GRID_TOLERANCE_VOXELS`) is refused rather than resampled.

Pixel data every reader can cut into frames
-------------------------------------------
Readers take the pixel data apart frame by frame, and the two the node relies on (OHIF 3.13,
Orthanc 1.10) compute the length they expect: OHIF's parser (dcmjs) requires the value length
to be exactly ``ceil(Rows x Columns x NumberOfFrames / 8)`` for bit-packed frames
(``NumberOfFrames x`` the frame length otherwise), and Orthanc's DICOMweb ``.../frames/N`` route
answers 400 "Bad file format" when it is not. A BINARY SEG packs its bits across frame
boundaries (PS3.5 8.1.1, PS3.3 C.8.20.2.1), so with ``Rows x Columns`` not a multiple of 8
frames straddle bytes and the packed length is odd for many frame counts; the value is then
padded to an even length (PS3.5 7.1.1) and both readers refuse it ("calculated length 59256925
does not match the actual length 59256926"; the demo's 427 x 427 x 200 phantom with its 15
segments and every frame kept was one such case). Hence (:func:`segmentation_encoding`):

* ``Rows x Columns`` a multiple of 16 (512 x 512, 256 x 256, ...): BINARY, native (uncompressed)
  pixel data; every frame is a whole, even number of bytes, so frames are byte-aligned and
  the value never needs padding, whatever the number of frames.
* any other grid (427 x 427, ...): FRACTIONAL (8 bits, 0 or ``MaximumFractionalValue`` 255,
  PS3.3 C.8.20.2.3), RLE Lossless (PS3.5 Annex G): each frame is its own encapsulated fragment,
  padded on its own, so frames never share a byte and no total length is computed. OHIF's SEG
  loader decodes RLE itself (it is the encoding dcmjs writes for FRACTIONAL SEGs), Orthanc
  serves and transcodes the fragments, highdicom, pydicom and DCMTK read them; RLE also keeps
  the 8-bit frames small (4.3 MB for the demo's phantom, against 70 MB bit-packed with every
  frame and 194 MB for native 8-bit frames). Keeping BINARY and adding an empty frame to make
  the packed length even would satisfy the length checks, but frames would still straddle
  bytes, which many readers do not expect.

Empty frames are **omitted** by default (``omit_empty_frames=True``): a segment has a frame
only on the source slices where it is present, each with its own Derivation Image Sequence
reference and Plane Position (A.51.5), which readers (OHIF 3.13 included) use to place it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from inference._dicom_geometry import PlaneGeometry
from inference._dicom_read import ImageInstance, frames_of
from inference._seg_rle import rle_encode_frames
from inference._writer_common import (
    SourceImages,
    algorithm_sequence,
    bundle_of,
    device_serial_number,
    load_source_headers,
    node_software_version,
    save_atomically,
)
from inference.dicom_codes import (
    DETECTION_SEG_SERIES_DESCRIPTION,
    DETECTION_SEG_SERIES_NUMBER,
    LESION_CATEGORY,
    LESION_FINDING,
    MANUFACTURER,
    SEG_CONTENT_LABEL,
    SEG_SERIES_DESCRIPTION,
    SEG_SERIES_NUMBER,
)
from inference.volume import LPS_TO_RAS, Volume, nonzero_box, value_counts
from pancreas_contracts.labels import LABELS, Label
from pancreas_contracts.result import AnalysisResult, BundleRef

__all__ = [
    "GRID_TOLERANCE_VOXELS",
    "SeriesText",
    "build_lesion_seg",
    "build_seg",
    "cut_frames",
    "label_frames",
    "present_values",
    "renumber",
    "segmentation_encoding",
    "segmentation_from_frames",
    "write_seg",
]

#: Largest distance (in label voxels) between a source pixel centre and a label voxel centre.
GRID_TOLERANCE_VOXELS: Final = 0.05


def write_seg(
    label: Volume,
    source: SourceImages,
    result: AnalysisResult | BundleRef,
    out_path: Path,
    *,
    series_uid: str | None = None,
    omit_empty_frames: bool = True,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> str:
    """Write the label map as a DICOM Segmentation file and return its SOP Instance UID.

    Parameters
    ----------
    label
        Integer label map (values 0-15 of ``LABELS``) on the source series' grid, in any axis
        order (e.g. canonical RAS+ as produced by the pipeline, or ``label.nii.gz`` of a
        phantom).
    source
        The source CT series: a directory, its files, or its data sets (headers suffice).
    result
        The analysis result (its bundle, and its ``series_uid`` to pick the series from a
        directory holding several) or just the model bundle.
    out_path
        File to write (parent directories are created; the write is all or nothing).
    series_uid
        Source SeriesInstanceUID to use (default: ``result.series_uid`` when ``result`` is an
        :class:`~pancreas_contracts.result.AnalysisResult`, else the only series).
    omit_empty_frames
        Drop the frames in which a segment is empty (the default; ``False`` keeps one frame
        per segment and source slice).
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).

    Returns
    -------
    str
        The SOP Instance UID of the Segmentation.

    Raises
    ------
    ValueError
        If ``label`` is not an integer map of known labels, has no foreground, or is not on
        the source grid; or if the source cannot be read (a
        :class:`~inference.volume_io.VolumeError`).
    """
    if series_uid is None and isinstance(result, AnalysisResult):
        series_uid = result.series_uid
    headers = load_source_headers(source, series_uid)
    seg = build_seg(
        label,
        headers,
        bundle_of(result),
        omit_empty_frames=omit_empty_frames,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
    )
    save_atomically(seg, out_path)
    return str(seg.SOPInstanceUID)


def build_seg(
    label: Volume,
    headers: Sequence[Dataset],
    bundle: BundleRef,
    *,
    omit_empty_frames: bool = True,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """Build the Segmentation object (see :func:`write_seg`) without writing it.

    Segments are numbered 1, 2, ... in label order over the structures present (PS3.3
    C.8.20.2: segment numbers start at 1 and increase by 1), so a segment's number is not
    necessarily its label value; its Tracking ID is the label's machine name (``"tumor"``,
    ``"sma"``, ...) and its Segmented Property Type the label's SNOMED CT code. The
    Segmentation Type and transfer syntax are :func:`segmentation_encoding`'s for the grid.
    """
    frames, span = cut_frames(label, headers)
    labels = _present_labels(frames[span])
    lookup = np.zeros(len(LABELS), dtype=np.uint8)
    for number, entry in enumerate(labels, start=1):
        lookup[entry.value] = number
    pixel_array = renumber(frames, lookup, span)
    algorithm = algorithm_sequence(bundle)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=entry.display,
            segmented_property_category=entry.property_category,
            segmented_property_type=entry.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=entry.name,
            display_color=hd.color.CIELabColor.from_rgb(*entry.rgb),
        )
        for number, entry in enumerate(labels, start=1)
    ]
    return segmentation_from_frames(
        pixel_array,
        descriptions,
        headers,
        bundle,
        SeriesText(SEG_SERIES_NUMBER, SEG_SERIES_DESCRIPTION, SEG_SERIES_DESCRIPTION),
        omit_empty_frames=omit_empty_frames,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
    )


def build_lesion_seg(
    lesions: Volume,
    probabilities: Sequence[float],
    headers: Sequence[Dataset],
    detector: BundleRef,
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """The SEG of the lesions the PDAC detector reports (result 1.5), a series of its own.

    ``lesions`` holds ``n`` where the detector's ``n``-th reported lesion is (0 elsewhere),
    on the source grid like a label map; segment ``n`` is that lesion: Segmented Property
    Type SCT 52988006 *Lesion*, category SCT 49755003 *Morphologically abnormal structure*
    (CID 7150/7151), its probability in the segment label, Tracking ID ``pdac-lesion-n``.

    Raises
    ------
    ValueError
        If no lesion voxel falls on the source grid, or a value has no probability.
    """
    frames, span = cut_frames(lesions, headers)
    present = present_values(frames[span])
    if not present:
        raise ValueError("no detected lesion lies on the source images")
    if present[-1] > len(probabilities):
        raise ValueError("a lesion value has no probability")
    lookup = np.zeros(present[-1] + 1, dtype=np.uint8)
    algorithm = algorithm_sequence(detector)
    descriptions = []
    for number, value in enumerate(present, start=1):
        lookup[value] = number
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"PDAC candidate {value} (p {probabilities[value - 1]:.2f})",
                segmented_property_category=LESION_CATEGORY,
                segmented_property_type=LESION_FINDING,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=generate_uid(),
                tracking_id=f"pdac-lesion-{value}",
                display_color=hd.color.CIELabColor.from_rgb(*_LESION_RGB),
            )
        )
    return segmentation_from_frames(
        renumber(frames, lookup, span),
        descriptions,
        headers,
        detector,
        SeriesText(
            DETECTION_SEG_SERIES_NUMBER,
            DETECTION_SEG_SERIES_DESCRIPTION,
            DETECTION_SEG_SERIES_DESCRIPTION,
        ),
        omit_empty_frames=True,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
    )


#: Display colour of a detected lesion (a yellow, apart from the label map's colours).
_LESION_RGB: Final = (255, 220, 0)


@dataclass(frozen=True)
class SeriesText:
    """Series Number, Series Description and the Content Description's prefix of a SEG."""

    number: int
    description: str
    content: str


def segmentation_from_frames(
    pixel_array: npt.NDArray[np.generic],
    descriptions: Sequence[hd.seg.SegmentDescription],
    headers: Sequence[Dataset],
    bundle: BundleRef,
    series: SeriesText,
    *,
    omit_empty_frames: bool,
    sop_instance_uid: str | None,
    series_instance_uid: str | None,
) -> hd.seg.Segmentation:
    """A SEG of ``pixel_array`` (segment numbers per source frame, :func:`label_frames`).

    Shared by the label-map, lesion and lymph-node SEGs: equipment, content and the encoding
    of :func:`segmentation_encoding` for the grid.

    Every source image is referenced, also those no segment reaches (their frames are
    omitted): a reader then knows the whole series was segmented and those slices hold
    nothing, where an unreferenced image would say nothing about them (and highdicom's
    ``get_pixels_by_source_instance``, which the correction path uses, refuses it).
    """
    segmentation_type, transfer_syntax = segmentation_encoding(*pixel_array.shape[1:])
    seg = hd.seg.Segmentation(
        source_images=list(headers),
        pixel_array=pixel_array,
        segmentation_type=segmentation_type,
        segment_descriptions=list(descriptions),
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series.number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=bundle.name,
        software_versions=node_software_version(),
        device_serial_number=device_serial_number(bundle),
        content_description=f"{series.content}: {bundle.name} {bundle.version}"[:64],
        content_label=SEG_CONTENT_LABEL,
        omit_empty_frames=omit_empty_frames,
        series_description=series.description,
    )
    if transfer_syntax == RLELossless:
        rle_encode_frames(seg)
    return seg


def segmentation_encoding(rows: int, columns: int) -> tuple[hd.seg.SegmentationTypeValues, str]:
    """Segmentation Type and transfer syntax of a SEG with frames of ``rows x columns`` pixels.

    BINARY with native pixel data when a bit-packed frame is a whole, even number of bytes
    (``rows x columns`` a multiple of 16), else FRACTIONAL with RLE Lossless; see the module
    notes for why.

    Returns
    -------
    tuple of highdicom.seg.SegmentationTypeValues and str
        The type and the Transfer Syntax UID.
    """
    if (rows * columns) % 16 == 0:
        return hd.seg.SegmentationTypeValues.BINARY, str(ExplicitVRLittleEndian)
    return hd.seg.SegmentationTypeValues.FRACTIONAL, str(RLELossless)


def _present_labels(array: npt.NDArray[np.generic]) -> list[Label]:
    """The foreground labels in ``array`` (the label map cut into the source frames)."""
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise ValueError(f"label map must hold integers, got {array.dtype}")
    values = _values_of(array)
    unknown = sorted(values - {entry.value for entry in LABELS})
    if unknown:
        raise ValueError(f"label map holds values outside 0-{len(LABELS) - 1}: {unknown}")
    present = [entry for entry in LABELS if entry.value != 0 and entry.value in values]
    if not present:
        raise ValueError("label map has no foreground structure to write")
    return present


def _values_of(array: npt.NDArray[np.generic]) -> set[int]:
    """The distinct values of an integer array (a histogram when they are small and >= 0).

    ``np.unique`` sorts all values (most of a second for a 300-slice grid); a histogram of
    label values, lesion numbers or node ids is one pass.
    """
    if array.size and array.dtype != np.bool_:
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high < 1 << 16:
            return {int(v) for v in np.flatnonzero(value_counts(array, high + 1))}
    return {int(v) for v in np.unique(array)}


def renumber(
    frames: npt.NDArray[np.generic],
    lookup: npt.NDArray[np.uint8],
    span: slice = slice(None),
) -> npt.NDArray[Any]:
    """``lookup[frames]``: the frames' values as segment numbers (none beyond ``lookup``).

    Only the frames of ``span`` are looked up (the others must be all zero, as
    :func:`cut_frames` says; ``lookup[0]`` is 0). When the lookup is the identity (lesions
    1..n are segments 1..n) the frames are already the answer and the gather over the stack
    (0.1 s at 300 x 479 x 479) is skipped.
    """
    if frames.dtype == lookup.dtype and np.array_equal(lookup, np.arange(len(lookup))):
        return frames
    if lookup[0] != 0:
        raise ValueError("the lookup must keep 0 (background) at 0")
    start, stop, _ = span.indices(len(frames))
    if (start, stop) == (0, len(frames)):
        whole: npt.NDArray[np.uint8] = lookup[frames]  # one gather: fastest over everything
        return whole
    renumbered = np.zeros(frames.shape, dtype=lookup.dtype)
    renumbered[span] = lookup[frames[span]]
    return renumbered


def present_values(frames: npt.NDArray[np.generic]) -> list[int]:
    """The non-zero values of an integer array, ascending (e.g. the lesions on the frames)."""
    return sorted(v for v in _values_of(frames) if v != 0)


def _source_planes(headers: Sequence[Dataset]) -> list[PlaneGeometry]:
    """One plane per source frame, in the frame order highdicom expects for its pixel array.

    That is one plane per data set for single-frame images, or the frames of the one
    multi-frame image in frame order.
    """
    if not headers:
        raise ValueError("no source images")
    planes: list[PlaneGeometry] = []
    for index, ds in enumerate(headers):
        name = Path(str(ds.filename)) if getattr(ds, "filename", None) else Path(f"#{index}")
        instance = ImageInstance(
            path=name,
            dataset=ds,
            sop_class_uid=str(ds.get("SOPClassUID", "")),
            sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
            series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
            study_instance_uid=str(ds.get("StudyInstanceUID", "")),
            transfer_syntax_uid="",
        )
        planes.extend(frame.plane for frame in frames_of(instance, index))
    if len(planes) != len(headers) and len(headers) != 1:
        raise ValueError("source must be single-frame images or one multi-frame image")
    return planes


def label_frames(label: Volume, headers: Sequence[Dataset]) -> npt.NDArray[np.generic]:
    """Cut the label map into the source frames' pixel grids (see :func:`cut_frames`)."""
    frames, _ = cut_frames(label, headers)
    return frames


def cut_frames(label: Volume, headers: Sequence[Dataset]) -> tuple[npt.NDArray[np.generic], slice]:
    """Cut the label map into the source frames' pixel grids; say which frames may hold labels.

    Parameters
    ----------
    label
        Label map whose voxel centres coincide with the source pixel centres.
    headers
        Source image headers (single-frame images, or one multi-frame image).

    Returns
    -------
    numpy.ndarray
        Shape ``(frames, Rows, Columns)``, frame ``f`` being source frame ``f`` (data set ``f``
        for single-frame images), with the label map's dtype.
    slice
        The frames from the first to the last that meets the labels' bounding box: every
        frame outside it is all zero, so the values present and the renumbering need only
        look inside (half of a label map's frames, a few of a lesion SEG's).

    Raises
    ------
    ValueError
        If a source pixel centre is off the label grid or outside the label map.
    """
    planes = _source_planes(headers)
    frames = np.zeros((len(planes), planes[0].rows, planes[0].columns), dtype=label.array.dtype)
    inverse = np.linalg.inv(label.affine).astype(np.float64)
    # Frames that miss the labels' bounding box stay zero: copying them (most of a lesion
    # SEG's frames, half of a label map's) is the strided gather this function spends on.
    box = _occupied_box(label.array)
    cut: list[int] = []
    for f, plane in enumerate(planes):
        if (plane.rows, plane.columns) != frames.shape[1:]:
            raise ValueError("source frames differ in Rows/Columns")
        frame = _cut_plane(label, inverse, plane, box)
        if frame is not None:
            frames[f] = frame
            cut.append(f)
    return frames, slice(cut[0], cut[-1] + 1) if cut else slice(0, 0)


def _occupied_box(
    array: npt.NDArray[np.generic],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """Lowest and highest index per axis of the non-zero voxels (``None``: all zero)."""
    box = nonzero_box(array)
    if box is None:
        return None
    return (
        np.array([b.start for b in box], dtype=np.int64),
        np.array([b.stop - 1 for b in box], dtype=np.int64),
    )


def _cut_plane(
    label: Volume,
    inverse: npt.NDArray[np.float64],
    plane: PlaneGeometry,
    box: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None,
) -> npt.NDArray[np.generic] | None:
    """The frame of ``plane`` cut from ``label``; ``None`` when it misses ``box`` (all zero)."""
    # PS3.3 C.7.6.2.1.1: pixel (row y, column x) lies at P + x * dc * R + y * dr * C (LPS+).
    row_cosine = np.asarray(plane.orientation[:3], dtype=np.float64)
    column_cosine = np.asarray(plane.orientation[3:], dtype=np.float64)
    row_spacing, column_spacing = plane.pixel_spacing
    to_index = inverse[:3, :3] @ LPS_TO_RAS[:3, :3]
    start = to_index @ np.asarray(plane.position) + inverse[:3, 3]
    step_x = to_index @ (row_cosine * column_spacing)
    step_y = to_index @ (column_cosine * row_spacing)
    exact = [np.rint(v) for v in (start, step_x, step_y)]
    worst = max(
        float(np.max(np.abs(v - e))) for v, e in zip((start, step_x, step_y), exact, strict=True)
    )
    if worst > GRID_TOLERANCE_VOXELS:
        raise ValueError(
            "label map is not on the source grid (resample it onto the series first, "
            f"order 0): a source pixel lies {worst:.2f} voxel off a label voxel centre"
        )
    i0, dx, dy = (e.astype(np.int64) for e in exact)
    last_x, last_y = dx * (plane.columns - 1), dy * (plane.rows - 1)
    corners = np.stack([i0, i0 + last_x, i0 + last_y, i0 + last_x + last_y])
    if np.any(corners < 0) or np.any(corners >= np.asarray(label.shape)):
        raise ValueError("source frame extends beyond the label map")
    if box is None or np.any(corners.max(axis=0) < box[0]) or np.any(corners.min(axis=0) > box[1]):
        return None
    # The voxel index is affine in (row, column) and its corners lie inside the map, so the
    # frame is a strided view starting at voxel i0 (a copy is returned).
    array = label.array
    start = array[i0[0] : i0[0] + 1, i0[1] : i0[1] + 1, i0[2] : i0[2] + 1]
    strides = np.asarray(array.strides, dtype=np.int64)
    view = np.lib.stride_tricks.as_strided(
        start,
        shape=(plane.rows, plane.columns),
        strides=(int(dy @ strides), int(dx @ strides)),
        writeable=False,
    )
    frame: npt.NDArray[np.generic] = view.copy()
    return frame
