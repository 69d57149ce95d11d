"""gather_facts measures the contrast phase with the estimator it is given, in the rules' terms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dicom_node.routing import load_rules
from dicom_node.series_assembly import gather_facts
from inference import estimate_series_phase
from tests.dicom_node.conftest import PhantomSeries


def test_phantom_series_is_portal_venous_for_the_default_rules(ct_series: PhantomSeries) -> None:
    facts = gather_facts(ct_series.files, phase_estimator=estimate_series_phase)
    phase, detail = facts.contrast_phase()
    assert phase == "portal-venous", detail
    decision = load_rules().evaluate(facts)
    # The small test series fails the slice-count rule before the phase is looked at.
    assert "slices < 40" in decision.summary


def test_without_an_estimator_the_phase_is_unknown_and_says_why(ct_series: PhantomSeries) -> None:
    phase, reason = gather_facts(ct_series.files).contrast_phase()
    assert phase == "unknown"
    assert "estimator" in reason


def test_the_estimator_sees_the_series_files(ct_series: PhantomSeries) -> None:
    seen: list[Path] = []

    def estimator(paths: Sequence[Path]) -> tuple[str, str]:
        seen.extend(paths)
        return "arterial", "test"

    assert gather_facts(ct_series.files, phase_estimator=estimator).contrast_phase() == (
        "arterial",
        "test",
    )
    assert sorted(seen) == sorted(ct_series.files)
