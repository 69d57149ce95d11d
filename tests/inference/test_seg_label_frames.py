"""Frames that miss the labels stay zero without being cut (issue 27): the same frames.

:func:`inference.seg_writer.label_frames` copies only the frames that meet the labels'
bounding box; a sparse map (a lesion in a few slices), an all-zero map and labels at the
map's faces must give the frames the source headers ask for, in both patient positions.
"""

from __future__ import annotations

import numpy as np

from inference.seg_writer import label_frames
from inference.volume import Volume
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
