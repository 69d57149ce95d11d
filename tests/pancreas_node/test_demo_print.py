"""What ``pancreas-node demo`` prints for a result without a category (issue 20/21)."""

from __future__ import annotations

from rich.console import Console

from pancreas_contracts.result import NO_TUMOR_NOTE, OUT_OF_DOMAIN_NOTE, AnalysisResult
from pancreas_node._demo import _print_result

_BASE = {
    "study_uid": "1.2.3",
    "series_uid": "1.2.3.4",
    "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
    "category": None,
    "measurements": {"tumor_volume_ml": 3.0, "contact_deg": {"SMA": 90.0}},
    "localisation": {"found": True, "confidence": 0.9},
}


def _printed(result: AnalysisResult) -> str:
    console = Console(record=True, width=200)
    _print_result(result, 1, console)
    return console.export_text()


def test_an_out_of_domain_result_says_the_category_is_withheld() -> None:
    result = AnalysisResult.model_validate(
        {
            **_BASE,
            "outcome": "out-of-domain",
            "domain": {"grade": "out-of-domain", "reasons": ("sma not segmented",)},
            "warnings": (OUT_OF_DOMAIN_NOTE,),
        }
    )
    text = _printed(result)
    assert f"NCCN category: none ({OUT_OF_DOMAIN_NOTE})" in text
    assert NO_TUMOR_NOTE not in text


def test_a_no_tumor_result_says_there_is_no_tumor() -> None:
    result = AnalysisResult.model_validate(
        {**_BASE, "outcome": "no-tumor", "measurements": {}, "warnings": (NO_TUMOR_NOTE,)}
    )
    assert f"NCCN category: none ({NO_TUMOR_NOTE})" in _printed(result)
