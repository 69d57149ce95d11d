"""The plugin's worklist: status words with their reasons, filters, sorting, bad queries."""

from __future__ import annotations

from datetime import date

import pytest

from db import RoutingDecision
from orthanc_plugin._worklist import parse_worklist_query, worklist_page
from pancreas_contracts import JobState
from pancreas_contracts.status import StudyStatus
from tests.orthanc_plugin.unit_helpers import T0, entry, job


def test_worklist_lists_every_status_word_with_its_reason() -> None:
    refusal = "refused: not-localised: confidence 0.07, localisers_apart_mm 148, limit_mm 40"
    entries = [
        entry("1", None, series_routing=((RoutingDecision.SKIP, "slice thickness 8 mm > 5"),)),
        entry("2", None, job=job(JobState.DELIVERED, minutes=2, reason=refusal)),
        entry(
            "3",
            None,
            job=job(JobState.FAILED, minutes=3, reason="failed at bundle after 1 attempt: x"),
        ),
        entry("4", None, series_routing=((RoutingDecision.PENDING, None),)),
        entry("5", None),
    ]
    for word in StudyStatus:  # every word is accepted (ai-skipped was a 400)
        parse_worklist_query({"status": word.value})
    page = worklist_page(entries, parse_worklist_query({"sort": "study_date"}))
    items = {i["study_instance_uid"]: i for i in page["items"]}
    assert {u: (i["ai_status"], i["reason"]) for u, i in items.items()} == {
        "1": ("ai-skipped", "slice thickness 8 mm > 5"),
        "2": ("ai-refused", refusal.removeprefix("refused: ")),
        "3": ("ai-failed", "failed at bundle after 1 attempt: x"),
        "4": ("ai-pending", "series not complete yet"),
        "5": ("none", None),
    }
    assert items["2"]["status_text"] == "AI refused" and items["2"]["category"] is None
    skipped = worklist_page(entries, parse_worklist_query({"status": "ai-skipped,ai-refused"}))
    assert sorted(i["study_instance_uid"] for i in skipped["items"]) == ["1", "2"]


def test_worklist_filters_and_sorts() -> None:
    entries = [
        entry("1", JobState.DONE, category=0, probabilities=(0.8, 0.1, 0.1)),
        entry(
            "2",
            JobState.DELIVERED,
            category=2,
            probabilities=(0.1, 0.1, 0.8),
            board_id=1,
            board_date=date(2026, 2, 1),
            decision_category="locally-advanced",
            decided_at=T0,
            review_verdict="override",
            reviewer="orthanc:dr-b",
            review_category="locally-advanced",
        ),
        entry(
            "3",
            JobState.QUEUED,
            board_id=2,
            board_date=date(2026, 1, 15),
            review_verdict="agree",
        ),
        entry("4", None, board_id=3, board_date=date(2026, 3, 1)),
    ]

    def uids(**query: str) -> list[str]:
        page = worklist_page(entries, parse_worklist_query(query))
        return [item["study_instance_uid"] for item in page["items"]]

    assert uids() == ["3", "2", "1", "4"]  # job last changed, newest first; no job last
    assert uids(sort="board_date", order="asc") == ["3", "2", "4", "1"]
    assert uids(status="ai-done") == ["2", "1"]
    assert uids(status="ai-pending,none") == ["3", "4"]
    assert uids(category="locally-advanced") == ["2"]
    assert uids(category="none") == ["3", "4"]
    assert uids(decision="decided") == ["2"]
    assert uids(decision="none") == ["1"]
    assert uids(decision="pending", sort="decision") == ["3", "4"]
    assert uids(sort="decision", order="asc") == ["2", "3", "4", "1"]  # decided, pending, none
    assert uids(board="1,3") == ["2", "4"]
    assert uids(review="override") == ["2"]
    assert uids(review="agree,none") == ["3", "1", "4"]
    assert uids(sort="review", order="asc") == ["3", "2", "1", "4"]
    assert uids(sort="board", order="desc") == ["4", "3", "2", "1"]
    assert uids(board_from="2026-01-20", board_to="2026-02-28") == ["2"]
    assert uids(limit="1", offset="1") == ["2"]
    page = worklist_page(entries, parse_worklist_query({}), lambda uid: f"orthanc-{uid}")
    item = next(i for i in page["items"] if i["study_instance_uid"] == "2")
    assert item["category"] == "locally-advanced"
    assert item["review"] == {
        "verdict": "override",
        "category": "locally-advanced",
        "reviewer": "orthanc:dr-b",
    }
    assert item["decision"] == {
        "state": "decided",
        "category": "locally-advanced",
        "decided_at": T0.isoformat(),
    }
    unboarded = next(i for i in page["items"] if i["study_instance_uid"] == "1")
    assert unboarded["board"] is None and unboarded["review"] is None
    assert unboarded["decision"] == {"state": "none", "category": None, "decided_at": None}
    assert item["probabilities"]["locally advanced"] == 0.8
    assert item["orthanc_study_id"] == "orthanc-2" and item["board"]["date"] == "2026-02-01"
    assert page["total"] == 4


def test_worklist_shows_and_filters_by_the_pdac_likelihood() -> None:
    entries = [
        entry("1", JobState.DONE, category=0, probabilities=(0.8, 0.1, 0.1), pdac_likelihood=0.9),
        entry("2", JobState.DELIVERED, outcome="no-pdac", pdac_likelihood=0.2),
        entry("3", JobState.DONE, category=1, probabilities=(0.1, 0.8, 0.1)),  # no detector
    ]

    def uids(**query: str) -> list[str]:
        page = worklist_page(entries, parse_worklist_query(query))
        return [item["study_instance_uid"] for item in page["items"]]

    assert uids(min_pdac="0.5") == ["1"]
    assert uids(min_pdac="0") == ["2", "1"]
    assert uids(sort="pdac", order="asc") == ["2", "1", "3"]  # no likelihood last
    assert uids(status="ai-no-pdac") == ["2"]
    items = worklist_page(entries, parse_worklist_query({}))["items"]
    assert {i["study_instance_uid"]: i["pdac_likelihood"] for i in items} == {
        "1": 0.9,
        "2": 0.2,
        "3": None,
    }


@pytest.mark.parametrize(
    "query",
    [
        {"status": "done"},
        {"category": "stage-iv"},
        {"sort": "name"},
        {"order": "up"},
        {"limit": "0"},
        {"limit": "x"},
        {"board_from": "01/02/2026"},
        {"min_pdac": "1.5"},
        {"min_pdac": "high"},
        {"n_status": "N2"},
        {"sort": "n"},
        {"decision": "agree"},
        {"review": "disagree"},
        {"board": "HPB"},
        {"board": "1,x"},
    ],
)
def test_worklist_rejects_bad_queries(query: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(query))):
        parse_worklist_query(query)
