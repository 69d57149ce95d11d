"""The SR amendment of a radiologist's segmentation correction (issue 26).

A Comprehensive 3D SR (PS3.3 A.35.13) holding a TID 1500 Measurement Report, like the AI's own
report (:mod:`inference.sr_writer`), that amends it:

- the AI SR is its predecessor: Predecessor Documents Sequence (0040,A360) of the SR Document
  General module, PS3.3 C.17.2.3 ("SR SOP Instances whose content has been wholly or partially
  included in this document with or without modification");
- the radiologist is the person observer (TID 1001/1002 Observation Context, Person Observer
  Name as a PN, :func:`inference.seg_correction.reviewer_person_name`);
- one TID 1411 Volumetric ROI group each for the tumor and the pancreas, referencing that
  structure's segment in the corrected SEG (:func:`inference.seg_correction.build_corrected_seg`)
  with the volume recomputed from the corrected label images (SCT 118565006 Volume, UCUM
  ``ml``, :func:`inference.seg_correction.structure_volumes_ml`); a structure without a segment
  in the SEG has no group;
- the Qualitative Evaluations container (TID 1500 row 12) states the usage notice
  ("Investigational, not for clinical use."), the review's verdict (``REVIEW``), the
  radiologist's category when there is one (``REV-CAT``) and the reason (``REV-REASON``).

The current evidence (CT images, corrected SEG) is recorded in the Current Requested Procedure
Evidence Sequence (PS3.3 C.17.2.2). Codes: :mod:`inference.dicom_codes`.

:func:`write_correction_outputs` writes both objects of a correction (the corrected SEG and
this amendment) from the stored correction, the CT series and the job's AI SEG and SR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference._analysis_outputs import SEG_NAME, SR_NAME
from inference._writer_common import (
    SourceImages,
    load_source_headers,
    node_software_version,
    save_atomically,
)
from inference.dicom_codes import (
    FINDING_SITE,
    MANUFACTURER,
    PROCEDURE_REPORTED,
    QUALITATIVE_EVALUATIONS,
    REVIEW_REASON,
    REVIEW_VERDICT,
    REVIEW_VERDICT_CODES,
    REVIEWER_CATEGORY,
    REVIEWER_CATEGORY_CODES,
    SR_AMENDMENT_SERIES_DESCRIPTION,
    SR_AMENDMENT_SERIES_NUMBER,
    UNIT_MILLILITER,
    USAGE_NOTICE,
    VOLUME,
    private_coding_scheme,
)
from inference.seg_correction import (
    CorrectionError,
    LabelCorrection,
    build_corrected_seg,
    reviewer_person_name,
    structure_volumes_ml,
)
from inference.sr_writer import SegmentRef, segment_refs
from pancreas_contracts.boards import BoardCategory, ReviewVerdict
from pancreas_contracts.result import INVESTIGATIONAL_NOTICE

__all__ = [
    "AI_SEG_NAME",
    "AI_SR_NAME",
    "AMENDMENT_SR_NAME",
    "CORRECTED_SEG_NAME",
    "REPORTED_STRUCTURES",
    "CorrectionOutputs",
    "ReviewStatement",
    "build_sr_amendment",
    "write_correction_outputs",
]

#: File names of the AI SEG and SR a correction amends, in ``<data>/results/<job id>/``.
AI_SEG_NAME: Final = SEG_NAME
AI_SR_NAME: Final = SR_NAME
#: File names of the corrected SEG and the SR amendment in a correction's folder.
CORRECTED_SEG_NAME: Final = "seg.dcm"
AMENDMENT_SR_NAME: Final = "sr.dcm"

#: The structures whose corrected volume the amendment reports (Tracking IDs of the SEG).
REPORTED_STRUCTURES: Final = ("tumor", "pancreas")
_SR_CLASSES: Final = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
        "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
        "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    }
)


@dataclass(frozen=True)
class ReviewStatement:
    """What the amendment says about the review.

    Parameters
    ----------
    verdict
        The radiologist's verdict (``correct`` for a segmentation correction).
    reviewer
        The reviewer's user name (the person observer).
    category
        The radiologist's board category, if the review gives one.
    reason
        The radiologist's reason, if any (free text; written into the SR, never logged).
    """

    verdict: ReviewVerdict
    reviewer: str
    category: BoardCategory | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CorrectionOutputs:
    """The two objects written for a correction, with their SOP Instance UIDs."""

    seg_path: Path
    seg_sop_instance_uid: str
    sr_path: Path
    sr_sop_instance_uid: str

    @property
    def paths(self) -> tuple[Path, Path]:
        """Both files, SEG first."""
        return (self.seg_path, self.sr_path)


def write_correction_outputs(
    correction: LabelCorrection,
    ct: SourceImages,
    ai_seg_path: Path,
    ai_sr_path: Path,
    review: ReviewStatement,
    out_dir: Path,
) -> CorrectionOutputs:
    """Write the corrected SEG and the SR amendment into ``out_dir`` (all or nothing each).

    The SEG is written first and the SR last, so an SR file in ``out_dir`` means both are
    there; a folder that already holds both is returned as it is (a retried delivery sends the
    same objects again, which receivers deduplicate by SOP Instance UID).

    Parameters
    ----------
    correction
        The validated correction (:func:`inference.seg_correction.read_correction`).
    ct
        The CT series (directory, files or headers; other series are ignored).
    ai_seg_path, ai_sr_path
        The AI SEG that was edited and the AI SR the amendment follows.
    review
        The review (verdict, reviewer, category, reason).
    out_dir
        The correction's folder.

    Raises
    ------
    CorrectionError
        If the inputs are unreadable or the correction does not fit them.
    inference.volume_io.VolumeError
        If the CT series cannot be read.
    OSError
        If a file cannot be written.
    """
    seg_path, sr_path = out_dir / CORRECTED_SEG_NAME, out_dir / AMENDMENT_SR_NAME
    if seg_path.is_file() and sr_path.is_file():
        return CorrectionOutputs(seg_path, _sop_uid(seg_path), sr_path, _sop_uid(sr_path))
    ai_seg, ai_sr = _read(ai_seg_path, "AI SEG"), _read(ai_sr_path, "AI SR")
    headers = load_source_headers(ct, correction.referenced_series_instance_uid)
    seg = build_corrected_seg(correction, ai_seg, headers, review.reviewer)
    volumes = structure_volumes_ml(correction, ai_seg, headers)
    sr = build_sr_amendment(ai_sr, seg, headers, review, volumes)
    save_atomically(seg, seg_path)
    save_atomically(sr, sr_path)
    return CorrectionOutputs(seg_path, str(seg.SOPInstanceUID), sr_path, str(sr.SOPInstanceUID))


def _read(path: Path, what: str) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except FileNotFoundError as exc:
        raise CorrectionError(f"the job's {what} is missing") from exc
    except (InvalidDicomError, EOFError, ValueError) as exc:
        raise CorrectionError(f"the job's {what} is not a readable DICOM file") from exc


def _sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def build_sr_amendment(
    ai_sr: Dataset,
    corrected_seg: Dataset,
    headers: Sequence[Dataset],
    review: ReviewStatement,
    volumes_ml: Mapping[str, float],
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The SR amendment of the AI SR ``ai_sr`` after a correction (see the module notes).

    Parameters
    ----------
    ai_sr
        The AI's SR (the predecessor).
    corrected_seg
        The reviewer-corrected SEG (its segments are referenced).
    headers
        The CT images (evidence).
    review
        The review the amendment states.
    volumes_ml
        Volumes by Tracking ID (``"tumor"``, ``"pancreas"``) from the corrected segmentation.
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).

    Raises
    ------
    CorrectionError
        If ``ai_sr`` is not an SR document of the corrected SEG's study, or ``corrected_seg`` is
        not a Segmentation.
    """
    if str(ai_sr.get("SOPClassUID", "")) not in _SR_CLASSES:
        raise CorrectionError("the AI report to amend is not an SR document")
    if str(ai_sr.StudyInstanceUID) != str(corrected_seg.StudyInstanceUID):
        raise CorrectionError("the AI report belongs to another study than the corrected SEG")
    try:
        segments = segment_refs(corrected_seg)
    except ValueError as exc:
        raise CorrectionError(str(exc)) from exc
    series_uid = str(corrected_seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    groups = [
        _volume_group(corrected_seg, series_uid, segments[name], volumes_ml[name])
        for name in REPORTED_STRUCTURES
        if name in segments and name in volumes_ml
    ]
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(review.reviewer),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=groups or None,
        title=codes.DCM.ImagingMeasurementReport,
    )
    report[0].ContentSequence.append(_review_evaluations(review))
    return hd.sr.Comprehensive3DSR(
        evidence=[*headers, corrected_seg],
        content=report[0],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SR_AMENDMENT_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        previous_versions=[ai_sr],
        series_description=SR_AMENDMENT_SERIES_DESCRIPTION,
        coding_schemes=[private_coding_scheme()],
        manufacturer_model_name=str(corrected_seg.ManufacturerModelName),
        software_versions=node_software_version(),
        device_serial_number=str(corrected_seg.DeviceSerialNumber),
    )


