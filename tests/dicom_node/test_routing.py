"""Routing rules: conditions, reasons, loading errors and the ``rules test`` CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dicom_node.routing import RuleAction, SeriesFacts, load_rules
from pancreas_node.cli import main
from tests.dicom_node.conftest import TEST_RULES, PhantomSeries


def facts(**changes: object) -> SeriesFacts:
    base = SeriesFacts(
        modality="CT",
        sop_class="CT Image Storage",
        num_slices=200,
        slice_thickness_mm=1.0,
        body_part="ABDOMEN",
        series_description="PV 1.0mm",
        calling_ae="CT01",
        contrast_phase=lambda: ("portal-venous", "PV 180 HU >= aorta 170 HU"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_default_rules_analyse_a_portal_venous_abdominal_ct() -> None:
    decision = load_rules().evaluate(facts())
    assert decision.action is RuleAction.ANALYZE
    assert decision.rule == "portal-venous abdominal CT"
    assert any("contrast phase portal-venous" in r for r in decision.reasons)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"modality": "MR"}, "Modality 'MR' not in"),
        ({"num_slices": 12}, "12 slices < 40"),
        ({"slice_thickness_mm": 5.0}, "slice thickness 5 mm > 3 mm"),
        ({"slice_thickness_mm": None}, "slice thickness unknown"),
        ({"body_part": "HEAD"}, "BodyPartExamined 'HEAD' not in"),
        ({"series_description": "Topogram 0.6 T20f"}, "excluded pattern"),
        (
            {"contrast_phase": lambda: ("arterial", "aorta 320 HU >> PV 120 HU")},
            "contrast phase arterial not in",
        ),
    ],
)
def test_default_rules_ignore_with_the_reason(change: dict[str, object], why: str) -> None:
    decision = load_rules().evaluate(facts(**change))
    assert decision.action is RuleAction.IGNORE
    assert decision.rule is None
    assert why in decision.summary


def test_the_thickness_reason_says_where_the_value_came_from() -> None:
    derived = "SliceThickness empty: derived from ImagePositionPatient spacing"
    decision = load_rules().evaluate(facts(slice_thickness_source=derived))
    assert decision.action is RuleAction.ANALYZE
    assert f"slice thickness 1 mm ({derived}) within limits" in decision.reasons
    decision = load_rules().evaluate(facts(slice_thickness_mm=5.0, slice_thickness_source=derived))
    assert f"slice thickness 5 mm ({derived}) > 3 mm" in decision.summary


def test_contrast_phase_is_only_measured_when_needed() -> None:
    calls: list[int] = []

    def phase() -> tuple[str, str]:
        calls.append(1)
        return "portal-venous", ""

    load_rules().evaluate(facts(modality="MR", contrast_phase=phase))
    assert calls == []


def test_invalid_rules_give_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nname = "x"\naction = "explode"\n')
    with pytest.raises(ValueError, match=r"invalid routing rules .*rules\.0\.action"):
        load_rules(bad)
    bad.write_text(
        '[[rules]]\nname = "x"\naction = "analyze"\n'
        '[rules.when]\nseries_description_excludes = "("\n'
    )
    with pytest.raises(ValueError, match="invalid regular expression"):
        load_rules(bad)
    with pytest.raises(ValueError, match="cannot read routing rules"):
        load_rules(tmp_path / "missing.toml")


def test_rules_test_cli(
    tmp_path: Path, ct_series: PhantomSeries, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(TEST_RULES)
    assert main(["rules", "test", str(ct_series.files[0]), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "decision: analyze" in out
    assert f"{len(ct_series.files)} slices within limits" in out
    assert main(["rules", "test", str(tmp_path / "nope.dcm")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pancreas-node: error:")
