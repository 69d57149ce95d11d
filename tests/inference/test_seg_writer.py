"""DICOM-SEG writer: validity, codes, references, and frame alignment with the source slices."""

from __future__ import annotations

import random
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.encaps import generate_fragments
from pydicom.sr.codedict import codes
from pydicom.uid import SegmentationStorage

from inference import Volume, read_dicom_series, to_canonical
from inference.seg_writer import build_seg, label_frames, segmentation_encoding, write_seg
from pancreas_contracts.labels import LABELS, label_by_name
from tests.inference import _writers_fixtures as fx
from tests.inference.conftest_volume import build_enhanced_ct
from tests.ohif_extension.seg_grid import EVEN_GRID, ODD_GRID, GridCase, grid_case

writer_case = fx.writer_case
written = fx.written


def _present(label: Volume) -> list[int]:
    return [int(v) for v in np.unique(label.array) if v != 0]


def _number_to_value(seg: pydicom.Dataset) -> npt.NDArray[np.uint8]:
    lookup = np.zeros(max(int(s.SegmentNumber) for s in seg.SegmentSequence) + 1, np.uint8)
    for item in seg.SegmentSequence:
        lookup[int(item.SegmentNumber)] = label_by_name(str(item.TrackingID)).value
    return lookup


def _rebuild(seg: hd.seg.Segmentation, case: fx.WriterCase) -> Volume:
    """Label map on the source grid from the SEG, slice by slice through the source UIDs."""
    series = case.series
    lookup = _number_to_value(seg)
    shape = (series.volume.shape[0], series.volume.shape[1], series.num_slices)
    native = np.zeros(shape, dtype=np.uint8)
    rows = int(seg.Rows)
    for k, uid in enumerate(series.sop_instance_uids):
        pixels = seg.get_pixels_by_source_instance([uid], combine_segments=True, relabel=False)
        assert pixels.shape == (1, rows, int(seg.Columns))
        native[:, :, k] = lookup[pixels[0]].T  # (row, column) -> (column, row)
    return to_canonical(Volume(native, series.native_affine))


@pytest.mark.integration
def test_seg_passes_dciodvfy_and_dcmdump(written: fx.Written) -> None:
    assert fx.dciodvfy_errors(written.seg_path) == []
    fx.dcmdump_reads(written.seg_path)


def test_seg_round_trip_equals_the_label_map(written: fx.Written) -> None:
    case = written.case
    seg = hd.seg.segread(written.seg_path)
    assert str(seg.SOPInstanceUID) == written.seg_uid
    rebuilt = _rebuild(seg, case)
    np.testing.assert_allclose(rebuilt.affine, case.label.affine, atol=1e-4)
    assert np.array_equal(rebuilt.array, case.label.array)


def test_every_frame_references_its_source_slice(written: fx.Written) -> None:
    """Per-frame source UID and ImagePositionPatient match that slice; pixels match it too."""
    case = written.case
    seg = pydicom.dcmread(written.seg_path)
    sources = {str(ds.SOPInstanceUID): ds for ds in fx.source_headers(case)}
    native = case.series.to_native(case.label).array
    slot = {uid: k for k, uid in enumerate(case.series.sop_instance_uids)}
    lookup = _number_to_value(seg)
    frames = seg.pixel_array
    present = {(uid, int(v)) for uid, k in slot.items() for v in np.unique(native[:, :, k]) if v}
    assert int(seg.NumberOfFrames) == len(present)  # no empty frame
    seen = set()
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        uid = str(source.ReferencedSOPInstanceUID)
        position = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        expected = np.asarray(sources[uid].ImagePositionPatient, dtype=float)
        np.testing.assert_allclose(position, expected, atol=1e-3)
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        truth = lookup[number] == native[:, :, slot[uid]].T
        assert np.array_equal(frames[index].astype(bool), truth), (uid, number)
        seen.add((uid, int(lookup[number])))
    assert seen == present


