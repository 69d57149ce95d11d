"""The survival prognosis in the SR (issue 25, item 4; result schema 1.7).

A hand-made :class:`SurvivalPrognosis` on the HFS phantom's result, written with the real SEG
and SR writers and read back with highdicom: the TID 1501 prognosis group holds the three death
probabilities, the cut-off and horizon, the coded risk group, the TNM inputs and the notes; the
object passes dciodvfy; a result without a prognosis gives the SR it gave before (no group).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from inference._sr_survival import TRACKING_IDENTIFIER
from inference.dicom_codes import (
    FINDING_SITE,
    QUALITATIVE_EVALUATIONS,
    SURVIVAL_DEATH_PROBABILITY,
    SURVIVAL_NOTE,
    SURVIVAL_PROGNOSIS,
    SURVIVAL_RISK_CUTOFF,
    SURVIVAL_RISK_GROUP,
    SURVIVAL_RISK_HORIZON,
    SURVIVAL_SUMMARY,
    TNM_INPUT_CODES,
)
from inference.seg_writer import write_seg
from inference.sr_writer import build_sr, write_sr
from pancreas_contracts.result import AnalysisResult
from tests.inference import _writers_fixtures as fx
from tests.inference._survival_fixtures import make_prognosis, with_prognosis

_SURVIVAL_CODES = {
    c.value
    for c in (
        SURVIVAL_PROGNOSIS,
        *SURVIVAL_DEATH_PROBABILITY,
        SURVIVAL_RISK_CUTOFF,
        SURVIVAL_RISK_GROUP,
        SURVIVAL_RISK_HORIZON,
        SURVIVAL_NOTE,
        SURVIVAL_SUMMARY,
        *TNM_INPUT_CODES.values(),
    )
}


@dataclass(frozen=True)
class _Written:
    case: fx.WriterCase
    result: AnalysisResult
    seg_path: Path
    sr_path: Path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> _Written:
    """The HFS phantom's SEG and the SR of its result with the hand-made prognosis."""
    root = tmp_path_factory.mktemp("survival-sr")
    case = fx.make_case(root / "phantom", "HFS")
    result = with_prognosis(case.result, make_prognosis())
    seg_path = root / "seg.dcm"
    write_seg(case.label, list(case.files), result, seg_path)
    sr_path = root / "sr.dcm"
    write_sr(result, seg_path, list(case.files), sr_path)
    return _Written(case, result, seg_path, sr_path)


def _same(concept: hd.sr.CodedConcept, code: Code) -> bool:
    return bool(concept.value == code.value and concept.scheme_designator == code.scheme_designator)


def _report(sr: Dataset) -> hd.sr.MeasurementReport:
    content = hd.sr.Comprehensive3DSR.from_dataset(sr).content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


def _group(sr: Dataset) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    (group,) = _report(sr).get_image_measurement_groups(finding_type=SURVIVAL_PROGNOSIS)
    return group


def _walk(items: Iterator[Dataset] | pydicom.Sequence) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _texts(sr: Dataset, code: Code) -> list[str]:
    return [
        str(i.TextValue)
        for i in _walk(sr.ContentSequence)
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == code.value
    ]


@pytest.mark.integration
def test_the_sr_with_a_prognosis_passes_dciodvfy(written: _Written) -> None:
    assert fx.dciodvfy_errors(written.sr_path) == []
    fx.dcmdump_reads(written.sr_path)


def test_the_group_holds_the_three_death_probabilities_and_the_risk_group(
    written: _Written,
) -> None:
    prognosis = written.result.prognosis
    assert prognosis is not None
    group = _group(pydicom.dcmread(written.sr_path))
    assert group.tracking_identifier == TRACKING_IDENTIFIER
    assert [_same(s.value, FINDING_SITE) for s in group.finding_sites] == [True]
    for code, expected in zip(SURVIVAL_DEATH_PROBABILITY, (0.41, 0.72, 0.86), strict=True):
        (measurement,) = group.get_measurements(name=code)
        assert measurement.value == pytest.approx(expected)
        assert (measurement.unit.value, measurement.unit.scheme_designator) == ("1", "UCUM")
    (cutoff,) = group.get_measurements(name=SURVIVAL_RISK_CUTOFF)
    assert cutoff.value == pytest.approx(0.8)
    (horizon,) = group.get_measurements(name=SURVIVAL_RISK_HORIZON)
    assert horizon.value == 3 and horizon.unit.value == "a"
    (risk,) = group.get_qualitative_evaluations(name=SURVIVAL_RISK_GROUP)
    assert _same(risk.value, codes.SCT.HighRisk) and risk.value.value == "15508007"


