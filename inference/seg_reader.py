"""Read a DICOM Segmentation back into a label map on its CT's grid.

The training export of reviewed cases (issue 26) turns the node's SEG (or the reviewer's
corrected SEG version) into ``label.nii.gz`` beside the CT's ``image.nii.gz``: both must sit
on the same voxels. Frames are placed by the CT image each one was derived from (PS3.3
C.8.20.3 Segmentation Image Module: the Derivation Image / Source Image Sequence of the
Per-Frame Functional Groups names the source SOP Instance), never by frame order, so a
feet-first series or a SEG that omits empty frames lands where it belongs.

A segment's label value comes from its Tracking ID, which :func:`inference.seg_writer.
build_seg` sets to the label's machine name (``"tumor"``, ``"sma"``, ...). A segment whose
Tracking ID names no label (a SEG from another tool) is refused rather than guessed.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from inference.volume import Volume, to_canonical
from inference.volume_io import DicomVolume
from pancreas_contracts.labels import LABELS, label_by_name

__all__ = ["SegReadError", "label_volume_from_seg"]


class SegReadError(ValueError):
    """The SEG does not fit the CT or names segments this node does not know."""


def _segment_lookup(seg: hd.seg.Segmentation) -> npt.NDArray[np.uint8]:
    """Segment number -> label value (index 0 stays background)."""
    numbers = [int(n) for n in seg.segment_numbers]
    lookup = np.zeros(max(numbers, default=0) + 1, dtype=np.uint8)
    for number in numbers:
        tracking = seg.get_segment_description(number).tracking_id
        try:
            lookup[number] = label_by_name(str(tracking)).value
        except KeyError:
            raise SegReadError(
                f"segment {number} has tracking ID {tracking!r}, which is no label of "
                f"this node ({', '.join(lab.name for lab in LABELS[1:])})"
            ) from None
    return lookup


def label_volume_from_seg(seg: Dataset | Path, ct: DicomVolume) -> Volume:
    """The SEG's segments as one label map on ``ct``'s canonical grid.

    Parameters
    ----------
    seg
        The Segmentation (a data set or a file) derived from the images of ``ct``.
    ct
        The CT series as :func:`inference.volume_io.read_dicom_series` read it.

    Returns
    -------
    Volume
        uint8 label values of :data:`pancreas_contracts.labels.LABELS` with ``ct.volume``'s
        shape and affine. Where segments overlap, the higher label value wins.

    Raises
    ------
    SegReadError
        If the SEG references images outside ``ct``, its frames are not of ``ct``'s size,
        or a segment names no known label.
    """
    if isinstance(seg, Path):
        dataset = hd.seg.segread(seg)
    else:
        dataset = hd.seg.Segmentation.from_dataset(seg)
    lookup = _segment_lookup(dataset)
    uids = list(ct.sop_instance_uids)
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in dataset.get("ReferencedSeriesSequence", [])
        for item in series.get("ReferencedInstanceSequence", [])
    }
    if referenced and not referenced <= set(uids):
        raise SegReadError("the SEG references images that are not in the CT series")
    try:
        frames = dataset.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=[int(n) for n in dataset.segment_numbers],
            combine_segments=False,
            assert_missing_frames_are_empty=True,
        )
    except (ValueError, KeyError, RuntimeError) as exc:
        raise SegReadError(f"the SEG does not fit the CT series: {exc}") from exc
    slices, rows, columns = frames.shape[:3]
    native = np.zeros((columns, rows, slices), dtype=np.uint8)
    numbers = [int(n) for n in dataset.segment_numbers]
    for position, number in sorted(enumerate(numbers), key=lambda item: lookup[item[1]]):
        # frames: (slice, row, column, segment); native: (column, row, slice)
        mask = np.transpose(frames[..., position] > 0, (2, 1, 0))
        native[mask] = lookup[number]
    label = to_canonical(Volume(native, ct.native_affine))
    if label.shape != ct.volume.shape or not np.allclose(label.affine, ct.volume.affine, atol=1e-3):
        raise SegReadError(f"the SEG's {rows} x {columns} frames do not fit the CT's images")
    return label
