"""The reviewer-corrected SEG: same segments on the same CT images, the edit, the references.

The AI SEG is the real writer's, on the HFS and the feet-first (FFS, mirrored columns, files
shuffled) phantoms of :mod:`tests.inference._writers_fixtures`. The payload's frames and the
CT headers handed to the builder come in two other orders than the slices', so a label image
that landed by position instead of by SOPInstanceUID shows.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from inference.dicom_codes import CORRECTED_SEG_CONTENT_LABEL
from inference.seg_correction import (
    CorrectionError,
    LabelCorrection,
    build_corrected_seg,
    parse_correction,
    read_correction,
    reviewer_person_name,
    structure_volumes_ml,
)
from tests.inference import _correction_fixtures as cx
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case
written = fx.written

REVIEWER = "dr.house"


class Corrected:
    """One case's AI SEG, edit, correction and corrected SEG (saved and read back)."""

    def __init__(self, written: fx.Written, out: Path) -> None:
        self.written = written
        self.ai_seg = pydicom.dcmread(written.seg_path)
        # Headers reversed from file order (FFS files are shuffled already).
        self.headers = list(reversed(list(fx.source_headers(written.case))))
        self.series_uid = written.case.series.series_instance_uid
        # Frames in UID text order: neither slice order nor header order.
        uids = sorted(written.case.series.sop_instance_uids)
        self.edit = cx.edit(self.ai_seg, uids)
        self.payload = cx.payload(self.ai_seg, self.series_uid, self.edit)
        self.correction = parse_correction(self.payload)
        seg = build_corrected_seg(self.correction, self.ai_seg, self.headers, REVIEWER)
        self.path = out / "corrected-seg.dcm"
        seg.save_as(self.path, enforce_file_format=True)
        self.seg = pydicom.dcmread(self.path)


@pytest.fixture(scope="module")
def corrected(written: fx.Written, tmp_path_factory: pytest.TempPathFactory) -> Corrected:
    return Corrected(written, tmp_path_factory.mktemp(f"corrected-{written.case.name}"))


def test_corrected_seg_decodes_to_the_edited_label_map_on_the_right_images(
    corrected: Corrected,
) -> None:
    seg = hd.seg.Segmentation.from_dataset(corrected.seg, copy=True)
    back = seg.get_pixels_by_source_instance(
        list(corrected.edit.uids), combine_segments=True, relabel=False
    )
    assert np.array_equal(back, corrected.edit.after)
    assert not np.array_equal(back, corrected.edit.before)


def test_every_frame_sits_at_its_source_image_position(corrected: Corrected) -> None:
    positions = {
        str(ds.SOPInstanceUID): [float(v) for v in ds.ImagePositionPatient]
        for ds in corrected.headers
    }
    for item in corrected.seg.PerFrameFunctionalGroupsSequence:
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        placed = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(placed, positions[str(source.ReferencedSOPInstanceUID)])


def test_segments_keep_their_meaning_and_edited_ones_are_semiautomatic(
    corrected: Corrected,
) -> None:
    ai = {int(s.SegmentNumber): s for s in corrected.ai_seg.SegmentSequence}
    new = {int(s.SegmentNumber): s for s in corrected.seg.SegmentSequence}
    assert set(new) == set(ai)
    for number, item in new.items():
        before = ai[number]
        assert item.SegmentLabel == before.SegmentLabel
        assert item.TrackingID == before.TrackingID and item.TrackingUID == before.TrackingUID
        for keyword in (
            "SegmentedPropertyTypeCodeSequence",
            "SegmentedPropertyCategoryCodeSequence",
        ):
            assert item[keyword][0].CodeValue == before[keyword][0].CodeValue
        edited = number in (corrected.edit.grown, corrected.edit.erased)
        assert item.SegmentAlgorithmType == ("SEMIAUTOMATIC" if edited else "AUTOMATIC")
        # PS3.3 C.8.20.2: an algorithm identification for any type but MANUAL.
        assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName


