"""gather_facts measures the contrast phase from the image, in the rules' vocabulary."""

from __future__ import annotations

from dicom_node.routing import load_rules
from dicom_node.series_assembly import gather_facts
from tests.dicom_node.conftest import PhantomSeries


def test_phantom_series_is_portal_venous_for_the_default_rules(ct_series: PhantomSeries) -> None:
    facts = gather_facts(ct_series.files)
    phase, detail = facts.contrast_phase()
    assert phase == "portal-venous", detail
    decision = load_rules().evaluate(facts)
    # The small test series fails the slice-count rule before the phase is looked at.
    assert "slices < 40" in decision.summary
