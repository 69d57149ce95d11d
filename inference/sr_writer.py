"""Comprehensive 3D SR (PS3.3 A.35.13) holding a TID 1500 Measurement Report of an analysis.

Everything comes from :class:`pancreas_contracts.result.AnalysisResult` and the SEG written by
:mod:`inference.seg_writer`. The content tree (PS3.16 TID 1500 "Measurement Report"):

- Observation context (TID 1001/1004): the model as observer device (name, version, bundle
  hash as serial number and in the algorithm parameters).
- Imaging Measurements, one Measurement Group per finding:

  * tumor (TID 1411 Volumetric ROI, referencing the tumor segment of the SEG): volume in
    ``ml`` and largest 3D diameter in ``mm`` (UCUM);
  * one group per key vessel with a measured contact angle (TID 1411, referencing that
    vessel's segment): the circumferential tumor contact angle in ``deg``;
  * the resectability assessment (TID 1501): coded NCCN category of the network and of the
    contact-angle rule, their disagreement (SCT Yes/No), the three class probabilities, the
    ensemble uncertainty (left out for a one-model bundle, which has no spread) and the
    localisation confidence as numeric measurements; the training-domain grade (``DOMAIN``,
    result 1.3) as a coded evaluation with one ``DOM-REASON`` TEXT item per reason; an
    out-of-domain result has staging ``OOD-STAGE`` instead of the categories.

  * one TID 1501 group per further task section (``result.tasks``, schema 1.1): the task's
    coded finding type, its numeric findings (TID 300, UCUM units) and its outcome and notes as
    qualitative TEXT items, so a new task reaches the SR without a change here.

  * the PDAC detector's groups (result 1.5, :mod:`inference._sr_detection`) and the lymph-node
    model's (result 1.6, :mod:`inference._sr_lymph_nodes`): an N-estimate group and one TID
    1411 group per node referencing its segment in the lymph-node SEG (``lymph_node_seg``);
  * the survival model's prognosis (result 1.7, :mod:`inference._sr_survival`): one TID 1501
    group with the death probability by 1, 2 and 3 years, the coded risk group and its inputs.

  Every group carries the model's TID 4019 Algorithm Identification. A measurement whose
  structure has no segment in the SEG goes into a TID 1501 group instead of a TID 1411 one.
- Qualitative Evaluations (TID 1500 rows 12-14): TEXT items for the usage notice
  ("Investigational, not for clinical use."), each clinical variable used, missing or imputed,
  the registry status and analysis warnings; a CODE item for the knock-out path.

Codes: :mod:`inference.dicom_codes` (private scheme ``99PANCAI`` declared in the Coding Scheme
Identification Sequence) and :data:`pancreas_contracts.labels.LABELS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage, generate_uid

from inference._sr_detection import detection_groups
from inference._sr_lymph_nodes import lymph_node_groups, lymph_node_line
from inference._sr_survival import survival_group, survival_line
from inference._writer_common import (
    SourceImages,
    device_serial_number,
    load_source_headers,
    node_software_version,
    save_atomically,
)
from inference.dicom_codes import (
    ABSENT,
    ALGORITHM_FAMILY,
    CATEGORY_CODES,
    CATEGORY_DISAGREEMENT,
    CLINICAL_IMPUTED,
    CLINICAL_KNOCKED_OUT,
    CLINICAL_MISSING,
    CLINICAL_USED,
    CONTACT_ANGLE,
    CONTACT_METHOD,
    DIAMETER,
    DIAMETER_DERIVATION,
    DOMAIN_CHECK,
    DOMAIN_GRADES,
    DOMAIN_REASON,
    FINDING_SITE,
    LOCALISATION_CONFIDENCE,
    LYMPH_NODE_ASSESSMENT,
    MANUFACTURER,
    NETWORK_CATEGORY,
    NO,
    NO_PDAC_STAGING,
    NO_TUMOR_STAGING,
    OUT_OF_DOMAIN_STAGING,
    PDAC_DETECTION,
    PRESENT,
    PROBABILITY_CODES,
    PROCEDURE_REPORTED,
    QUALITATIVE_EVALUATIONS,
    REGISTRY_STATUS,
    RULE_CATEGORY,
    SOURCE_SERIES,
    SR_SERIES_DESCRIPTION,
    SR_SERIES_NUMBER,
    STAGING,
    SURVIVAL_SUMMARY,
    TASK_NOTE,
    TUMOR_SEGMENTED,
    TUMOR_VOLUME,
    UNCERTAINTY,
    UNIT_DEGREE,
    UNIT_MILLILITER,
    UNIT_MILLIMETER,
    UNIT_NONE,
    USAGE_NOTICE,
    WARNING,
    YES,
    private_coding_scheme,
)
from pancreas_contracts.labels import Label, label_by_name
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    KEY_VESSEL_LABELS,
    KEY_VESSELS,
    AnalysisResult,
    CodeRef,
    TaskSection,
)

__all__ = ["SegmentRef", "build_sr", "segment_refs", "write_sr"]

_Group = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


@dataclass(frozen=True)
class SegmentRef:
    """One segment of the SEG, as the SR refers to it.

    Parameters
    ----------
    number
        Segment Number.
    tracking_uid
        The segment's Tracking UID (reused as the measurement group's tracking UID).
    label
        The label it encodes (found by its Tracking ID, the label's machine name).
    """

    number: int
    tracking_uid: str
    label: Label


def segment_refs(seg: Dataset) -> dict[str, SegmentRef]:
    """Segments of a SEG written by :func:`inference.seg_writer.write_seg`, by label name.

    Raises
    ------
    ValueError
        If ``seg`` is not a Segmentation.
    """
    if str(seg.get("SOPClassUID", "")) != SegmentationStorage:
        raise ValueError("the SR must reference a Segmentation (SEG) instance")
    refs = {}
    for item in seg.SegmentSequence:
        name = str(item.get("TrackingID", ""))
        try:
            label = label_by_name(name)
        except KeyError:
            continue
        uid = str(item.get("TrackingUID", "")) or generate_uid()
        refs[name] = SegmentRef(int(item.SegmentNumber), uid, label)
    return refs


def write_sr(
    result: AnalysisResult,
    seg: Dataset | Path,
    source: SourceImages,
    out_path: Path,
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    lymph_node_seg: Dataset | Path | None = None,
) -> str:
    """Write the TID 1500 Measurement Report of ``result`` and return its SOP Instance UID.

    Parameters
    ----------
    result
        The analysis result (every value reported comes from it).
    seg
        The Segmentation written for the same analysis (data set or file); its segments are
        referenced by the measurement groups.
    source
        The source CT series (directory, files or header data sets): recorded as evidence.
    out_path
        File to write (all or nothing).
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).
    lymph_node_seg
        The lymph-node SEG of the same analysis (result 1.6), whose segments the node groups
        reference (:mod:`inference._sr_lymph_nodes`); ``None``: none was written.

    Returns
    -------
    str
        SOP Instance UID of the SR document.

    Raises
    ------
    ValueError
        If ``seg`` is not a Segmentation of the result's series, or the source cannot be read.
    """
    seg_ds = seg if isinstance(seg, Dataset) else pydicom.dcmread(seg)
    headers = load_source_headers(source, result.series_uid)
    nodes_ds = (
        pydicom.dcmread(lymph_node_seg) if isinstance(lymph_node_seg, Path) else lymph_node_seg
    )
    sr = build_sr(
        result,
        seg_ds,
        headers,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
        lymph_node_seg=nodes_ds,
    )
    save_atomically(sr, out_path)
    return str(sr.SOPInstanceUID)


def build_sr(
    result: AnalysisResult,
    seg: Dataset,
    headers: Sequence[Dataset],
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    lymph_node_seg: Dataset | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build the SR document of :func:`write_sr` without writing it."""
    segments = segment_refs(seg)
    referenced_series = {
        str(item.SeriesInstanceUID) for item in seg.get("ReferencedSeriesSequence", [])
    }
    if result.series_uid not in referenced_series:
        raise ValueError("the SEG does not derive from the result's series")
    algorithm = hd.sr.AlgorithmIdentification(
        name=result.bundle.name,
        version=result.bundle.version,
        parameters=[f"bundle_sha256={result.bundle.sha256}"],
        family=ALGORITHM_FAMILY,
        manufacturer=MANUFACTURER,
    )
    context = _Context(result, seg, algorithm, segments)
    groups: list[_Group] = [*_tumor_groups(context), *_vessel_groups(context)]
    groups.append(_assessment_group(context))
    groups.extend(_task_group(context, section) for section in result.tasks.values())
    if result.detection is not None:
        groups.extend(detection_groups(result.detection, str(seg.FrameOfReferenceUID)))
    if result.lymph_nodes is not None:
        groups.extend(
            lymph_node_groups(
                result.lymph_nodes, lymph_node_seg, result.series_uid, str(seg.FrameOfReferenceUID)
            )
        )
    if result.prognosis is not None:
        groups.append(survival_group(result.prognosis))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(result),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    report[0].ContentSequence.append(_qualitative_evaluations(result))
    return hd.sr.Comprehensive3DSR(
        evidence=[*headers, seg, *([] if lymph_node_seg is None else [lymph_node_seg])],
        content=report[0],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=SR_SERIES_DESCRIPTION,
        coding_schemes=[private_coding_scheme()],
        manufacturer_model_name=result.bundle.name,
        software_versions=node_software_version(),
        device_serial_number=device_serial_number(result.bundle),
    )


