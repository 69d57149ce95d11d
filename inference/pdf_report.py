"""One-page PDF report of an analysis, and its Encapsulated PDF DICOM object (PS3.3 A.45.1).

The page (A4, drawn by matplotlib's PDF backend in :mod:`inference._pdf_layout`) is for humans
and for PACS that cannot render SR: key axial slices of the CT with the tumor and key vessels
coloured as in :data:`pancreas_contracts.labels.LABELS`, the NCCN category with its class
probabilities and uncertainty, the contact-angle rule category with a disagreement warning,
each key vessel's contact angle with the rule threshold, tumor volume and diameter, the
clinical inputs used/missing/imputed, the model bundle and the investigational notice.

:func:`encapsulate_pdf` wraps the PDF as Encapsulated PDF Storage in the source study (new
series, modality DOC). highdicom 0.28 has no encapsulated-document class, so the object is a
highdicom ``SOPClass`` (Patient, General Study, General Equipment, SOP Common modules) with the
Encapsulated Document Series (C.24.1), SC Equipment (C.8.6.1) and Encapsulated Document
(C.24.2) modules filled here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from inference._pdf_layout import KeySlice, draw_report
from inference._writer_common import (
    SourceImages,
    device_serial_number,
    load_source_headers,
    node_software_version,
    save_atomically,
)
from inference.dicom_codes import (
    MANUFACTURER,
    PDF_DOCUMENT_TITLE,
    PDF_SERIES_DESCRIPTION,
    PDF_SERIES_NUMBER,
    PDF_TITLE_CODE,
)
from inference.volume import Volume, nonzero_box, to_canonical
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import KEY_VESSEL_LABELS, AnalysisResult

__all__ = [
    "PDF_MIME_TYPE",
    "encapsulate_pdf",
    "key_slices",
    "render_report_pdf",
    "write_pdf_report",
]

PDF_MIME_TYPE: Final = "application/pdf"
#: Margin (mm) kept around the pancreas and tumor when the key slices are cropped.
CROP_MARGIN_MM: Final = 30.0


def key_slices(label: Volume, count: int = 3, vessels: Sequence[str] = ()) -> list[int]:
    """Axial slice indices (``k`` of the canonical grid) worth showing.

    First the slice with the largest tumor cross-section, then for each of ``vessels`` (label
    names, most important first) the slice where the tumor touches that vessel most (tumor
    voxels dilated by one voxel in-plane, overlapping the vessel), then slices at a quarter
    and three quarters of the tumor's cranio-caudal extent until ``count`` are chosen. The
    pancreas stands in when there is no tumor, the middle slice when there is neither.
    Indices are distinct and sorted cranial first.
    """
    return [k for k, _ in _key_slices(to_canonical(label), count, vessels)]


def _key_slices(canonical: Volume, count: int, vessels: Sequence[str]) -> list[tuple[int, str]]:
    """:func:`key_slices` with the reason each slice was chosen."""
    for name in ("tumor", "pancreas"):
        entry = label_by_name(name)
        mask = canonical.array == entry.value
        areas = mask.sum(axis=(0, 1))
        if not areas.any():
            continue
        picks = {int(np.argmax(areas)): f"Largest {entry.display.lower()} section"}
        # The rim lies within one in-plane voxel of the tumor: dilating and counting in that
        # box (not the whole CT, most of this stage's time at 300 slices) gives the same
        # per-slice counts, zero elsewhere.
        box = nonzero_box(mask, (1, 1, 0)) if name == "tumor" and vessels else None
        if box is not None:
            rim = ndimage.binary_dilation(mask[box], structure=np.ones((3, 3, 1), dtype=bool))
            part = canonical.array[box]
            for vessel in vessels:
                other = label_by_name(vessel)
                touch = np.zeros_like(areas)
                touch[box[2]] = (rim & (part == other.value)).sum(axis=(0, 1))
                if touch.any():
                    picks.setdefault(int(np.argmax(touch)), f"Tumor contact: {other.display}")
        present = np.flatnonzero(areas)
        lo, hi = int(present[0]), int(present[-1])
        for fraction in (0.25, 0.75, 0.5, 0.1, 0.9):
            k = round(lo + fraction * (hi - lo))
            picks.setdefault(k, f"{entry.display} at {fraction:.0%} of its extent")
        chosen = list(picks.items())[:count]
        return sorted(chosen, reverse=True)
    return [(canonical.shape[2] // 2, "Middle slice (no pancreas or tumor)")]


def _crop_box(
    labels: npt.NDArray[np.generic], spacing: tuple[float, float, float]
) -> tuple[slice, slice]:
    values = [label_by_name(n).value for n in ("pancreas", "tumor")]
    # Searched inside the labels' own box: a pass over the whole grid cost 0.1-0.5 s.
    box = nonzero_box(labels)
    if box is None:
        return slice(None), slice(None)
    mask = np.isin(labels[box], values).any(axis=2)
    if not mask.any():
        return slice(None), slice(None)
    ii, jj = np.nonzero(mask)
    ii += box[0].start
    jj += box[1].start
    margins = [int(np.ceil(CROP_MARGIN_MM / s)) for s in spacing[:2]]
    lo = [max(int(ii.min()) - margins[0], 0), max(int(jj.min()) - margins[1], 0)]
    hi = [
        min(int(ii.max()) + margins[0] + 1, labels.shape[0]),
        min(int(jj.max()) + margins[1] + 1, labels.shape[1]),
    ]
    # Square in millimetres, so the three panels share one scale and shape.
    extent = max((hi[a] - lo[a]) * spacing[a] for a in range(2))
    for a in range(2):
        want = int(np.ceil(extent / spacing[a]))
        grow = want - (hi[a] - lo[a])
        lo[a] = max(lo[a] - grow // 2, 0)
        hi[a] = min(lo[a] + want, labels.shape[a])
        lo[a] = max(hi[a] - want, 0)
    return slice(lo[0], hi[0]), slice(lo[1], hi[1])


def _prepare_slices(
    image: Volume, label: Volume, count: int, vessels: Sequence[str]
) -> list[KeySlice]:
    ct = to_canonical(image)
    labels = to_canonical(label)
    if ct.shape != labels.shape or not np.allclose(ct.affine, labels.affine, atol=1e-3):
        raise ValueError("image and label map must lie on the same grid")
    si, sj, _ = ct.spacing
    box_i, box_j = _crop_box(labels.array, ct.spacing)
    out = []
    for k, reason in _key_slices(labels, count, vessels):
        # Canonical (i right, j anterior) -> display rows anterior first, columns right first.
        ct_slice = np.asarray(ct.array[box_i, box_j, k], dtype=np.float32)[::-1, ::-1].T
        label_slice = np.asarray(labels.array[box_i, box_j, k])[::-1, ::-1].T
        z_mm = float(ct.voxel_to_world([[0, 0, k]])[0, 2])
        out.append(
            KeySlice(
                ct=np.ascontiguousarray(ct_slice),
                labels=np.ascontiguousarray(label_slice),
                aspect=sj / si,
                z_mm=z_mm,
                reason=reason,
                index=k,
                count=ct.shape[2],
            )
        )
    return out


def render_report_pdf(
    result: AnalysisResult,
    image: Volume,
    label: Volume,
    *,
    header: Dataset | None = None,
    generated: dt.datetime | None = None,
    slices: int = 3,
) -> bytes:
    """Draw the one-page report and return the PDF file's bytes.

    Parameters
    ----------
    result
        The analysis result (everything in the tables comes from it).
    image
        The CT volume in HU.
    label
        The label map on the same grid as ``image`` (any axis order).
    header
        A source image header for the patient and study lines (optional).
    generated
        Timestamp printed on the page (default: now, local time).
    slices
        Number of key slices shown: the largest tumor cross-section, then the slices where
        the tumor touches the vessels with the largest contact angles (see
        :func:`key_slices`).

    Raises
    ------
    ValueError
        If ``image`` and ``label`` are not on one grid.
    """
    when = (generated or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    contact = result.measurements.contact_deg
    touched = sorted(
        (v for v in contact if (contact[v] or 0.0) > 0.0), key=lambda v: -(contact[v] or 0.0)
    )
    vessels = [KEY_VESSEL_LABELS[v] for v in touched]
    return draw_report(
        result,
        _prepare_slices(image, label, slices, vessels),
        header,
        software=node_software_version(),
        generated=when,
    )


def encapsulate_pdf(
    pdf: bytes,
    headers: Sequence[Dataset],
    result: AnalysisResult,
    *,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> hd.base.SOPClass:
    """Wrap PDF bytes as an Encapsulated PDF Storage instance in the source study.

    Parameters
    ----------
    pdf
        The PDF file's bytes.
    headers
        Source image headers: patient and study attributes are copied from the first, and all
        are listed in the Source Instance Sequence.
    result
        The analysis result (model bundle for the equipment attributes).
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).

    Returns
    -------
    highdicom.base.SOPClass
        The data set, ready to save.

    Raises
    ------
    ValueError
        If ``pdf`` does not start with ``%PDF`` or there is no source header.
    """
    if not pdf.startswith(b"%PDF"):
        raise ValueError("not a PDF document")
    if not headers:
        raise ValueError("no source header to take the patient and study from")
    first = headers[0]
    ds = hd.base.SOPClass(
        study_instance_uid=str(first.StudyInstanceUID),
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=PDF_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        sop_class_uid=EncapsulatedPDFStorage,
        instance_number=1,
        modality="DOC",
        manufacturer=MANUFACTURER,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=PDF_SERIES_DESCRIPTION,
        manufacturer_model_name=result.bundle.name,
        software_versions=node_software_version(),
        device_serial_number=device_serial_number(result.bundle),
    )
    ds.copy_patient_and_study_information(first)
    # SC Equipment module (C.8.6.1): produced by software on a workstation.
    ds.ConversionType = "WSD"
    # Encapsulated Document module (C.24.2); SOPClass has set Content Date and Time.
    ds.AcquisitionDateTime = None
    ds.BurnedInAnnotation = "YES"  # the page names the patient
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = PDF_DOCUMENT_TITLE
    ds.ConceptNameCodeSequence = [hd.sr.CodedConcept.from_code(PDF_TITLE_CODE)]
    sources = []
    for header in headers:
        item = Dataset()
        item.ReferencedSOPClassUID = header.SOPClassUID
        item.ReferencedSOPInstanceUID = header.SOPInstanceUID
        sources.append(item)
    ds.SourceInstanceSequence = sources
    ds.MIMETypeOfEncapsulatedDocument = PDF_MIME_TYPE
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    return ds


def write_pdf_report(
    result: AnalysisResult,
    image: Volume,
    label: Volume,
    source: SourceImages,
    out_path: Path,
    *,
    pdf_path: Path | None = None,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> str:
    """Render the report, write it as Encapsulated PDF DICOM, return its SOP Instance UID.

    Parameters
    ----------
    result, image, label
        As for :func:`render_report_pdf`.
    source
        The source CT series (directory, files or header data sets).
    out_path
        DICOM file to write (all or nothing).
    pdf_path
        Also write the bare PDF here (e.g. ``report.pdf`` beside ``result.json``).
    sop_instance_uid, series_instance_uid
        UIDs of the new object (default: new UIDs).
    """
    headers = load_source_headers(source, result.series_uid)
    pdf = render_report_pdf(result, image, label, header=headers[0])
    ds = encapsulate_pdf(
        pdf,
        headers,
        result,
        sop_instance_uid=sop_instance_uid,
        series_instance_uid=series_instance_uid,
    )
    if pdf_path is not None:
        pdf_path.parent.mkdir(parents=True, exist_ok=True)
        partial = pdf_path.with_name(f".{pdf_path.name}.partial")
        partial.write_bytes(pdf)
        partial.replace(pdf_path)
    save_atomically(ds, out_path)
    return str(ds.SOPInstanceUID)