def _observation_context(reviewer: str) -> hd.sr.ObservationContext:
    """TID 1001 with a TID 1003 person observer: the radiologist who corrected."""
    person = hd.sr.PersonObserverIdentifyingAttributes(
        name=str(reviewer_person_name(reviewer)), login_name=reviewer[:64] or None
    )
    return hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person, observer_identifying_attributes=person
        )
    )


def _volume_group(
    seg: Dataset, series_uid: str, segment: SegmentRef, volume: float
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """TID 1411 group: the structure's corrected volume, referencing its corrected segment."""
    label = segment.label
    reference = hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=segment.number,
        source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
    )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=segment.tracking_uid, identifier=f"{label.display} (reviewer-corrected)"
        ),
        referenced_segment=reference,
        finding_type=label.property_type,
        finding_category=label.property_category,
        finding_sites=[hd.sr.FindingSite(anatomic_location=FINDING_SITE)]
        if label.name == "tumor"
        else None,
        measurements=[hd.sr.Measurement(name=VOLUME, value=round(volume, 3), unit=UNIT_MILLILITER)],
    )


def _text(name: Code, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name,
        value=value,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )


def _review_evaluations(review: ReviewStatement) -> hd.sr.ContainerContentItem:
    """TID 1500 row 12 container: notice, verdict, the radiologist's category and reason."""
    items: list[hd.sr.ContentItem] = [
        _text(USAGE_NOTICE, INVESTIGATIONAL_NOTICE),
        hd.sr.CodeContentItem(
            name=REVIEW_VERDICT,
            value=REVIEW_VERDICT_CODES[review.verdict.value],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        ),
    ]
    if review.category is not None:
        items.append(
            hd.sr.CodeContentItem(
                name=REVIEWER_CATEGORY,
                value=REVIEWER_CATEGORY_CODES[review.category.value],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    if review.reason:
        items.append(_text(REVIEW_REASON, review.reason))
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container
