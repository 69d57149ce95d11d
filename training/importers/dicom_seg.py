"""DICOM CT series + DICOM SEG (binary or fractional, as OHIF or 3D Slicer write them).

Each case folder (see :mod:`training.importers._dicom_case`) holds one CT series and one SEG
that refers to it. The SEG is read with highdicom; each segment is mapped by its
SegmentLabel, then its SegmentedPropertyType code meaning (the mapping's ``[names]`` and
``[aliases]``); segment numbers are not looked up in ``[values]``, since tools number segments
in the order they were drawn. Frames go on the CT grid by the source instances they refer to
(:meth:`highdicom.seg.Segmentation.get_pixels_by_source_instance`), or, for a SEG that refers
to none, by its plane positions (:meth:`~highdicom.seg.Segmentation.get_volume`, then
nearest-neighbour resampling through world coordinates). Fractional segments are thresholded
at 0.5. Unmapped segments are not labelled; overlaps go to the higher project label value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import numpy.typing as npt

from inference.volume import LPS_TO_RAS, Volume
from inference.volume_io import DicomVolume, resample_to_reference
from training.importers._dicom_case import (
    case_folders,
    case_ids,
    paint,
    read_case,
    to_ct_grid,
)
from training.importers.cohort_writer import ImportedCase
from training.importers.mapping import LabelMapping

__all__ = ["read_dicom_seg", "segment_targets"]


def segment_targets(seg: hd.seg.Segmentation, mapping: LabelMapping) -> dict[int, str]:
    """Segment number -> project label name, for the segments ``mapping`` maps."""
    targets: dict[int, str] = {}
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        names = [str(description.segment_label)]
        meaning = getattr(description.segmented_property_type, "meaning", "")
        if meaning:
            names.append(str(meaning))
        target = mapping.target(None, names)
        if target is not None:
            targets[number] = target
    return targets


def _by_source_instance(
    seg: hd.seg.Segmentation, ct: DicomVolume, number: int
) -> npt.NDArray[np.bool_]:
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(ct.sop_instance_uids),
        segment_numbers=[number],
        combine_segments=False,
        skip_overlap_checks=True,
        dtype=np.float32,
    )
    mask: npt.NDArray[np.bool_] = pixels[..., 0] >= 0.5
    return mask


def _by_plane_position(
    seg: hd.seg.Segmentation, ct: DicomVolume, number: int
) -> npt.NDArray[np.bool_]:
    volume = seg.get_volume(
        segment_numbers=[number], combine_segments=False, skip_overlap_checks=True, dtype=np.float32
    )
    array = np.asarray(volume.array)
    array = array[..., 0] if array.ndim == 4 else array
    moving = Volume((array >= 0.5).astype(np.uint8), LPS_TO_RAS @ np.asarray(volume.affine))
    on_ct = resample_to_reference(moving, ct.volume, order=0)
    mask: npt.NDArray[np.bool_] = np.asarray(on_ct.array) > 0
    return mask


def _label_volume(seg: hd.seg.Segmentation, ct: DicomVolume, targets: dict[int, str]) -> Volume:
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.get("ReferencedSeriesSequence", [])
        for item in series.get("ReferencedInstanceSequence", [])
    }
    if referenced and referenced <= set(ct.sop_instance_uids):
        native = paint(
            _native_shape(ct), ((targets[n], _by_source_instance(seg, ct, n)) for n in targets)
        )
        return to_ct_grid(native, ct)
    if str(seg.FrameOfReferenceUID) != ct.frame_of_reference_uid:
        raise ValueError("the SEG refers to another CT (frame of reference differs)")
    array = paint(ct.volume.shape, ((targets[n], _by_plane_position(seg, ct, n)) for n in targets))
    return Volume(array, ct.volume.affine)


def _native_shape(ct: DicomVolume) -> tuple[int, int, int]:
    """``(slices, rows, columns)`` of the series: the canonical shape, axes put back."""
    axes = nib.orientations.io_orientation(ct.native_affine)[:, 0].astype(int)
    columns, rows, slices = (ct.volume.shape[a] for a in axes)
    return (slices, rows, columns)


def read_dicom_seg(
    source: Path, mapping: LabelMapping, case_id: str | None = None
) -> Iterator[ImportedCase]:
    """Yield the cases of a DICOM CT + SEG source, one at a time.

    Parameters
    ----------
    source
        One case folder, or a folder of case folders.
    mapping
        Maps segments to project labels.
    case_id
        The case id of a one-case source (default ``case-0001``, ``case-0002``, ...).

    Raises
    ------
    ValueError
        If a case folder holds no SEG, several, or a SEG of another CT.
    """
    folders = case_folders(source)
    for folder, cid in zip(folders, case_ids(len(folders), case_id), strict=True):
        case = read_case(folder, "SEG")
        if len(case.annotations) != 1:
            raise ValueError(f"case {cid}: {len(case.annotations)} SEG objects; give one")
        seg = hd.seg.segread(case.annotations[0])
        targets = segment_targets(seg, mapping)
        label = _label_volume(seg, case.ct, targets)
        yield ImportedCase(
            case_id=cid,
            image=case.ct.volume,
            label=label,
            labelled=tuple(targets.values()),
            registry_key=case.registry_key,
            study_date=case.study_date,
            identifiers=case.identifiers,
        )
