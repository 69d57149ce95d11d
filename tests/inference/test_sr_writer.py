"""TID 1500 SR writer: validity, values equal to the AnalysisResult, references to the SEG."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage

from inference import Volume
from inference.dicom_codes import (
    ABSENT,
    CATEGORY_CODES,
    CATEGORY_DISAGREEMENT,
    CLINICAL_IMPUTED,
    CLINICAL_MISSING,
    CLINICAL_USED,
    CONTACT_ANGLE,
    CONTACT_METHOD,
    DIAMETER,
    DOMAIN_CHECK,
    DOMAIN_GRADES,
    DOMAIN_REASON,
    NETWORK_CATEGORY,
    NO,
    NO_TUMOR_STAGING,
    OUT_OF_DOMAIN_STAGING,
    PRESENT,
    PRIVATE_SCHEME,
    PROBABILITY_CODES,
    QUALITATIVE_EVALUATIONS,
    RULE_CATEGORY,
    SOURCE_SERIES,
    STAGING,
    TUMOR_SEGMENTED,
    TUMOR_VOLUME,
    UNCERTAINTY,
    USAGE_NOTICE,
    YES,
)
from inference.seg_writer import write_seg
from inference.sr_writer import build_sr, segment_refs, write_sr
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    INVESTIGATIONAL_NOTICE,
    KEY_VESSELS,
    NO_TUMOR_NOTE,
    DomainCheck,
)
from phantom import VESSEL_LABELS
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case
written = fx.written


def _same(concept: hd.sr.CodedConcept, code: Code) -> bool:
    return bool(concept.value == code.value and concept.scheme_designator == code.scheme_designator)


def _report(path: Path) -> hd.sr.MeasurementReport:
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


@pytest.mark.integration
def test_sr_passes_dciodvfy_and_dcmdump(written: fx.Written) -> None:
    assert fx.dciodvfy_errors(written.sr_path) == []
    fx.dcmdump_reads(written.sr_path)


def test_sr_header(written: fx.Written) -> None:
    sr = pydicom.dcmread(written.sr_path)
    assert str(sr.SOPInstanceUID) == written.sr_uid
    assert sr.StudyInstanceUID == written.case.series.study_instance_uid
    assert sr.SeriesDescription == "PancreasAI measurements (investigational)"
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    schemes = {str(i.CodingSchemeDesignator) for i in sr.CodingSchemeIdentificationSequence}
    assert PRIVATE_SCHEME in schemes
    evidence = {
        str(instance.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
    assert written.seg_uid in evidence
    assert set(written.case.series.sop_instance_uids) <= evidence


def test_tumor_group_holds_volume_and_diameter(written: fx.Written) -> None:
    report = _report(written.sr_path)
    values = written.case.result.measurements
    tumor = label_by_name("tumor")
    (group,) = report.get_volumetric_roi_measurement_groups(finding_type=tumor.property_type)
    (volume,) = group.get_measurements(name=TUMOR_VOLUME)
    assert volume.value == pytest.approx(values.tumor_volume_ml)
    assert volume.unit.value == "ml" and volume.unit.scheme_designator == "UCUM"
    (diameter,) = group.get_measurements(name=DIAMETER)
    assert diameter.value == pytest.approx(values.tumor_max_diameter_mm)
    assert diameter.unit.value == "mm"
    segments = segment_refs(pydicom.dcmread(written.seg_path))
    reference = group.referenced_segment
    assert reference.referenced_segment_numbers == [segments["tumor"].number]
    sop = reference[0].ReferencedSOPSequence[0]
    assert (sop.ReferencedSOPInstanceUID, sop.ReferencedSOPClassUID) == (
        written.seg_uid,
        SegmentationStorage,
    )
    assert group.tracking_uid == segments["tumor"].tracking_uid


def test_each_contact_angle_references_its_vessel_segment(written: fx.Written) -> None:
    report = _report(written.sr_path)
    segments = segment_refs(pydicom.dcmread(written.seg_path))
    angles = written.case.result.measurements.contact_deg
    found = {}
    for vessel in KEY_VESSELS:
        label = label_by_name(VESSEL_LABELS[vessel])
        volumetric = report.get_volumetric_roi_measurement_groups(finding_type=label.property_type)
        plain = report.get_image_measurement_groups(finding_type=label.property_type)
        (group,) = [*volumetric, *plain]
        (angle,) = group.get_measurements(name=CONTACT_ANGLE)
        assert angle.unit.value == "deg" and angle.unit.scheme_designator == "UCUM"
        assert angle.method is not None and _same(angle.method, CONTACT_METHOD)
        found[vessel] = angle.value
        if label.name in segments:
            assert volumetric, f"{vessel} has a segment: the group must reference it"
            reference = volumetric[0].referenced_segment
            assert reference.referenced_segment_numbers == [segments[label.name].number]
            assert reference[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
                written.seg_uid
            )
        else:
            assert plain, f"{vessel} has no segment: TID 1501 group expected"
    assert found == pytest.approx(angles)


def test_assessment_group_holds_categories_and_probabilities(written: fx.Written) -> None:
    report = _report(written.sr_path)
    result = written.case.result
    groups = report.get_image_measurement_groups(finding_type=label_by_name("tumor").property_type)
    (group,) = [g for g in groups if g.get_qualitative_evaluations(name=NETWORK_CATEGORY)]
    (network,) = group.get_qualitative_evaluations(name=NETWORK_CATEGORY)
    assert _same(network.value, CATEGORY_CODES[CATEGORY_LABELS.index(result.category.label)])
    (rule,) = group.get_qualitative_evaluations(name=RULE_CATEGORY)
    assert result.rule_category is not None
    assert _same(rule.value, CATEGORY_CODES[CATEGORY_LABELS.index(result.rule_category)])
    (disagree,) = group.get_qualitative_evaluations(name=CATEGORY_DISAGREEMENT)
    assert _same(disagree.value, YES if result.disagreement else NO)
    for code, expected in zip(PROBABILITY_CODES, result.category.probabilities, strict=True):
        (measurement,) = group.get_measurements(name=code)
        assert measurement.value == pytest.approx(expected)
    (uncertainty,) = group.get_measurements(name=UNCERTAINTY)
    assert uncertainty.value == pytest.approx(result.category.uncertainty)
    texts = {
        str(item.name.value): str(item.value)
        for item in find_content_items(group[0], value_type="TEXT")
    }
    assert texts[codes.DCM.AlgorithmName.value] == fx.BUNDLE.name
    assert texts[codes.DCM.AlgorithmVersion.value] == fx.BUNDLE.version
    assert fx.BUNDLE.sha256 in texts[codes.DCM.AlgorithmParameters.value]


def test_clinical_inputs_and_notice(written: fx.Written) -> None:
    sr = pydicom.dcmread(written.sr_path)
    (container,) = [
        item
        for item in sr.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == QUALITATIVE_EVALUATIONS.value
    ]
    texts: dict[str, list[str]] = {}
    for item in container.ContentSequence:
        if item.ValueType == "TEXT":
            texts.setdefault(str(item.ConceptNameCodeSequence[0].CodeValue), []).append(
                str(item.TextValue)
            )
    clinical = written.case.result.clinical
    assert texts[USAGE_NOTICE.value] == [INVESTIGATIONAL_NOTICE]
    assert tuple(texts[CLINICAL_USED.value]) == clinical.used
    assert tuple(texts[CLINICAL_MISSING.value]) == clinical.missing
    assert tuple(texts[CLINICAL_IMPUTED.value]) == clinical.imputed
    source = written.case.result.source
    assert source is not None and source.series_version == 2
    assert texts[SOURCE_SERIES.value] == [f"series version 2, {source.instance_count} instances"]


def test_missing_segment_falls_back_to_a_plain_group(
    writer_case: fx.WriterCase, tmp_path: Path
) -> None:
    array = writer_case.label.array.copy()
    array[array == label_by_name("sma").value] = 0
    seg_path = tmp_path / "seg.dcm"
    write_seg(Volume(array, writer_case.label.affine), writer_case.dicom_dir, fx.BUNDLE, seg_path)
    write_sr(writer_case.result, seg_path, writer_case.dicom_dir, tmp_path / "sr.dcm")
    report = _report(tmp_path / "sr.dcm")
    sma = label_by_name("sma").property_type
    assert report.get_volumetric_roi_measurement_groups(finding_type=sma) == []
    (group,) = report.get_image_measurement_groups(finding_type=sma)
    (angle,) = group.get_measurements(name=CONTACT_ANGLE)
    assert angle.value == pytest.approx(writer_case.result.measurements.contact_deg["SMA"])


def test_refuses_a_seg_of_another_series(written: fx.Written, tmp_path: Path) -> None:
    other = written.case.result.model_copy(update={"series_uid": "1.2.3.4"})
    headers = list(fx.source_headers(written.case))
    with pytest.raises(ValueError, match="does not derive"):
        build_sr(other, pydicom.dcmread(written.seg_path), headers)
    with pytest.raises(ValueError, match="Segmentation"):
        write_sr(written.case.result, written.sr_path, written.case.dicom_dir, tmp_path / "x.dcm")
    assert not (tmp_path / "sr.dcm").exists()


def test_a_one_model_bundle_reports_no_uncertainty(written: fx.Written, tmp_path: Path) -> None:
    # One model has no spread: its "uncertainty 0" would read as certainty, so the SR says
    # nothing rather than 0.
    result = written.case.result
    single = result.model_copy(
        update={"category": result.category.model_copy(update={"ensemble_size": 1})}
    )
    write_sr(single, written.seg_path, written.case.dicom_dir, tmp_path / "sr.dcm")
    report = _report(tmp_path / "sr.dcm")
    tumor = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in report.get_image_measurement_groups(finding_type=tumor)
        if g.get_qualitative_evaluations(name=NETWORK_CATEGORY)
    ]
    assert group.get_measurements(name=UNCERTAINTY) == []
    assert fx.dciodvfy_errors(tmp_path / "sr.dcm") == []


def test_a_no_tumor_result_says_so_coded_without_categories(
    written: fx.Written, tmp_path: Path
) -> None:
    result = fx.no_tumor(written.case.result)
    write_sr(result, written.seg_path, written.case.dicom_dir, tmp_path / "sr.dcm")
    assert fx.dciodvfy_errors(tmp_path / "sr.dcm") == []
    report = _report(tmp_path / "sr.dcm")
    tumor = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in report.get_image_measurement_groups(finding_type=tumor)
        if g.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    ]
    (segmented,) = group.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    assert _same(segmented.value, ABSENT)
    (staging,) = group.get_qualitative_evaluations(name=STAGING)
    assert _same(staging.value, NO_TUMOR_STAGING)
    assert "staging not possible" in NO_TUMOR_STAGING.meaning
    for name in (NETWORK_CATEGORY, RULE_CATEGORY, CATEGORY_DISAGREEMENT):
        assert group.get_qualitative_evaluations(name=name) == []
    for code in (*PROBABILITY_CODES, UNCERTAINTY):
        assert group.get_measurements(name=code) == []
    all_groups = (
        *report.get_image_measurement_groups(),
        *report.get_planar_roi_measurement_groups(),
        *report.get_volumetric_roi_measurement_groups(),
    )
    for g in all_groups:
        for code in (TUMOR_VOLUME, DIAMETER, CONTACT_ANGLE):
            assert g.get_measurements(name=code) == []
    values = {
        str(i.TextValue)
        for i in find_content_items(
            pydicom.dcmread(tmp_path / "sr.dcm"), value_type="TEXT", recursive=True
        )
    }
    assert NO_TUMOR_NOTE in values and INVESTIGATIONAL_NOTICE in values


def test_a_tumor_result_says_tumor_segmented_present(written: fx.Written) -> None:
    report = _report(written.sr_path)
    tumor = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in report.get_image_measurement_groups(finding_type=tumor)
        if g.get_qualitative_evaluations(name=NETWORK_CATEGORY)
    ]
    (segmented,) = group.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    assert _same(segmented.value, PRESENT)
    assert group.get_qualitative_evaluations(name=STAGING) == []


def _assessment(report: hd.sr.MeasurementReport) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    tumor = label_by_name("tumor").property_type
    (group,) = [
        g
        for g in report.get_image_measurement_groups(finding_type=tumor)
        if g.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    ]
    return group


def test_an_out_of_domain_result_codes_the_grade_and_withholds_the_category(
    written: fx.Written, tmp_path: Path
) -> None:
    result = fx.out_of_domain(written.case.result)
    write_sr(result, written.seg_path, written.case.dicom_dir, tmp_path / "sr.dcm")
    assert fx.dciodvfy_errors(tmp_path / "sr.dcm") == []
    group = _assessment(_report(tmp_path / "sr.dcm"))
    (segmented,) = group.get_qualitative_evaluations(name=TUMOR_SEGMENTED)
    assert _same(segmented.value, PRESENT)
    (staging,) = group.get_qualitative_evaluations(name=STAGING)
    assert _same(staging.value, OUT_OF_DOMAIN_STAGING)
    (grade,) = group.get_qualitative_evaluations(name=DOMAIN_CHECK)
    assert _same(grade.value, DOMAIN_GRADES["out-of-domain"])
    for name in (NETWORK_CATEGORY, RULE_CATEGORY, CATEGORY_DISAGREEMENT):
        assert group.get_qualitative_evaluations(name=name) == []
    for code in (*PROBABILITY_CODES, UNCERTAINTY):
        assert group.get_measurements(name=code) == []
    reasons = [
        str(item.TextValue)
        for item in group[0].ContentSequence
        if item.ValueType == "TEXT" and _same(item.name, DOMAIN_REASON)
    ]
    assert reasons == list(fx.OUT_OF_DOMAIN_REASONS)


def test_an_in_domain_grade_is_coded_beside_the_category(
    written: fx.Written, tmp_path: Path
) -> None:
    assert not _assessment(_report(written.sr_path)).get_qualitative_evaluations(
        name=DOMAIN_CHECK
    )  # a result without a domain check (schema < 1.3) has none
    result = written.case.result.model_copy(update={"domain": DomainCheck(grade="in-domain")})
    write_sr(result, written.seg_path, written.case.dicom_dir, tmp_path / "sr.dcm")
    group = _assessment(_report(tmp_path / "sr.dcm"))
    (grade,) = group.get_qualitative_evaluations(name=DOMAIN_CHECK)
    assert _same(grade.value, DOMAIN_GRADES["in-domain"])
    assert len(group.get_qualitative_evaluations(name=NETWORK_CATEGORY)) == 1


def test_a_one_model_bundle_with_flip_passes_reports_their_spread(
    written: fx.Written, tmp_path: Path
) -> None:
    result = written.case.result
    assert result.category is not None
    flipped = result.model_copy(
        update={"category": result.category.model_copy(update={"ensemble_size": 1, "passes": 4})}
    )
    write_sr(flipped, written.seg_path, written.case.dicom_dir, tmp_path / "sr.dcm")
    (uncertainty,) = _assessment(_report(tmp_path / "sr.dcm")).get_measurements(name=UNCERTAINTY)
    assert uncertainty.value == pytest.approx(result.category.uncertainty)