def test_new_version_references_the_ai_seg_and_names_the_reviewer(corrected: Corrected) -> None:
    seg, ai = corrected.seg, corrected.ai_seg
    assert seg.StudyInstanceUID == ai.StudyInstanceUID
    assert seg.SeriesInstanceUID != ai.SeriesInstanceUID
    assert seg.SOPInstanceUID != ai.SOPInstanceUID
    assert int(seg.SeriesNumber) > int(ai.SeriesNumber)
    assert str(seg.ContentCreatorName) == f"{REVIEWER}^"
    assert seg.ContentLabel == CORRECTED_SEG_CONTENT_LABEL
    assert "corrected" in seg.ContentDescription.lower()
    assert "corrected" in seg.SeriesDescription.lower()
    assert "investigational" in seg.SeriesDescription.lower()
    # General Reference module (PS3.3 C.12.4): the AI SEG as a source, with its purpose.
    sources = {str(s.ReferencedSOPInstanceUID): s for s in seg.SourceImageSequence}
    ai_source = sources[str(ai.SOPInstanceUID)]
    assert ai_source.ReferencedSOPClassUID == ai.SOPClassUID
    purpose = ai_source.PurposeOfReferenceCodeSequence[0]
    assert purpose.CodeValue == codes.DCM.SourceImageForImageProcessingOperation.value
    # Common Instance Reference module (PS3.3 C.12.2): the CT series and the AI SEG's series.
    series = {str(s.SeriesInstanceUID): s for s in seg.ReferencedSeriesSequence}
    assert set(series) == {corrected.series_uid, str(ai.SeriesInstanceUID)}
    referenced = series[str(ai.SeriesInstanceUID)].ReferencedInstanceSequence
    assert [str(r.ReferencedSOPInstanceUID) for r in referenced] == [str(ai.SOPInstanceUID)]
    ct = {
        str(r.ReferencedSOPInstanceUID)
        for r in series[corrected.series_uid].ReferencedInstanceSequence
    }
    assert ct == set(corrected.edit.uids)


@pytest.mark.integration
def test_corrected_seg_passes_dciodvfy(corrected: Corrected) -> None:
    assert fx.dciodvfy_errors(corrected.path) == []
    fx.dcmdump_reads(corrected.path)


def test_volumes_are_recomputed_from_the_correction(corrected: Corrected) -> None:
    volumes = structure_volumes_ml(corrected.correction, corrected.ai_seg, corrected.headers)
    spacing = corrected.written.case.series.volume.affine
    voxel_ml = abs(float(np.linalg.det(spacing[:3, :3]))) / 1000.0
    tumor = cx.segment_number(corrected.ai_seg, "tumor")
    expected = np.count_nonzero(corrected.edit.after == tumor) * voxel_ml
    assert volumes["tumor"] == pytest.approx(expected)
    assert volumes["tumor"] > np.count_nonzero(corrected.edit.before == tumor) * voxel_ml
    assert volumes["bile_duct"] == 0.0
    pancreas = cx.segment_number(corrected.ai_seg, "pancreas")
    assert volumes["pancreas"] == pytest.approx(
        np.count_nonzero(corrected.edit.after == pancreas) * voxel_ml
    )


def test_stored_correction_reads_back(corrected: Corrected, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(corrected.payload))
    again = read_correction(path)
    assert again.frames.keys() == corrected.correction.frames.keys()
    for uid, image in again.frames.items():
        assert np.array_equal(image, corrected.correction.frames[uid])
        assert not image.flags.writeable
    path.write_text("{not json")
    with pytest.raises(CorrectionError, match="not valid JSON"):
        read_correction(path)


def _refused(corrected: Corrected, body: dict[str, Any]) -> str:
    with pytest.raises(CorrectionError) as info:
        correction = parse_correction(body)
        build_corrected_seg(correction, corrected.ai_seg, corrected.headers, REVIEWER)
    return str(info.value)


