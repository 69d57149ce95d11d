"""Non-image series added to a processed phantom study (issue 20, item 5).

A clinical study often carries more than the CT: an RT Structure Set from planning, Key Object
Selections and Presentation States from the PACS, text reports. The ``pancreas-ai`` mode must
hang the CT and still show the node's SEG and SR when they are there. Written here, all with
series numbers *below* the CT's, so that they come first in OHIF's series order:

- an RT Structure Set (PS3.3 A.19) with one closed-planar ROI around the tumor on three CT
  slices, written with pydicom (highdicom does not write RTSTRUCT);
- a Key Object Selection Document (``highdicom.ko``) that flags two CT slices;
- a Grayscale Softcopy Presentation State (``highdicom.pr``) with an abdomen window;
- a Basic Text SR (one CONTAINER with a TEXT item, written by ``highdicom.sr`` and
  re-labelled with the Basic Text SR SOP class, whose content constraints it meets).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

RT_STRUCTURE_SET = UID("1.2.840.10008.5.1.4.1.1.481.3")
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")
_STUDY_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _referenced_image(ct: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ct.SOPClassUID
    item.ReferencedSOPInstanceUID = ct.SOPInstanceUID
    return item


def write_rtstruct(
    cts: Sequence[Dataset], center_lps: Sequence[float], path: Path, series_number: int = 1
) -> str:
    """An RT Structure Set with a 16 mm square "GTV" on the three slices nearest the centre."""
    now = dt.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    first = cts[0]
    for keyword in _STUDY_ATTRIBUTES:
        setattr(ds, keyword, first.get(keyword, ""))
    ds.SOPClassUID = RT_STRUCTURE_SET
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "Planning structures"
    ds.OperatorsName = ""
    ds.Manufacturer = "PancreasAI test suite"
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "PLAN"
    ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = now.strftime("%H%M%S")
    frame_uid = first.FrameOfReferenceUID
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""

    contour_images = DicomSequence([_referenced_image(ct) for ct in cts])
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = contour_images
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = frame_uid
    frame_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])

    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = frame_uid
    roi.ROIName = "GTV"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = DicomSequence([roi])

    nearest = sorted(cts, key=lambda ct: abs(float(ct.ImagePositionPatient[2]) - center_lps[2]))
    contours = []
    half = 8.0
    for ct in sorted(nearest[:3], key=lambda ct: float(ct.ImagePositionPatient[2])):
        z = float(ct.ImagePositionPatient[2])
        x, y = float(center_lps[0]), float(center_lps[1])
        corners = [(x - half, y - half), (x + half, y - half), (x + half, y + half)]
        corners.append((x - half, y + half))
        contour = Dataset()
        contour.ContourImageSequence = DicomSequence([_referenced_image(ct)])
        contour.ContourGeometricType = "CLOSED_PLANAR"
        contour.NumberOfContourPoints = len(corners)
        contour.ContourData = [round(v, 3) for cx, cy in corners for v in (cx, cy, z)]
        contours.append(contour)
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [0, 255, 255]
    roi_contour.ContourSequence = DicomSequence(contours)
    ds.ROIContourSequence = DicomSequence([roi_contour])

    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.RTROIInterpretedType = "GTV"
    observation.ROIInterpreter = ""
    ds.RTROIObservationsSequence = DicomSequence([observation])
    ds.ApprovalStatus = "UNAPPROVED"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def write_key_objects(cts: Sequence[Dataset], path: Path, series_number: int = 2) -> str:
    """A Key Object Selection ("Of Interest") flagging the first two CT slices."""
    content = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.OfInterest,
        referenced_objects=list(cts[:2]),
        description="two slices of interest",
    )
    doc = hd.ko.KeyObjectSelectionDocument(
        evidence=list(cts[:2]),
        content=content,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="PancreasAI test suite",
    )
    doc.save_as(path, enforce_file_format=True)
    return str(doc.SOPInstanceUID)


def write_presentation_state(cts: Sequence[Dataset], path: Path, series_number: int = 2) -> str:
    """A Grayscale Softcopy Presentation State: an abdomen window (W 400 / C 40) on the CT."""
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=list(cts),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="PancreasAI test suite",
        manufacturer_model_name="tests",
        software_versions="1",
        device_serial_number="1",
        content_label="ABDOMEN",
        voi_lut_transformations=[
            hd.pr.SoftcopyVOILUTTransformation(window_center=40.0, window_width=400.0)
        ],
    )
    gsps.save_as(path, enforce_file_format=True)
    return str(gsps.SOPInstanceUID)


def write_basic_text_sr(cts: Sequence[Dataset], path: Path, series_number: int = 1) -> str:
    """A Basic Text SR: a radiology report title with one TEXT finding."""
    container = hd.sr.ContainerContentItem(
        name=Code("18748-4", "LN", "Diagnostic imaging report"),
        template_id=None,
        relationship_type=None,
    )
    container.ContentSequence = DicomSequence(
        [
            hd.sr.TextContentItem(
                name=codes.DCM.Finding,
                value="Hypodense mass in the pancreatic head.",
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        ]
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=list(cts[:1]),
        content=container,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="PancreasAI test suite",
        is_complete=True,
        series_description="Report (basic text)",
    )
    sr.SOPClassUID = BASIC_TEXT_SR
    sr.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    sr.save_as(path, enforce_file_format=True)
    return str(sr.SOPInstanceUID)


def write_non_image_series(
    ct_files: Sequence[Path], center_lps: Sequence[float], out: Path
) -> dict[str, Path]:
    """All four, under ``out``; returns ``{"rtstruct": path, ...}``."""
    out.mkdir(parents=True, exist_ok=True)
    cts = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_files]
    cts.sort(key=lambda ct: int(ct.InstanceNumber))
    paths = {
        "rtstruct": out / "rtstruct.dcm",
        "ko": out / "ko.dcm",
        "gsps": out / "gsps.dcm",
        "basic_text_sr": out / "basic-text-sr.dcm",
    }
    write_rtstruct(cts, center_lps, paths["rtstruct"])
    write_key_objects(cts, paths["ko"])
    write_presentation_state(cts, paths["gsps"])
    write_basic_text_sr(cts, paths["basic_text_sr"])
    return paths
