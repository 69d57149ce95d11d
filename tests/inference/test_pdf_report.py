"""PDF report: a valid one-page PDF, wrapped as Encapsulated PDF Storage that validates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import EncapsulatedPDFStorage
from scipy import ndimage

from inference import Volume
from inference.pdf_report import PDF_MIME_TYPE, encapsulate_pdf, key_slices, render_report_pdf
from pancreas_contracts.labels import label_by_name
from phantom import VESSEL_LABELS
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case
written = fx.written


@pytest.mark.integration
def test_pdf_object_passes_dciodvfy_and_dcmdump(written: fx.Written) -> None:
    assert fx.dciodvfy_errors(written.pdf_dicom_path) == []
    fx.dcmdump_reads(written.pdf_dicom_path)


def test_encapsulated_pdf_attributes(written: fx.Written) -> None:
    ds = pydicom.dcmread(written.pdf_dicom_path)
    pdf = written.pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert str(ds.SOPInstanceUID) == written.pdf_uid
    assert ds.SOPClassUID == EncapsulatedPDFStorage
    assert ds.Modality == "DOC"
    assert ds.MIMETypeOfEncapsulatedDocument == PDF_MIME_TYPE == "application/pdf"
    assert int(ds.EncapsulatedDocumentLength) == len(pdf)
    assert bytes(ds.EncapsulatedDocument)[: len(pdf)] == pdf
    assert len(ds.EncapsulatedDocument) % 2 == 0
    assert ds.DocumentTitle == "PancreasAI CT pancreas report (investigational)"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "41806-1"
    assert ds.StudyInstanceUID == written.case.series.study_instance_uid
    assert ds.SeriesInstanceUID != written.case.series.series_instance_uid
    assert ds.PatientID == pydicom.dcmread(written.case.files[0]).PatientID
    sources = {str(item.ReferencedSOPInstanceUID) for item in ds.SourceInstanceSequence}
    assert sources == set(written.case.series.sop_instance_uids)


def test_page_renders(written: fx.Written, tmp_path: Path) -> None:
    """One A4 page with the disclaimer and the category (skipped where poppler is absent)."""
    pdftoppm, pdftotext = shutil.which("pdftoppm"), shutil.which("pdftotext")
    if pdftoppm is None or pdftotext is None:
        pytest.skip("poppler-utils (pdftoppm, pdftotext) not installed")
    prefix = tmp_path / "page"
    subprocess.run(
        [pdftoppm, "-r", "50", "-png", str(written.pdf_path), str(prefix)],
        check=True,
        capture_output=True,
    )
    (page,) = sorted(tmp_path.glob("page*.png"))  # exactly one page
    with Image.open(page) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert height / width == pytest.approx(297 / 210, rel=0.02)
    assert (pixels.min(axis=2) < 128).mean() > 0.02  # not blank: images and text drawn
    text = subprocess.run(
        [pdftotext, "-layout", str(written.pdf_path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = written.case.result
    assert "Investigational, not for clinical use." in text
    assert result.bundle.sha256 in text
    for name in result.clinical.used:
        assert name in text
    shown = {"resectable": "Resectable", "borderline": "Borderline resectable"}
    assert shown.get(result.category.label, "Locally advanced") in text
    assert ("disagree" in text) == result.disagreement


def test_key_slices_show_the_tumor(writer_case: fx.WriterCase) -> None:
    label = writer_case.label
    tumor = label.array == label_by_name("tumor").value
    areas = tumor.sum(axis=(0, 1))
    picks = key_slices(label)
    assert len(picks) == 3 == len(set(picks))
    assert int(np.argmax(areas)) in picks
    assert all(areas[k] > 0 for k in picks)
    contact = writer_case.result.measurements.contact_deg
    vessel = max(contact, key=lambda v: contact[v] or 0.0)
    vessel_value = label_by_name(VESSEL_LABELS[vessel]).value
    rim = ndimage.binary_dilation(tumor, structure=np.ones((3, 3, 1), dtype=bool))
    touch = (rim & (label.array == vessel_value)).sum(axis=(0, 1))
    with_vessel = key_slices(label, vessels=[VESSEL_LABELS[vessel]])
    assert int(np.argmax(areas)) in with_vessel
    assert int(np.argmax(touch)) in with_vessel
    no_tumor = np.where(tumor, label_by_name("pancreas").value, label.array)
    pancreas = (no_tumor == label_by_name("pancreas").value).sum(axis=(0, 1))
    assert int(np.argmax(pancreas)) in key_slices(Volume(no_tumor, label.affine))
    empty = Volume(np.zeros_like(label.array), label.affine)
    assert key_slices(empty) == [label.shape[2] // 2]


def test_render_refuses_mismatched_grids(writer_case: fx.WriterCase) -> None:
    label = writer_case.label
    cropped = Volume(label.array[:, :, 1:], label.affine)
    with pytest.raises(ValueError, match="same grid"):
        render_report_pdf(writer_case.result, writer_case.series.volume, cropped)


def test_encapsulate_refuses_non_pdf(writer_case: fx.WriterCase) -> None:
    headers = list(fx.source_headers(writer_case))
    with pytest.raises(ValueError, match="PDF"):
        encapsulate_pdf(b"<html></html>", headers, writer_case.result)
    with pytest.raises(ValueError, match="source header"):
        encapsulate_pdf(b"%PDF-1.4\n", [], writer_case.result)


def test_a_one_model_bundle_shows_no_uncertainty(written: fx.Written) -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    result = written.case.result
    single = result.model_copy(
        update={"category": result.category.model_copy(update={"ensemble_size": 1})}
    )
    pdf = render_report_pdf(single, written.case.series.volume, written.case.label)
    text = subprocess.run(
        [pdftotext, "-layout", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()
    assert "none (single model)" in text
    assert "0.000" not in text


def test_a_no_tumor_result_says_staging_is_not_possible(written: fx.Written) -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    result = fx.no_tumor(written.case.result)
    pdf = render_report_pdf(result, written.case.series.volume, written.case.label)
    text = subprocess.run(
        [pdftotext, "-layout", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()
    assert "No tumor segmented: staging not possible" in text
    for word in ("Network category", "P(resectable)", "Uncertainty", "Rule category"):
        assert word not in text
    assert "not for clinical use" in text.lower()


def test_an_out_of_domain_result_shows_the_grade_and_no_category(written: fx.Written) -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    result = fx.out_of_domain(written.case.result)
    pdf = render_report_pdf(result, written.case.series.volume, written.case.label)
    text = " ".join(
        subprocess.run([pdftotext, "-layout", "-", "-"], input=pdf, check=True, capture_output=True)
        .stdout.decode()
        .split()
    )
    assert "CT out of the training domain: NCCN category withheld" in text
    assert "Training domain OUT OF DOMAIN" in text
    assert "sma not segmented (present in every training CT)" in text
    for word in ("Network category", "P(resectable)", "Rule category"):
        assert word not in text


def test_a_one_model_bundle_with_flip_passes_shows_their_spread(written: fx.Written) -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    result = written.case.result
    assert result.category is not None
    flipped = result.model_copy(
        update={"category": result.category.model_copy(update={"ensemble_size": 1, "passes": 4})}
    )
    pdf = render_report_pdf(flipped, written.case.series.volume, written.case.label)
    text = subprocess.run(
        [pdftotext, "-layout", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()
    assert "0.042 (4 flip passes)" in text
    assert "none (single model)" not in text


def test_fonts_are_embedded_subsets_with_a_unicode_map(written: fx.Written) -> None:
    """Type 3 subsets (no fontTools subsetting per report) that viewers and search still read."""
    pdffonts = shutil.which("pdffonts")
    if pdffonts is None:
        pytest.skip("poppler-utils (pdffonts) not installed")
    listing = subprocess.run(
        [pdffonts, str(written.pdf_path)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]  # two heading lines
    assert listing
    for line in listing:
        # name, type ("Type 3"), encoding, then emb / sub / uni and the object id.
        emb, sub, uni = line.split()[-5:-2]
        assert "Type 3" in line
        assert (emb, sub, uni) == ("yes", "yes", "yes"), line