def test_the_group_names_the_model_and_its_inputs(written: _Written) -> None:
    sr = pydicom.dcmread(written.sr_path)
    (group_item,) = [
        i
        for i in _walk(sr.ContentSequence)
        if i.ValueType == "CONTAINER"
        and any(c.get("TextValue") == TRACKING_IDENTIFIER for c in i.get("ContentSequence", []))
    ]
    algorithm = {
        str(c.ConceptNameCodeSequence[0].CodeMeaning): str(c.TextValue)
        for c in group_item.ContentSequence
        if c.ValueType == "TEXT"
    }
    assert algorithm["Algorithm Name"] == "survival-fusion"
    assert algorithm["Algorithm Version"] == "0.2.0"
    assert _texts(sr, TNM_INPUT_CODES["T"]) == ["T3 (source: node)"]
    assert _texts(sr, TNM_INPUT_CODES["N"]) == ["N+ (source: lymph-node-model)"]
    assert _texts(sr, TNM_INPUT_CODES["M"]) == ["missing"]
    notes = _texts(sr, SURVIVAL_NOTE)
    assert "inputs used: ct, tumor_mask, sex, age, T, N" in notes
    assert "inputs missing: M, ca19_9_baseline" in notes
    assert "radiomics model: death by 1/2/3 years 0.38/0.70/0.84" in notes
    assert "phantom study: synthetic follow-up" in notes
    assert written.result.prognosis is not None
    assert _texts(sr, SURVIVAL_SUMMARY) == [
        f"Survival prognosis (survival-fusion 0.2.0): {written.result.prognosis.describe()}"
    ]


def test_a_low_risk_prognosis_is_coded_low_risk(written: _Written) -> None:
    result = with_prognosis(written.case.result, make_prognosis((0.2, 0.45, 0.6)))
    headers = list(fx.source_headers(written.case))
    sr = build_sr(result, pydicom.dcmread(written.seg_path), headers)
    (risk,) = _group(sr).get_qualitative_evaluations(name=SURVIVAL_RISK_GROUP)
    assert _same(risk.value, codes.SCT.LowRisk)
    (p3,) = _group(sr).get_measurements(name=SURVIVAL_DEATH_PROBABILITY[2])
    assert p3.value == pytest.approx(0.6)


def _is_prognosis(item: Dataset) -> bool:
    """The prognosis group (by its tracking identifier) or the one-line summary."""
    if item.ConceptNameCodeSequence[0].CodeValue == SURVIVAL_SUMMARY.value:
        return True
    return item.ValueType == "CONTAINER" and any(
        c.get("TextValue") == TRACKING_IDENTIFIER for c in item.get("ContentSequence", [])
    )


def _shape(items: pydicom.Sequence, skip_prognosis: bool) -> list[tuple[str, str, str]]:
    """The content tree without its UIDs, dates and times (new on every build)."""
    out = []
    for item in items:
        if skip_prognosis and _is_prognosis(item):
            continue
        name = item.ConceptNameCodeSequence[0]
        if item.ValueType not in ("UIDREF", "DATETIME", "DATE", "TIME"):
            value = item.get("TextValue") or ""
            if item.ValueType == "CODE":
                value = str(item.ConceptCodeSequence[0].CodeValue)
            elif item.ValueType == "NUM":
                value = str(item.MeasuredValueSequence[0].NumericValue)
            code = f"{name.CodingSchemeDesignator}:{name.CodeValue}"
            out.append((str(item.ValueType), code, str(value)))
        out += _shape(item.get("ContentSequence", []), skip_prognosis)
    return out


def test_a_result_without_prognosis_gives_the_sr_it_gave_before(written: _Written) -> None:
    headers = list(fx.source_headers(written.case))
    seg = pydicom.dcmread(written.seg_path)
    plain = written.case.result
    assert plain.prognosis is None
    before = build_sr(plain, seg, headers)
    after = build_sr(written.result, seg, headers)
    assert _report(before).get_image_measurement_groups(finding_type=SURVIVAL_PROGNOSIS) == []
    shape = _shape(before.ContentSequence, skip_prognosis=False)
    assert not any(code.split(":")[1] in _SURVIVAL_CODES for _, code, _ in shape)
    assert QUALITATIVE_EVALUATIONS.value in {code.split(":")[1] for _, code, _ in shape}
    # The prognosis adds one group and one line, and changes nothing else.
    assert _shape(after.ContentSequence, skip_prognosis=True) == shape
    assert len(_shape(after.ContentSequence, skip_prognosis=False)) > len(shape)
