"""``pancreas-node volume info|convert`` through pancreas_node.cli.main."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from inference import read_dicom_series, read_nifti
from pancreas_node.cli import main
from tests.inference.conftest_volume import (
    NIH_CASE,
    TS_CASE,
    copy_nih_slices,
    edit_dicom,
    require_shared,
)


def _assert_one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("pancreas-node: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_info_nih_series(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["volume", "info", str(require_shared(NIH_CASE) / "dicom")]) == 0
    out = capsys.readouterr().out
    assert "series: 1" in out
    assert "shape: 512 x 512 x 240" in out
    assert "spacing_mm: 0.8594 x 0.8594 x 1" in out
    assert "orientation: RAS (canonical; stored as LAI)" in out
    assert "HU range: -1024 .." in out
    assert "Implicit VR Little Endian" in out


def test_info_single_file_and_jpeg2000(capsys: pytest.CaptureFixture[str]) -> None:
    first = sorted((require_shared(TS_CASE) / "dicom").iterdir())[0]
    assert main(["volume", "info", str(first)]) == 0
    out = capsys.readouterr().out
    assert "shape: 512 x 512 x 1" in out
    assert "JPEG 2000 Image Compression (Lossless Only)" in out


def test_info_nifti(capsys: pytest.CaptureFixture[str]) -> None:
    label = require_shared(NIH_CASE) / "pancreas_label.nii.gz"
    assert main(["volume", "info", str(label)]) == 0
    out = capsys.readouterr().out
    assert "format: NIfTI" in out
    assert "shape: 512 x 512 x 240" in out
    assert "orientation: LAI" in out
    assert "value range: 0 .. 1" in out


def test_info_two_series_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = copy_nih_slices(tmp_path / "two", start=50, count=4)
    other = generate_uid()
    for path in files[2:]:
        edit_dicom(path, lambda ds: setattr(ds, "SeriesInstanceUID", other))
    assert main(["volume", "info", str(tmp_path / "two")]) == 0
    out = capsys.readouterr().out
    assert "series: 2" in out and other in out
    assert main(["volume", "info", str(tmp_path / "two"), "--series-uid", other]) == 0
    assert "slices: 2" in capsys.readouterr().out


def test_convert_isotropic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_nih_slices(tmp_path / "series", start=100, count=6)
    out_path = tmp_path / "out" / "ct.nii.gz"
    assert main(["volume", "convert", str(tmp_path / "series"), "--out", str(out_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    written = read_nifti(out_path)
    source = read_dicom_series(tmp_path / "series").volume
    assert np.array_equal(written.array, source.array)
    np.testing.assert_allclose(written.affine, source.affine)
    iso_path = tmp_path / "iso.nii.gz"
    args = ["volume", "convert", str(tmp_path / "series"), "--out", str(iso_path)]
    assert main([*args, "--isotropic", "2"]) == 0
    iso = read_nifti(iso_path)
    assert iso.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert iso.shape == (220, 220, 3)


def test_corrupt_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = copy_nih_slices(tmp_path / "series", start=100, count=3)
    files[1].write_bytes(files[1].read_bytes()[:5000])
    assert main(["volume", "info", str(files[1])]) != 0
    line = _assert_one_line_error(capsys)
    assert files[1].name in line
    assert (
        main(["volume", "convert", str(tmp_path / "series"), "--out", str(tmp_path / "x.nii")]) != 0
    )
    _assert_one_line_error(capsys)
    assert not (tmp_path / "x.nii").exists()


def test_missing_path_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["volume", "info", str(tmp_path / "absent")]) != 0
    _assert_one_line_error(capsys)


def test_geometry_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = copy_nih_slices(tmp_path / "series", start=100, count=5)
    files[2].unlink()
    assert main(["volume", "info", str(tmp_path / "series")]) != 0
    assert "missing" in _assert_one_line_error(capsys)


def test_convert_rejects_bad_output_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_nih_slices(tmp_path / "series", start=100, count=2)
    args = ["volume", "convert", str(tmp_path / "series"), "--out", str(tmp_path / "x.png")]
    assert main(args) != 0
    _assert_one_line_error(capsys)