def test_unknown_ct_image_is_refused(corrected: Corrected) -> None:
    body = json.loads(json.dumps(corrected.payload))
    body["frames"][0]["sop_instance_uid"] = "1.2.3.4.5"
    assert "not in the series" in _refused(corrected, body)


def test_missing_and_repeated_images_are_refused(corrected: Corrected) -> None:
    body = json.loads(json.dumps(corrected.payload))
    body["frames"] = body["frames"][1:]
    assert "have no label image" in _refused(corrected, body)
    body = json.loads(json.dumps(corrected.payload))
    body["frames"][1]["sop_instance_uid"] = body["frames"][0]["sop_instance_uid"]
    assert "appears twice" in _refused(corrected, body)


def test_wrong_run_sums_are_refused(corrected: Corrected) -> None:
    body = json.loads(json.dumps(corrected.payload))
    body["frames"][2]["rle"][-1][1] += 1
    message = _refused(corrected, body)
    assert "frame 2" in message and "rows x columns" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": 0}, "rows must be a positive integer"),
        ({"columns": "133"}, "columns must be a positive integer"),
        ({"rows": 5000}, "at most"),
        ({"frames": []}, "frames must be a non-empty list"),
        ({"based_on_seg_sop_instance_uid": "abc"}, "must be a DICOM UID"),
        ({"frames": [{"sop_instance_uid": "1.2", "rle": [[0, -1]]}]}, "must be positive"),
        ({"frames": [{"sop_instance_uid": "1.2", "rle": [[300, 1]]}]}, "0-255"),
        ({"frames": [{"sop_instance_uid": "1.2", "rle": [[0, 1, 2]]}]}, "pair of integers"),
    ],
)
def test_malformed_payloads_are_refused(
    corrected: Corrected, change: dict[str, Any], message: str
) -> None:
    body = {**corrected.payload, **change}
    with pytest.raises(CorrectionError, match=message):
        parse_correction(body)


def test_a_correction_of_another_seg_or_segment_is_refused(corrected: Corrected) -> None:
    other = {**corrected.payload, "based_on_seg_sop_instance_uid": "1.2.3"}
    assert "another AI SEG" in _refused(corrected, other)
    body = json.loads(json.dumps(corrected.payload))
    body["frames"][0]["rle"][0][0] = 99
    assert "not segments of the AI SEG" in _refused(corrected, body)


def test_other_matrix_size_is_refused(corrected: Corrected) -> None:
    c = corrected.correction
    small = {uid: image[:-1] for uid, image in c.frames.items()}
    shrunk = LabelCorrection(
        c.rows - 1,
        c.columns,
        c.based_on_seg_sop_instance_uid,
        c.referenced_series_instance_uid,
        small,
    )
    with pytest.raises(CorrectionError, match="rows x columns differ"):
        build_corrected_seg(shrunk, corrected.ai_seg, corrected.headers, REVIEWER)


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ("alice", "alice^"),
        ("Smith^John=X", "Smith John X^"),
        ("  a\\b\tc ", "a b c^"),
        ("x" * 100, "x" * 63 + "^"),
    ],
)
def test_reviewer_becomes_a_valid_person_name(user: str, name: str) -> None:
    assert str(reviewer_person_name(user)) == name


def test_reviewer_without_a_name_is_refused() -> None:
    with pytest.raises(CorrectionError, match="no usable name"):
        reviewer_person_name(" ^= ")


def test_multi_frame_ct_is_refused(corrected: Corrected) -> None:
    headers = [copy.deepcopy(ds) for ds in corrected.headers]
    headers[0].NumberOfFrames = 2
    with pytest.raises(CorrectionError, match="multi-frame"):
        build_corrected_seg(corrected.correction, corrected.ai_seg, headers, REVIEWER)