@dataclass(frozen=True)
class _Context:
    result: AnalysisResult
    seg: Dataset
    algorithm: hd.sr.AlgorithmIdentification
    segments: dict[str, SegmentRef]


def _observation_context(result: AnalysisResult) -> hd.sr.ObservationContext:
    """TID 1001 with a TID 1004 device observer: the model bundle."""
    bundle = result.bundle
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[bundle.name, bundle.version, bundle.sha256]),
        name=bundle.name,
        manufacturer_name=MANUFACTURER,
        model_name=f"{bundle.name} {bundle.version}"[:64],
        serial_number=device_serial_number(bundle),
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _group(
    context: _Context,
    label: Label,
    measurements: list[hd.sr.Measurement],
    *,
    finding_sites: list[hd.sr.FindingSite] | None = None,
) -> _Group:
    """A TID 1411 group referencing ``label``'s segment, or TID 1501 where it has none."""
    segment = context.segments.get(label.name)
    common = {
        "finding_type": label.property_type,
        "finding_category": label.property_category,
        "finding_sites": finding_sites,
        "algorithm_id": context.algorithm,
        "measurements": measurements,
    }
    if segment is None:
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label.display)
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            **common,  # type: ignore[arg-type]
        )
    reference = hd.sr.ReferencedSegment(
        sop_class_uid=str(context.seg.SOPClassUID),
        sop_instance_uid=str(context.seg.SOPInstanceUID),
        segment_number=segment.number,
        source_series=hd.sr.SourceSeriesForSegmentation(context.result.series_uid),
    )
    tracking = hd.sr.TrackingIdentifier(uid=segment.tracking_uid, identifier=label.display)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        referenced_segment=reference,
        **common,  # type: ignore[arg-type]
    )


