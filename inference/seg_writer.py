"""DICOM Segmentation (PS3.3 A.51 Segmentation IOD) of the node's 16-class label map.

:func:`write_seg` turns a label map on the source CT grid into a BINARY Segmentation with
highdicom: one segment per foreground structure present (codes and colours from
:data:`pancreas_contracts.labels.LABELS`), the model identified in each segment's Algorithm
Identification Sequence, and references to every source instance.

Alignment
---------
Each frame is cut out of the label map at the world positions of one source frame's pixels,
using that frame's own ImagePositionPatient, ImageOrientationPatient and PixelSpacing
(PS3.3 C.7.6.2.1.1), so file order, slice order (head- or feet-first), InstanceNumber and the
label map's axis order do not matter; a label map that is not on the source grid (voxel centres
off by more than :data:`GRID_TOLERANCE_VOXELS`) is refused rather than resampled.

Empty frames are **kept** by default (``omit_empty_frames=False``): every segment has one frame
per source slice, each with its own Derivation Image Sequence reference and Plane Position
(A.51.5, the Segmentation functional group macros). Viewers that pair frames with source slices
by count or by order (several OHIF releases misplace segments when empty frames are dropped)
then display the segmentation aligned, at the cost of ``segments x slices`` frames of
``Rows x Columns / 8`` bytes (BINARY is bit-packed): about 36 MB for 15 segments on a
373 x 373 x 133 phantom, 2 s to write.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from inference._dicom_geometry import PlaneGeometry
from inference._dicom_read import ImageInstance, frames_of
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
    MANUFACTURER,
    SEG_CONTENT_LABEL,
    SEG_SERIES_DESCRIPTION,
    SEG_SERIES_NUMBER,
)
from inference.volume import LPS_TO_RAS, Volume
from pancreas_contracts.labels import LABELS, Label
from pancreas_contracts.result import AnalysisResult, BundleRef

__all__ = ["GRID_TOLERANCE_VOXELS", "build_seg", "label_frames", "write_seg"]

#: Largest distance (in label voxels) between a source pixel centre and a label voxel centre.
GRID_TOLERANCE_VOXELS: Final = 0.05


def write_seg(
    label: Volume,
    source: SourceImages,
    result: AnalysisResult | BundleRef,
    out_path: Path,
    *,
    series_uid: str | None = None,
    omit_empty_frames: bool = False,
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
        Drop frames in which a segment is empty (smaller file; see the module notes on viewer
        alignment before turning this on).
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
    omit_empty_frames: bool = False,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """Build the Segmentation object (see :func:`write_seg`) without writing it.

    Segments are numbered 1, 2, ... in label order over the structures present (PS3.3
    C.8.20.2: segment numbers start at 1 and increase by 1), so a segment's number is not
    necessarily its label value; its Tracking ID is the label's machine name (``"tumor"``,
    ``"sma"``, ...) and its Segmented Property Type the label's SNOMED CT code.
    """
    labels = _present_labels(label)
    frames = label_frames(label, headers)
    lookup = np.zeros(len(LABELS), dtype=np.uint8)
    for number, entry in enumerate(labels, start=1):
        lookup[entry.value] = number
    pixel_array = lookup[frames]
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
    return hd.seg.Segmentation(
        source_images=list(headers),
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=bundle.name,
        software_versions=node_software_version(),
        device_serial_number=device_serial_number(bundle),
        content_description=f"{SEG_SERIES_DESCRIPTION}: {bundle.name} {bundle.version}"[:64],
        content_label=SEG_CONTENT_LABEL,
        omit_empty_frames=omit_empty_frames,
        series_description=SEG_SERIES_DESCRIPTION,
    )


def _present_labels(label: Volume) -> list[Label]:
    array = label.array
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise ValueError(f"label map must hold integers, got {array.dtype}")
    values = {int(v) for v in np.unique(array)}
    unknown = sorted(values - {entry.value for entry in LABELS})
    if unknown:
        raise ValueError(f"label map holds values outside 0-{len(LABELS) - 1}: {unknown}")
    present = [entry for entry in LABELS if entry.value != 0 and entry.value in values]
    if not present:
        raise ValueError("label map has no foreground structure to write")
    return present


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
    """Cut the label map into the source frames' pixel grids.

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

    Raises
    ------
    ValueError
        If a source pixel centre is off the label grid or outside the label map.
    """
    planes = _source_planes(headers)
    frames = np.empty((len(planes), planes[0].rows, planes[0].columns), dtype=label.array.dtype)
    inverse = np.linalg.inv(label.affine).astype(np.float64)
    for f, plane in enumerate(planes):
        if (plane.rows, plane.columns) != frames.shape[1:]:
            raise ValueError("source frames differ in Rows/Columns")
        frames[f] = _cut_plane(label, inverse, plane)
    return frames


def _cut_plane(
    label: Volume, inverse: npt.NDArray[np.float64], plane: PlaneGeometry
) -> npt.NDArray[np.generic]:
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
    xs = np.arange(plane.columns)
    ys = np.arange(plane.rows)
    index = (
        i0[:, None, None]
        + dx[:, None, None] * xs[None, None, :]
        + dy[:, None, None] * ys[None, :, None]
    )
    shape = np.asarray(label.shape)[:, None, None]
    if np.any(index < 0) or np.any(index >= shape):
        raise ValueError("source frame extends beyond the label map")
    frame: npt.NDArray[np.generic] = label.array[index[0], index[1], index[2]]
    return frame
