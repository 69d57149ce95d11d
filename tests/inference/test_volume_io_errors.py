"""Every read_dicom_series error, triggered by editing copies of a few NIH slices."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComprehensiveSRStorage,
    JPEG2000Lossless,
    SegmentationStorage,
    generate_uid,
)

from inference import (
    CorruptDicomError,
    DuplicateSliceError,
    GantryTiltError,
    GeometryError,
    InconsistentShapeError,
    InconsistentSpacingError,
    MissingGeometryError,
    MissingSliceError,
    MixedOrientationError,
    MultipleSeriesError,
    NotAnImageError,
    SeriesNotFoundError,
    UnsupportedPixelDataError,
    VolumeError,
    list_dicom_series,
    read_dicom_series,
)
from tests.inference.conftest_volume import (
    assert_clean_message,
    copy_nih_slices,
    edit_dicom,
    set_pixels,
)

COUNT = 8


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    """Eight consecutive NIH slices (cranial first), 1 mm apart, in ``tmp_path/series``."""
    return copy_nih_slices(tmp_path / "series", start=100, count=COUNT)


def _raises(kind: type[VolumeError], source: Path | list[Path], **kwargs: str) -> VolumeError:
    with pytest.raises(kind) as info:
        read_dicom_series(source, **kwargs)
    assert_clean_message(info.value)
    return info.value


def _set_z(ds: Dataset, z: float) -> None:
    x, y, _ = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [f"{x:g}", f"{y:g}", f"{z:.4f}"]


def test_error_hierarchy() -> None:
    assert issubclass(VolumeError, ValueError)
    for geometry in (
        GantryTiltError,
        MixedOrientationError,
        InconsistentShapeError,
        InconsistentSpacingError,
        MissingGeometryError,
    ):
        assert issubclass(geometry, GeometryError)
    assert issubclass(MissingSliceError, InconsistentSpacingError)
    assert issubclass(DuplicateSliceError, InconsistentSpacingError)


def test_copies_read_cleanly(series: list[Path]) -> None:
    volume = read_dicom_series(series[0].parent)
    assert volume.num_slices == COUNT
    assert volume.warnings == ()


def test_gantry_tilt_from_sheared_positions(series: list[Path]) -> None:
    # A tilted gantry seen as positions drifting in y while IOP stays axial.
    for k, path in enumerate(series):
        shift = k * math.tan(math.radians(15))
        ipp = [0, shift, -100 - k]
        edit_dicom(path, lambda ds, ipp=ipp: setattr(ds, "ImagePositionPatient", ipp))
    error = _raises(GantryTiltError, series[0].parent)
    assert "15.0 deg" in str(error)


def test_gantry_tilt_from_tilted_orientation(series: list[Path]) -> None:
    # IOP tilted by 10 degrees about x, but positions stepping straight along z.
    t = math.radians(10)
    iop = ["1", "0", "0", "0", f"{-math.cos(t):.6f}", f"{-math.sin(t):.6f}"]
    for path in series:
        edit_dicom(path, lambda ds: setattr(ds, "ImageOrientationPatient", iop))
    _raises(GantryTiltError, series[0].parent)


def test_sub_tolerance_drift_is_accepted(series: list[Path]) -> None:
    for k, path in enumerate(series):
        edit_dicom(path, lambda ds, k=k: setattr(ds, "ImagePositionPatient", [0.001 * k, 0, -k]))
    assert read_dicom_series(series[0].parent).num_slices == COUNT


def test_oblique_but_orthogonal_stack_is_accepted(series: list[Path]) -> None:
    # Tilted IOP with positions stepping along the tilted normal: a regular (oblique) grid.
    t = math.radians(10)
    row, col = np.array([1.0, 0, 0]), np.array([0, -math.cos(t), -math.sin(t)])
    normal = np.cross(row, col)
    iop = [f"{v:.8f}" for v in (*row, *col)]
    for k, path in enumerate(series):
        ipp = [f"{v:.6f}" for v in -k * normal]

        def change(ds: Dataset, ipp: list[str] = ipp) -> None:
            ds.ImageOrientationPatient = iop
            ds.ImagePositionPatient = ipp

        edit_dicom(path, change)
    volume = read_dicom_series(series[0].parent)
    assert volume.slice_step_mm == pytest.approx(1.0)
    np.testing.assert_allclose(volume.image_orientation, (*row, *col), atol=1e-7)


def test_mixed_orientation(series: list[Path]) -> None:
    edit_dicom(series[3], lambda ds: setattr(ds, "ImageOrientationPatient", [0, 1, 0, 0, 0, -1]))
    _raises(MixedOrientationError, series[0].parent)


def test_mixed_slice_spacing(series: list[Path]) -> None:
    # Steps of 1 mm, then 1.3 mm: no gap reaches 1.5 x the median, but the grid is irregular.
    z = 0.0
    for k, path in enumerate(series):
        edit_dicom(path, lambda ds, z=z: _set_z(ds, z))
        z -= 1.0 if k < 3 else 1.3
    error = _raises(InconsistentSpacingError, series[0].parent)
    assert type(error) is InconsistentSpacingError


def test_mixed_pixel_spacing(series: list[Path]) -> None:
    edit_dicom(series[2], lambda ds: setattr(ds, "PixelSpacing", ["0.7", "0.7"]))
    error = _raises(InconsistentSpacingError, series[0].parent)
    assert "PixelSpacing" in str(error)


def test_missing_slice(series: list[Path]) -> None:
    series[4].unlink()
    error = _raises(MissingSliceError, series[0].parent)
    assert "missing" in str(error)


def test_duplicate_position(series: list[Path]) -> None:
    edit_dicom(
        series[2],
        lambda ds: setattr(ds, "SOPInstanceUID", generate_uid()),
        out=series[2].with_name("copy.dcm"),
    )
    _raises(DuplicateSliceError, series[0].parent)


def test_identical_instance_twice_is_tolerated(series: list[Path]) -> None:
    shutil.copyfile(series[2], series[2].with_name("same-again.dcm"))
    volume = read_dicom_series(series[0].parent)
    assert volume.num_slices == COUNT
    assert any("duplicate" in w for w in volume.warnings)


def test_inconsistent_shape(series: list[Path]) -> None:
    edit_dicom(series[5], lambda ds: set_pixels(ds, ds.pixel_array[:256, :256]))
    _raises(InconsistentShapeError, series[0].parent)


@pytest.mark.parametrize(
    "keyword", ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"]
)
def test_missing_geometry(series: list[Path], keyword: str) -> None:
    edit_dicom(series[1], lambda ds: delattr(ds, keyword))
    error = _raises(MissingGeometryError, series[0].parent)
    assert keyword in str(error)


def test_two_series(series: list[Path]) -> None:
    other = generate_uid()
    for path in series[4:]:
        edit_dicom(path, lambda ds: setattr(ds, "SeriesInstanceUID", other))
    original = str(pydicom.dcmread(series[0]).SeriesInstanceUID)
    error = _raises(MultipleSeriesError, series[0].parent)
    assert isinstance(error, MultipleSeriesError)
    assert set(error.series_uids) == {original, other}
    assert original in str(error) and other in str(error)
    chosen = read_dicom_series(series[0].parent, series_uid=other)
    assert chosen.num_slices == 4
    assert chosen.series_instance_uid == other
    assert any("other series" in w for w in chosen.warnings)
    _raises(SeriesNotFoundError, series[0].parent, series_uid="1.2.3.4")
    summaries = list_dicom_series(series[0].parent)
    assert [s.num_instances for s in summaries] == [4, 4]


@pytest.mark.parametrize("damage", ["header", "pixels", "garbage", "empty-dataset"])
def test_corrupt_file(series: list[Path], damage: str) -> None:
    path = series[3]
    data = path.read_bytes()
    if damage == "header":
        path.write_bytes(data[:700])  # cut inside the data set's elements
    elif damage == "pixels":
        path.write_bytes(data[: len(data) - 4096])
    elif damage == "garbage":
        path = path.with_name("stray.bin")  # an extra file beside the complete series
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    else:
        meta_end = 144 + int.from_bytes(data[140:144], "little")  # preamble, DICM, group length
        path.write_bytes(data[:meta_end])  # file meta only, no data set
    if damage == "garbage":
        # Found by a directory walk, a file that is not DICOM at all is skipped with a note...
        volume = read_dicom_series(series[0].parent, series_uid=None)
        assert any("non-DICOM" in w for w in volume.warnings)
        # ...but named explicitly it is an error.
        error = _raises(CorruptDicomError, path)
    else:
        error = _raises(CorruptDicomError, series[0].parent)
    assert path.name in str(error)


def test_corrupt_jpeg2000_codestream(tmp_path: Path, series: list[Path]) -> None:
    target = tmp_path / "j2k.dcm"
    edit_dicom(series[0], lambda ds: ds.compress(JPEG2000Lossless), out=target)
    ds = pydicom.dcmread(target)
    data = bytearray(ds.PixelData)
    data[40:] = bytes(len(data) - 40)  # keep the item header, wipe the codestream
    ds.PixelData = bytes(data)
    ds.save_as(target)
    _raises(CorruptDicomError, target)


def _as_sr(ds: Dataset) -> None:
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.file_meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    ds.Modality = "SR"
    del ds.PixelData


def _as_seg(ds: Dataset) -> None:
    ds.SOPClassUID = SegmentationStorage
    ds.file_meta.MediaStorageSOPClassUID = SegmentationStorage
    ds.Modality = "SEG"


@pytest.mark.parametrize("change", [_as_sr, _as_seg], ids=["SR", "SEG"])
def test_not_an_image(
    tmp_path: Path, series: list[Path], change: Callable[[Dataset], None]
) -> None:
    only = tmp_path / "only"
    only.mkdir()
    edit_dicom(series[0], change, out=only / "object.dcm")
    error = _raises(NotAnImageError, only / "object.dcm")
    assert "Storage" in str(error)
    _raises(NotAnImageError, only)
    # Beside the images of a series, non-image objects are ignored with a note.
    edit_dicom(series[0], change, out=series[0].with_name("object.dcm"))
    volume = read_dicom_series(series[0].parent, series_uid=None)
    assert volume.num_slices == COUNT
    assert any("non-image" in w for w in volume.warnings)


def test_colour_pixels_unsupported(series: list[Path]) -> None:
    def to_rgb(ds: Dataset) -> None:
        grey = ds.pixel_array.astype(np.int16)
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = "RGB"
        set_pixels(ds, np.repeat(grey[..., None], 3, axis=2))

    edit_dicom(series[0], to_rgb)
    _raises(UnsupportedPixelDataError, series[0])


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_dicom_series(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    _raises(NotAnImageError, tmp_path / "empty")


def test_hidden_files_and_dicomdir_ignored(series: list[Path]) -> None:
    (series[0].parent / ".DS_Store").write_bytes(b"\x00\x01junk")
    (series[0].parent / "DICOMDIR").write_bytes(b"not really")
    volume = read_dicom_series(series[0].parent)
    assert volume.num_slices == COUNT
    assert volume.warnings == ()


def test_single_slice(series: list[Path]) -> None:
    volume = read_dicom_series(series[0])
    assert volume.volume.shape == (512, 512, 1)
    assert volume.slice_step_mm == pytest.approx(1.0)
    assert any("SliceThickness" in w for w in volume.warnings)
    edit_dicom(series[1], lambda ds: setattr(ds, "SliceThickness", "2.5"))
    assert read_dicom_series(series[1]).volume.spacing[2] == pytest.approx(2.5)


def test_preamble_less_files_read_leniently(tmp_path: Path, series: list[Path]) -> None:
    """Raw data sets (no preamble, no file meta) are read with force and their encoding noted."""
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    for path in series:
        ds = pydicom.dcmread(path)
        bare = Dataset()
        bare.update(ds)
        bare.save_as(raw_dir / path.name, implicit_vr=True, little_endian=True)
    assert (raw_dir / series[0].name).read_bytes()[128:132] != b"DICM"
    raw = read_dicom_series(raw_dir)
    reference = read_dicom_series(series[0].parent)
    assert raw.transfer_syntaxes == ("1.2.840.10008.1.2",)
    assert np.array_equal(raw.volume.array, reference.volume.array)
    assert raw.sop_instance_uids == reference.sop_instance_uids


def test_list_dicom_series(series: list[Path]) -> None:
    (summary,) = list_dicom_series(series[0].parent)
    assert summary.num_instances == summary.num_frames == COUNT
    assert summary.modality == "CT"
    assert summary.sop_class_uids == ("1.2.840.10008.5.1.4.1.1.2",)
    assert summary.transfer_syntaxes == ("1.2.840.10008.1.2",)
