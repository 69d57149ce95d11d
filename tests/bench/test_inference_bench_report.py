"""``make bench-inference``'s page: every timed stage has a row, and the CPU work around the
networks (issue 27's target) is summed from ``total``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

import bench.inference_bench as bench


def _series(folder: Path) -> list[Path]:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.PixelSpacing = 4, 4, [0.5, 0.5]
    path = folder / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    return [path]


def test_report_rows_and_the_sum_around_the_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "inference.md")
    stages = {s: 0.5 for s in bench.STAGES if s != "total"}
    runs = [{**stages, "total": 10.0}, {**stages, "total": 12.0}, {**stages, "total": 11.0}]
    report = {
        "timings": runs,
        "gpu": None,
        "torch": "2",
        "threads": 1,
        "localisation": {"found": True, "confidence": 0.9},
        "model": "m",
        "detector": "d",
        "load_s": 0.1,
        "peak_rss_mb": 1.0,
        "rss_after_load_mb": 1.0,
        "vm_hwm_mb": 1.0,
        "phase_s": 0.7,
        "standalone_localise_s": [1.5, 1.7, 1.6],
    }
    text = bench.write_report(_series(tmp_path), report).read_text()
    for stage in ("write_label", "write_detection_seg", "domain", "write_seg"):
        assert f"| {stage} | 0.50 |" in text
    # total minus detection, localise and inference (0.5 each): median of 8.5, 10.5, 9.5.
    assert "median 9.50 s (min 8.50, max 10.50)" in text
    # The node's phase check and the localiser without its landmarks are reported apart.
    assert "(0.70 s, once, not in `total`)" in text
    assert "finds them again: median 1.60 s" in text