def _tumor_groups(context: _Context) -> list[_Group]:
    values = context.result.measurements
    measurements = []
    if values.tumor_volume_ml is not None:
        measurements.append(
            hd.sr.Measurement(name=TUMOR_VOLUME, value=values.tumor_volume_ml, unit=UNIT_MILLILITER)
        )
    if values.tumor_max_diameter_mm is not None:
        measurements.append(
            hd.sr.Measurement(
                name=DIAMETER,
                value=values.tumor_max_diameter_mm,
                unit=UNIT_MILLIMETER,
                derivation=DIAMETER_DERIVATION,
            )
        )
    if not measurements:
        return []
    site = [hd.sr.FindingSite(anatomic_location=FINDING_SITE)]
    return [_group(context, label_by_name("tumor"), measurements, finding_sites=site)]


def _vessel_groups(context: _Context) -> list[_Group]:
    groups = []
    contact = context.result.measurements.contact_deg
    for vessel in KEY_VESSELS:
        angle = contact.get(vessel)
        if angle is None:
            continue
        measurement = hd.sr.Measurement(
            name=CONTACT_ANGLE, value=angle, unit=UNIT_DEGREE, method=CONTACT_METHOD
        )
        groups.append(_group(context, label_by_name(KEY_VESSEL_LABELS[vessel]), [measurement]))
    return groups


def _category_code(label: str) -> Code:
    return CATEGORY_CODES[CATEGORY_LABELS.index(label)]