def test_segments_codes_colours_and_algorithm(written: fx.Written) -> None:
    seg = pydicom.dcmread(written.seg_path)
    case = written.case
    assert seg.SOPClassUID == SegmentationStorage
    expected_type, expected_syntax = segmentation_encoding(int(seg.Rows), int(seg.Columns))
    assert (seg.SegmentationType, seg.file_meta.TransferSyntaxUID) == (
        expected_type.value,
        expected_syntax,
    )
    assert seg.SeriesDescription == "PancreasAI segmentation (investigational)"
    assert seg.StudyInstanceUID == case.series.study_instance_uid
    assert seg.SeriesInstanceUID != case.series.series_instance_uid
    present = _present(case.label)
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == list(range(1, len(present) + 1))
    for item, value in zip(seg.SegmentSequence, present, strict=True):
        label = LABELS[value]
        assert item.TrackingID == label.name
        assert item.TrackingUID
        assert item.SegmentLabel == label.display
        prop = item.SegmentedPropertyTypeCodeSequence[0]
        category = item.SegmentedPropertyCategoryCodeSequence[0]
        assert (prop.CodeValue, prop.CodingSchemeDesignator) == (
            label.property_type.value,
            label.property_type.scheme_designator,
        )
        assert category.CodeValue == label.property_category.value
        rgb = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()
        assert np.allclose(rgb, label.rgb, atol=2)
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == fx.BUNDLE.name
        assert algorithm.AlgorithmVersion == fx.BUNDLE.version
        assert fx.BUNDLE.sha256 in algorithm.AlgorithmParameters
        family = algorithm.AlgorithmFamilyCodeSequence[0]
        assert family.CodeValue == codes.DCM.ArtificialIntelligence.value


def test_seg_references_every_source_instance(written: fx.Written) -> None:
    seg = pydicom.dcmread(written.seg_path)
    (series,) = seg.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == written.case.series.series_instance_uid
    referenced = {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedInstanceSequence}
    assert referenced == set(written.case.series.sop_instance_uids)


def test_keeping_empty_frames_still_aligns(writer_case: fx.WriterCase, tmp_path: Path) -> None:
    path = tmp_path / "dense.dcm"
    write_seg(writer_case.label, writer_case.dicom_dir, fx.BUNDLE, path, omit_empty_frames=False)
    seg = hd.seg.segread(path)
    assert int(seg.NumberOfFrames) == len(seg.SegmentSequence) * writer_case.series.num_slices
    assert np.array_equal(_rebuild(seg, writer_case).array, writer_case.label.array)


def test_absent_structures_get_no_segment(writer_case: fx.WriterCase) -> None:
    array = writer_case.label.array.copy()
    array[array == label_by_name("sma").value] = 0
    headers = list(fx.source_headers(writer_case))
    seg = build_seg(Volume(array, writer_case.label.affine), headers, fx.BUNDLE)
    assert "sma" not in {str(s.TrackingID) for s in seg.SegmentSequence}
    assert len(seg.SegmentSequence) == len(_present(writer_case.label)) - 1


def test_label_frames_follow_each_source_header(writer_case: fx.WriterCase) -> None:
    headers = list(fx.source_headers(writer_case))
    frames = label_frames(writer_case.label, headers)
    native = writer_case.series.to_native(writer_case.label).array
    slot = {uid: k for k, uid in enumerate(writer_case.series.sop_instance_uids)}
    for frame, header in zip(frames, headers, strict=True):
        assert np.array_equal(frame, native[:, :, slot[str(header.SOPInstanceUID)]].T)


def test_refuses_a_label_map_off_the_source_grid(writer_case: fx.WriterCase) -> None:
    label = writer_case.label
    shifted = label.affine.copy()
    shifted[:3, 3] += 0.4  # 0.4 mm: under half a voxel, still not the same grid
    headers = list(fx.source_headers(writer_case))
    with pytest.raises(ValueError, match="not on the source grid"):
        build_seg(Volume(label.array, shifted), headers, fx.BUNDLE)
    cropped = Volume(label.array[:, :, 1:], label.affine)
    with pytest.raises(ValueError):
        build_seg(cropped, headers, fx.BUNDLE)


def test_refuses_empty_float_or_unknown_label_maps(writer_case: fx.WriterCase) -> None:
    label = writer_case.label
    headers = list(fx.source_headers(writer_case))
    for array, message in (
        (np.zeros_like(label.array), "no foreground"),
        (label.array.astype(np.float32), "integers"),
        (np.where(label.array == 1, 16, label.array).astype(np.int16), "outside"),
    ):
        with pytest.raises(ValueError, match=message):
            build_seg(Volume(array, label.affine), headers, fx.BUNDLE)


