"""The outcome document of a refused analysis: valid SR, the words and numbers, the series."""

from __future__ import annotations

from pathlib import Path

import pydicom

from inference.outcome_sr import OUTCOME_SR_NAME, write_outcome_sr
from inference.tasks import AnalysisError
from pancreas_contracts.result import BundleRef
from pancreas_contracts.status import StudyStatus
from tests.inference import _writers_fixtures as fx

writer_case = fx.writer_case
_BUNDLE = BundleRef(name="demo", version="1.2", sha256="ab" * 32)


def _texts(ds: pydicom.Dataset) -> list[str]:
    return [str(item.get("TextValue", "")) for item in ds.ContentSequence]


def test_refusal_document_states_status_reason_and_numbers(
    writer_case: fx.WriterCase, tmp_path: Path
) -> None:
    error = AnalysisError(
        "not-localised",
        "not located",
        details={"confidence": 0.11, "localisers_apart_mm": 148.0, "limit_mm": 40.0},
    )
    path = write_outcome_sr(
        writer_case.files,
        tmp_path,
        status=StudyStatus.REFUSED,
        reason=error.reason,
        details=error.details,
        bundle=_BUNDLE,
        details_text=error.details_text(),
    )
    assert path == tmp_path / OUTCOME_SR_NAME
    assert fx.dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR"
    assert ds.StudyInstanceUID == writer_case.series.study_instance_uid
    assert ds.SeriesDescription.startswith("PancreasAI ai-refused")
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == writer_case.series.series_instance_uid
    texts = _texts(ds)
    assert texts[0].startswith("ai-refused")
    assert "not-localised" in texts
    assert "confidence 0.11, localisers_apart_mm 148, limit_mm 40" in texts
    assert "Investigational, not for clinical use." in texts
    assert any(t.startswith("1.2") for t in texts)