def _category_items(
    result: AnalysisResult,
) -> tuple[list[hd.sr.QualitativeEvaluation], list[hd.sr.Measurement]]:
    """Tumor segmented or not, and the categories and probabilities when there is a category.

    A no-tumor result (``outcome`` ``no-tumor``) says so (tumor segmented: Absent; staging: not
    possible) and has no category, rule category, disagreement or probability; an out-of-domain
    result (tumor segmented: Present; staging: out of the training domain, category withheld)
    neither.
    """
    category = result.category
    if result.outcome == "no-pdac":  # the detector gated the staging (result 1.5)
        segmented = PRESENT if result.measurements.tumor_volume_ml is not None else ABSENT
        return [
            hd.sr.QualitativeEvaluation(TUMOR_SEGMENTED, segmented),
            hd.sr.QualitativeEvaluation(STAGING, NO_PDAC_STAGING),
        ], []
    if category is None and result.outcome == "out-of-domain":
        return [
            hd.sr.QualitativeEvaluation(TUMOR_SEGMENTED, PRESENT),
            hd.sr.QualitativeEvaluation(STAGING, OUT_OF_DOMAIN_STAGING),
        ], []
    if category is None:
        return [
            hd.sr.QualitativeEvaluation(TUMOR_SEGMENTED, ABSENT),
            hd.sr.QualitativeEvaluation(STAGING, NO_TUMOR_STAGING),
        ], []
    evaluations = [
        hd.sr.QualitativeEvaluation(TUMOR_SEGMENTED, PRESENT),
        hd.sr.QualitativeEvaluation(NETWORK_CATEGORY, _category_code(category.label)),
    ]
    if result.rule_category is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(RULE_CATEGORY, _category_code(result.rule_category))
        )
    evaluations.append(
        hd.sr.QualitativeEvaluation(CATEGORY_DISAGREEMENT, YES if result.disagreement else NO)
    )
    measurements = [
        hd.sr.Measurement(name=code, value=probability, unit=UNIT_NONE)
        for code, probability in zip(PROBABILITY_CODES, category.probabilities, strict=True)
    ]
    if category.has_spread:  # one model without flip passes has no spread: 0 would mislead
        measurements.append(
            hd.sr.Measurement(name=UNCERTAINTY, value=category.uncertainty, unit=UNIT_NONE)
        )
    return evaluations, measurements


def _assessment_group(context: _Context) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    result = context.result
    evaluations, measurements = _category_items(result)
    if result.domain is not None:  # schema 1.3: the training-domain grade, coded
        evaluations.append(
            hd.sr.QualitativeEvaluation(DOMAIN_CHECK, DOMAIN_GRADES[result.domain.grade])
        )
    measurements.append(
        hd.sr.Measurement(
            name=LOCALISATION_CONFIDENCE, value=result.localisation.confidence, unit=UNIT_NONE
        )
    )
    tumor = label_by_name("tumor")
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier="Resectability assessment"
        ),
        finding_type=tumor.property_type,
        finding_category=tumor.property_category,
        finding_sites=[hd.sr.FindingSite(anatomic_location=FINDING_SITE)],
        algorithm_id=context.algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )
    if result.domain is not None:  # the reasons behind the grade, one TEXT item each
        for reason in result.domain.reasons:
            group[0].ContentSequence.append(_text(DOMAIN_REASON, reason))
    return group


def _code(ref: CodeRef) -> Code:
    return Code(ref.value, ref.scheme, ref.meaning)


def _task_group(
    context: _Context, section: TaskSection
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one further task: its findings (TID 300) and outcome/notes as text."""
    measurements = [
        hd.sr.Measurement(name=_code(f.name), value=f.value, unit=_code(f.unit))
        for f in section.findings
        if f.value is not None
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=section.title),
        finding_type=_code(section.finding_type),
        finding_sites=[hd.sr.FindingSite(anatomic_location=FINDING_SITE)],
        algorithm_id=context.algorithm,
        measurements=measurements or None,
    )
    lines = [
        f"{section.title} {section.model_version}: {section.outcome}",
        *(f"{f.name.meaning}: not measured" for f in section.findings if f.value is None),
        *section.notes,
    ]
    container = group[0]
    for line in lines:
        container.ContentSequence.append(_text(TASK_NOTE, line))
    return group


def _text(name: Code, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


def _qualitative_evaluations(result: AnalysisResult) -> hd.sr.ContainerContentItem:
    """TID 1500 row 12 container: notice, clinical inputs, registry status, warnings."""
    clinical = result.clinical
    items: list[hd.sr.ContentItem] = [_text(USAGE_NOTICE, result.notice)]
    for code, names in (
        (CLINICAL_USED, clinical.used),
        (CLINICAL_MISSING, clinical.missing),
        (CLINICAL_IMPUTED, clinical.imputed),
    ):
        items.extend(_text(code, name) for name in names)
    items.append(
        hd.sr.CodeContentItem(
            name=CLINICAL_KNOCKED_OUT,
            value=YES if clinical.knocked_out else NO,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    items.append(_text(REGISTRY_STATUS, clinical.registry_status))
    if result.source is not None:
        items.append(_text(SOURCE_SERIES, result.source.describe()))
    if result.detection is not None:
        items.append(_text(PDAC_DETECTION, result.detection.describe()))
    if result.lymph_nodes is not None:
        items.append(_text(LYMPH_NODE_ASSESSMENT, lymph_node_line(result.lymph_nodes)))
    if result.prognosis is not None:
        items.append(_text(SURVIVAL_SUMMARY, survival_line(result.prognosis)))
    items.extend(_text(WARNING, warning) for warning in result.warnings)
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container
