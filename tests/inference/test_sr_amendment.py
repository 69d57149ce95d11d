"""The SR amendment: predecessor, reviewer, verdict, corrected volumes, dciodvfy clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from inference.dicom_codes import (
    REVIEW_VERDICT,
    REVIEW_VERDICT_CODES,
    REVIEWER_CATEGORY,
    REVIEWER_CATEGORY_CODES,
    USAGE_NOTICE,
    VOLUME,
)
from inference.seg_correction import CorrectionError, parse_correction
from inference.sr_amendment import (
    AMENDMENT_SR_NAME,
    CORRECTED_SEG_NAME,
    ReviewStatement,
    build_sr_amendment,
    write_correction_outputs,
)
from pancreas_contracts.boards import BoardCategory, ReviewVerdict
from pancreas_contracts.result import INVESTIGATIONAL_NOTICE
from tests.inference import _correction_fixtures as cx
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case
written = fx.written

REVIEW = ReviewStatement(
    verdict=ReviewVerdict.CORRECT,
    reviewer="dr.house",
    category=BoardCategory.METASTATIC,
    reason="tumor extends into the uncinate process",
)


class Amended:
    """A case's correction written as SEG + SR amendment with the public writer."""

    def __init__(self, written: fx.Written, out: Path) -> None:
        self.written = written
        self.ai_seg = pydicom.dcmread(written.seg_path)
        self.ai_sr = pydicom.dcmread(written.sr_path)
        uids = sorted(written.case.series.sop_instance_uids)
        self.edit = cx.edit(self.ai_seg, uids)
        series_uid = written.case.series.series_instance_uid
        correction = parse_correction(cx.payload(self.ai_seg, series_uid, self.edit))
        self.outputs = write_correction_outputs(
            correction,
            list(written.case.files),
            written.seg_path,
            written.sr_path,
            REVIEW,
            out,
        )
        self.seg = pydicom.dcmread(self.outputs.seg_path)
        self.sr = pydicom.dcmread(self.outputs.sr_path)
        affine = written.case.series.volume.affine
        self.voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0


@pytest.fixture(scope="module")
def amended(written: fx.Written, tmp_path_factory: pytest.TempPathFactory) -> Amended:
    return Amended(written, tmp_path_factory.mktemp(f"amended-{written.case.name}"))


def _items(container: Dataset) -> Iterator[Dataset]:
    """Every content item under ``container``, depth first."""
    for item in container.get("ContentSequence", []):
        yield item
        yield from _items(item)


def _named(sr: Dataset, code_value: str) -> list[Dataset]:
    return [i for i in _items(sr) if i.ConceptNameCodeSequence[0].CodeValue == code_value]


def test_outputs_are_named_and_identified(amended: Amended) -> None:
    assert amended.outputs.seg_path.name == CORRECTED_SEG_NAME
    assert amended.outputs.sr_path.name == AMENDMENT_SR_NAME
    assert amended.outputs.seg_sop_instance_uid == str(amended.seg.SOPInstanceUID)
    assert amended.outputs.sr_sop_instance_uid == str(amended.sr.SOPInstanceUID)


@pytest.mark.integration
def test_amendment_and_seg_pass_dciodvfy(amended: Amended) -> None:
    assert fx.dciodvfy_errors(amended.outputs.sr_path) == []
    assert fx.dciodvfy_errors(amended.outputs.seg_path) == []
    fx.dcmdump_reads(amended.outputs.sr_path)


def test_ai_sr_is_the_predecessor(amended: Amended) -> None:
    sr, ai = amended.sr, amended.ai_sr
    assert sr.StudyInstanceUID == ai.StudyInstanceUID
    assert sr.SeriesInstanceUID not in (ai.SeriesInstanceUID, amended.seg.SeriesInstanceUID)
    assert int(sr.SeriesNumber) > int(ai.SeriesNumber)
    (study,) = sr.PredecessorDocumentsSequence
    assert study.StudyInstanceUID == ai.StudyInstanceUID
    (series,) = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == ai.SeriesInstanceUID
    (document,) = series.ReferencedSOPSequence
    assert document.ReferencedSOPInstanceUID == ai.SOPInstanceUID
    assert document.ReferencedSOPClassUID == ai.SOPClassUID


