"""Frames that miss the labels stay zero without being cut (issue 27): the same frames.

:func:`inference.seg_writer.label_frames` copies only the frames that meet the labels'
bounding box; a sparse map (a lesion in a few slices), an all-zero map and labels at the
map's faces must give the frames the source headers ask for, in both patient positions.
"""

from __future__ import annotations

import numpy as np

from inference.seg_writer import build_lesion_seg, cut_frames, label_frames
from inference.volume import Volume
from pancreas_contracts.result import BundleRef
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case


def _expected(case: fx.WriterCase, label: Volume) -> list[np.ndarray]:
    native = case.series.to_native(label).array
    slot = {uid: k for k, uid in enumerate(case.series.sop_instance_uids)}
    headers = list(fx.source_headers(case))
    return [native[:, :, slot[str(h.SOPInstanceUID)]].T for h in headers]


def test_sparse_and_empty_maps_give_the_same_frames(writer_case: fx.WriterCase) -> None:
    headers = list(fx.source_headers(writer_case))
    shape = writer_case.label.shape
    sparse = np.zeros(shape, dtype=np.uint8)
    sparse[5:9, 10:14, shape[2] // 2 : shape[2] // 2 + 2] = 3  # a lesion in two slices
    sparse[0, 0, 0] = 1  # a corner voxel
    sparse[-1, -1, -1] = 2  # the opposite corner
    for array in (sparse, np.zeros(shape, dtype=np.uint8)):
        label = Volume(array, writer_case.label.affine)
        frames = label_frames(label, headers)
        assert frames.dtype == np.uint8
        for frame, expected in zip(frames, _expected(writer_case, label), strict=True):
            np.testing.assert_array_equal(frame, expected)


def test_the_span_holds_every_frame_with_labels_and_starts_and_ends_on_one(
    writer_case: fx.WriterCase,
) -> None:
    headers = list(fx.source_headers(writer_case))
    shape = writer_case.label.shape
    sparse = np.zeros(shape, dtype=np.uint8)
    middle = shape[2] // 2
    sparse[5:9, 10:14, middle : middle + 3] = 3
    frames, span = cut_frames(Volume(sparse, writer_case.label.affine), headers)
    busy = [f for f in range(len(frames)) if frames[f].any()]
    assert busy and span == slice(busy[0], busy[-1] + 1)
    assert not frames[: span.start].any() and not frames[span.stop :].any()
    empty = np.zeros(shape, dtype=np.uint8)
    _, nothing = cut_frames(Volume(empty, writer_case.label.affine), headers)
    assert nothing == slice(0, 0)


def test_a_lesion_seg_references_every_source_image_though_it_has_few_frames(
    writer_case: fx.WriterCase,
) -> None:
    """Slices without a lesion were analysed too: their images are referenced, frames omitted."""
    headers = list(fx.source_headers(writer_case))
    lesions = np.zeros(writer_case.label.shape, dtype=np.uint8)
    middle = lesions.shape[2] // 2
    lesions[5:9, 10:14, middle : middle + 2] = 1
    volume = Volume(lesions, writer_case.label.affine)
    bundle = BundleRef(name="d", version="1", sha256="a" * 64)
    seg = build_lesion_seg(volume, [0.8], headers, bundle)
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == {str(h.SOPInstanceUID) for h in headers}
    assert int(seg.NumberOfFrames) == 2
