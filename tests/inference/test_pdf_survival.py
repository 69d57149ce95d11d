"""The survival prognosis in the PDF report (issue 25, item 4; result schema 1.7).

The HFS phantom's result with a hand-made :class:`SurvivalPrognosis`, written with the real PDF
writer: the Encapsulated PDF passes dciodvfy, the prognosis page (after the lymph-node page
when there is one) holds the risk line, the table, the TNM inputs, the inputs missing, the model
version and the notice, the first page names the risk group, and the plot holds the reference
curves and the patient's predicted survival. A result without a prognosis keeps one page.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from inference._pdf_survival import PLOT_MONTHS, survival_plot
from inference.pdf_report import render_report_pdf, write_pdf_report
from pancreas_contracts.lymph_nodes import LymphNodeAssessment
from pancreas_contracts.prognosis import KaplanMeierCurve
from pancreas_contracts.result import AnalysisResult
from tests.inference import _writers_fixtures as fx
from tests.inference._survival_fixtures import make_prognosis, with_prognosis


@dataclass(frozen=True)
class _Written:
    case: fx.WriterCase
    result: AnalysisResult
    dicom_path: Path
    pdf_path: Path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> _Written:
    """The HFS phantom's report with the hand-made prognosis, as DICOM and as a bare PDF."""
    root = tmp_path_factory.mktemp("survival-pdf")
    case = fx.make_case(root / "phantom", "HFS")
    result = with_prognosis(case.result, make_prognosis())
    dicom_path, pdf_path = root / "report.dcm", root / "report.pdf"
    write_pdf_report(
        result, case.series.volume, case.label, case.dicom_dir, dicom_path, pdf_path=pdf_path
    )
    return _Written(case, result, dicom_path, pdf_path)


def _pages(pdf: Path | bytes) -> list[str]:
    """Each page's text, whitespace collapsed (skipped where poppler is absent)."""
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    data = pdf.read_bytes() if isinstance(pdf, Path) else pdf
    text = subprocess.run(
        [pdftotext, "-layout", "-", "-"], input=data, check=True, capture_output=True
    ).stdout.decode()
    return [" ".join(page.split()) for page in text.split("\f") if page.strip()]


@pytest.mark.integration
def test_the_pdf_object_with_a_prognosis_passes_dciodvfy(written: _Written) -> None:
    assert fx.dciodvfy_errors(written.dicom_path) == []
    fx.dcmdump_reads(written.dicom_path)


def test_the_prognosis_page_says_the_risk_group_and_its_numbers(written: _Written) -> None:
    prognosis = written.result.prognosis
    assert prognosis is not None
    first, page = _pages(written.pdf_path)
    assert "Survival prognosis (survival-fusion 0.2.0): high risk" in first
    assert "details on page 2" in first
    assert prognosis.describe() in page
    assert prognosis.describe() == (
        "high risk (death by 1/2/3 years 0.41/0.72/0.86; cut-off 0.80 at 3 years)"
    )
    assert "Horizon Fusion radiomics densenet clinical" in page
    assert "1 year 0.41 0.38 0.45 0.40" in page
    assert "2 years 0.72 0.70 0.75 0.69" in page
    assert "3 years 0.86 0.84 0.88 0.83" in page
    assert "T: T3 (source: node); N: N+ (source: lymph-node-model); M: missing" in page
    assert "Inputs missing (imputed from the training folds): M, ca19_9_baseline" in page
    assert "Model survival-fusion 0.2.0" in page
    assert "Warning: phantom study: synthetic follow-up" in page
    assert "Investigational, not for clinical use" in page
    assert "Months from diagnosis" in page and "This patient (predicted)" in page


def test_a_result_without_prognosis_keeps_one_page(written: _Written) -> None:
    case = written.case
    assert case.result.prognosis is None
    (page,) = _pages(render_report_pdf(case.result, case.series.volume, case.label))
    assert "Survival prognosis" not in page and "survival" not in page.lower()


def test_the_prognosis_page_follows_the_lymph_node_page(written: _Written) -> None:
    nodes = LymphNodeAssessment(
        model_version="stand-in 1", n_positive_probability=0.2, threshold=0.5, n_estimate="N0",
        inputs_used=("ct",), inputs_missing=(), nodes=(),
    )  # fmt: skip
    low = make_prognosis((0.2, 0.45, 0.6)).model_copy(
        update={"reference_curves": (), "components": {}, "warnings": ()}
    )
    result = AnalysisResult.model_validate(
        {**with_prognosis(written.case.result, low).model_dump(), "lymph_nodes": nodes.model_dump()}
    )
    pdf = render_report_pdf(result, written.case.series.volume, written.case.label)
    first, lymph, survival = _pages(pdf)
    assert "details on page 3" in first
    assert "N estimate: N0" in lymph and "Survival prognosis" not in lymph
    assert low.describe() in survival and low.describe().startswith("low risk")
    assert "Horizon Fusion 1 year 0.20 2 years 0.45 3 years 0.60" in survival  # no component


def test_the_plot_shows_the_reference_curves_and_the_patients_survival() -> None:
    prognosis = make_prognosis().model_copy(
        update={
            "reference_curves": (
                *make_prognosis().reference_curves,
                KaplanMeierCurve(label="late start", months=(3.0, 30.0), survival=(0.9, 0.5)),
            )
        }
    )
    ax = Figure().add_subplot()
    survival_plot(ax, prognosis)
    lines = {str(line.get_label()): line for line in ax.get_lines()}
    patient = lines["This patient (predicted)"]
    np.testing.assert_allclose(np.asarray(patient.get_xdata(), float), [0, 12, 24, 36])
    np.testing.assert_allclose(np.asarray(patient.get_ydata(), float), [1, 0.59, 0.28, 0.14])
    high = lines["high risk (training, Kaplan-Meier)"]
    assert high.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(np.asarray(high.get_ydata(), float), [1.0, 0.8, 0.55, 0.25, 0.1])
    assert "low risk (training, Kaplan-Meier)" in lines
    late = lines["late start (training, Kaplan-Meier)"]  # survival is 1 before the first step
    np.testing.assert_allclose(np.asarray(late.get_xdata(), float), [0, 3, 30])
    np.testing.assert_allclose(np.asarray(late.get_ydata(), float), [1, 0.9, 0.5])
    assert ax.get_xlim() == PLOT_MONTHS and ax.get_ylim() == (0.0, 1.0)