def test_reviewer_is_the_person_observer(amended: Amended) -> None:
    (observer,) = _named(amended.sr, "121008")  # DCM Person Observer Name (TID 1003)
    assert str(observer.PersonName) == "dr.house^"
    (kind,) = _named(amended.sr, "121005")  # Observer Type
    assert kind.ConceptCodeSequence[0].CodeValue == "121006"  # Person


def test_review_and_notice_are_stated(amended: Amended) -> None:
    (verdict,) = _named(amended.sr, REVIEW_VERDICT.value)
    assert verdict.ConceptCodeSequence[0].CodeValue == REVIEW_VERDICT_CODES["correct"].value
    (category,) = _named(amended.sr, REVIEWER_CATEGORY.value)
    assert category.ConceptCodeSequence[0].CodeValue == REVIEWER_CATEGORY_CODES["metastatic"].value
    (notice,) = _named(amended.sr, USAGE_NOTICE.value)
    assert notice.TextValue == INVESTIGATIONAL_NOTICE
    assert "investigational" in amended.sr.SeriesDescription.lower()


def test_corrected_volumes_reference_the_corrected_segments(amended: Amended) -> None:
    volumes = _named(amended.sr, VOLUME.value)
    assert len(volumes) == 2
    by_segment = {}
    for group in _named(amended.sr, "125007"):  # DCM Measurement Group (TID 1411)
        (reference,) = [i for i in _items(group) if "ReferencedSOPSequence" in i]
        sop = reference.ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == amended.seg.SOPInstanceUID
        (volume,) = [
            i for i in _items(group) if i.ConceptNameCodeSequence[0].CodeValue == VOLUME.value
        ]
        value = volume.MeasuredValueSequence[0]
        assert value.MeasurementUnitsCodeSequence[0].CodeValue == "ml"
        assert value.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
        by_segment[int(sop.ReferencedSegmentNumber)] = float(value.NumericValue)
    for name in ("tumor", "pancreas"):
        number = cx.segment_number(amended.ai_seg, name)
        expected = np.count_nonzero(amended.edit.after == number) * amended.voxel_ml
        assert by_segment[number] == pytest.approx(expected, abs=1e-3)
    tumor = cx.segment_number(amended.ai_seg, "tumor")
    before = np.count_nonzero(amended.edit.before == tumor) * amended.voxel_ml
    assert by_segment[tumor] > before + 1e-3


def test_an_existing_pair_is_not_rebuilt(amended: Amended) -> None:
    """A retried correction sends the same objects (receivers deduplicate by UID)."""
    again = write_correction_outputs(
        parse_correction(
            cx.payload(
                amended.ai_seg, amended.written.case.series.series_instance_uid, amended.edit
            )
        ),
        list(amended.written.case.files),
        amended.written.seg_path,
        amended.written.sr_path,
        REVIEW,
        amended.outputs.seg_path.parent,
    )
    assert again == amended.outputs


def test_an_seg_is_not_an_sr_to_amend(amended: Amended) -> None:
    with pytest.raises(CorrectionError, match="not an SR document"):
        build_sr_amendment(amended.ai_seg, amended.seg, [], REVIEW, {})


def test_missing_ai_objects_are_named(amended: Amended, tmp_path: Path) -> None:
    correction = parse_correction(
        cx.payload(amended.ai_seg, amended.written.case.series.series_instance_uid, amended.edit)
    )
    with pytest.raises(CorrectionError, match="AI SEG is missing"):
        write_correction_outputs(
            correction,
            list(amended.written.case.files),
            tmp_path / "none.dcm",
            amended.written.sr_path,
            REVIEW,
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()