@pytest.mark.integration
@pytest.mark.parametrize("writer_case", ["HFS"], indirect=True)
def test_enhanced_multiframe_source(writer_case: fx.WriterCase, tmp_path: Path) -> None:
    """One Enhanced CT instance with frames in shuffled order: frames map through positions."""
    order = list(range(len(writer_case.files)))
    random.Random(2).shuffle(order)
    enhanced = build_enhanced_ct(list(writer_case.files), tmp_path / "enh.dcm", frame_order=order)
    ds = pydicom.dcmread(enhanced)
    first = pydicom.dcmread(writer_case.files[0], stop_before_pixels=True)
    patient_and_study: tuple[str, ...] = (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
    )
    patient_and_study += ("StudyDate", "StudyTime", "AccessionNumber", "StudyID")
    for keyword in (*patient_and_study, "ReferringPhysicianName"):
        setattr(ds, keyword, first.get(keyword))
    ds.save_as(enhanced)
    series = read_dicom_series(enhanced)
    path = tmp_path / "seg.dcm"
    write_seg(writer_case.label, enhanced, fx.BUNDLE, path)
    assert fx.dciodvfy_errors(path) == []
    seg = hd.seg.segread(path)
    lookup = _number_to_value(seg)
    native = series.to_native(writer_case.label).array
    for k, frame_number in enumerate(series.frame_numbers):
        pixels = seg.get_pixels_by_source_frame(
            str(ds.SOPInstanceUID), [frame_number], combine_segments=True
        )
        assert np.array_equal(lookup[pixels[0]].T, native[:, :, k]), frame_number


# --- any Rows x Columns x frames: what Orthanc's /frames route and OHIF's parser need ----------


@pytest.fixture(scope="module", params=[ODD_GRID, EVEN_GRID], ids=["427x427x12", "512x512x300"])
def grid_written(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[GridCase, Path]:
    """A SEG written for an odd (427 x 427) and a 512 x 512 grid."""
    case = grid_case(*request.param)
    path = tmp_path_factory.mktemp("grid") / "seg.dcm"
    write_seg(case.label, list(case.headers), fx.BUNDLE, path)
    return case, path


def _frames_by_source(path: Path, case: GridCase) -> npt.NDArray[np.uint8]:
    seg = hd.seg.segread(path)
    uids = [str(h.SOPInstanceUID) for h in case.headers]
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False)
    frames: npt.NDArray[np.uint8] = _number_to_value(seg)[pixels]
    return frames


def test_grid_seg_round_trip(grid_written: tuple[GridCase, Path]) -> None:
    case, path = grid_written
    assert np.array_equal(_frames_by_source(path, case), case.frames)


def test_grid_seg_frames_are_whole_even_byte_runs_and_never_empty(
    grid_written: tuple[GridCase, Path],
) -> None:
    """Each frame starts on a byte and the value has exactly the length readers compute.

    Orthanc cuts frame N at (N - 1) x the frame length and dcmjs (OHIF) requires the value
    length to be NumberOfFrames x the frame length: a native frame must be a whole, even
    number of bytes; an encapsulated SEG holds one fragment per frame.
    """
    case, path = grid_written
    ds = pydicom.dcmread(path)
    rows, columns = int(ds.Rows), int(ds.Columns)
    count = int(ds.NumberOfFrames)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        assert len(list(generate_fragments(ds.PixelData))) == count + 1  # offset table first
    else:
        frame_bits = rows * columns * int(ds.BitsAllocated)
        assert frame_bits % 16 == 0, "a frame is not a whole, even number of bytes"
        assert len(ds.PixelData) == count * frame_bits // 8
    frames = ds.pixel_array.reshape(count, rows, columns)
    assert all(frame.any() for frame in frames), "empty frames are stored"
    pairs = sum(len(np.unique(frame)) - 1 for frame in case.frames)
    assert count == pairs


@pytest.mark.integration
def test_grid_seg_passes_dciodvfy(grid_written: tuple[GridCase, Path]) -> None:
    assert fx.dciodvfy_errors(grid_written[1]) == []


def test_rle_frames_round_trip_noise(tmp_path: Path) -> None:
    """Lone pixels, short and long runs, every label, odd sizes: decoded as written."""
    case = grid_case(9, 11, 3)
    noise = np.random.default_rng(0).integers(0, len(LABELS), size=case.frames.shape)
    noise[1, 4] = 0  # a long run of zeros across a whole frame
    frames = noise.astype(np.uint8)
    label = Volume(np.ascontiguousarray(frames.transpose(2, 1, 0)), case.label.affine)
    path = tmp_path / "noise.dcm"
    write_seg(label, list(case.headers), fx.BUNDLE, path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID.is_encapsulated
    assert np.array_equal(_frames_by_source(path, GridCase(case.headers, label, frames)), frames)
