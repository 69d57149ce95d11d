"""Reading a SEG back onto its CT's grid (the reviewed-case export, issue 26)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from inference.seg_reader import SegReadError, label_volume_from_seg
from inference.volume_io import read_dicom_series
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case
written = fx.written


def test_the_writers_seg_reads_back_to_the_label_map(written: fx.Written) -> None:
    # Head-first and shuffled true feet-first series: frames land by source UID.
    case = written.case
    label = label_volume_from_seg(written.seg_path, case.series)
    np.testing.assert_allclose(label.affine, case.series.volume.affine, atol=1e-4)
    assert label.array.dtype == np.uint8
    assert np.array_equal(label.array, case.label.array)
    from_dataset = label_volume_from_seg(pydicom.dcmread(written.seg_path), case.series)
    assert np.array_equal(from_dataset.array, case.label.array)


def test_a_seg_of_another_series_or_with_unknown_segments_is_refused(
    written: fx.Written, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The other case's phantom (another seed): other UIDs.
    other_name = "FFS" if written.case.name == "HFS" else "HFS"
    other = fx.make_case(tmp_path_factory.mktemp("other"), other_name)
    other_series = read_dicom_series(list(other.files))
    with pytest.raises(SegReadError, match="not in the CT series"):
        label_volume_from_seg(written.seg_path, other_series)
    seg = pydicom.dcmread(written.seg_path)
    seg.SegmentSequence[0].TrackingID = "spleen"
    with pytest.raises(SegReadError, match="tracking ID 'spleen'"):
        label_volume_from_seg(seg, written.case.series)
    assert isinstance(hd.seg.segread(written.seg_path), hd.seg.Segmentation)
