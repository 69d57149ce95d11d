"""Tumor boards, their cases and decisions, auto rules and reviews (issue 26)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from db import (
    NewResult,
    NodeDatabase,
    add_case,
    claim_next_job,
    complete_job,
    create_board,
    enqueue_job,
    get_board,
    latest_review,
    list_audit_events,
    list_board_cases,
    list_boards,
    list_reviews,
    list_worklist,
    mark_correction_failed,
    mark_correction_written,
    pending_corrections,
    record_decision,
    record_instance,
    record_review,
    remove_case,
    reviewed_cases,
    update_board,
)
from db._types import utcnow
from pancreas_contracts.boards import (
    AutoRule,
    BoardCategory,
    BoardInput,
    CaseInput,
    DecisionInput,
    ReviewInput,
    ReviewVerdict,
    Treatment,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _receive(db: NodeDatabase, study: str, *, service: str | None = None) -> str:
    series = f"{study}.1"
    record_instance(
        db,
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=f"{series}.1",
        sop_class_uid=CT,
        transfer_syntax_uid=EXPLICIT_LE,
        spool_path=f"/spool/{series}.dcm",
        modality="CT",
        requesting_service=service,
    )
    return series


def _analyse(
    db: NodeDatabase,
    study: str,
    *,
    category: int | None = 1,
    outcome: str = "done",
    pdac: float | None = None,
    service: str | None = None,
) -> str:
    series = _receive(db, study, service=service)
    job = enqueue_job(db, series, 1, "bundle").job
    claimed = claim_next_job(db, "worker", 60)
    assert claimed is not None and claimed.id == job.id
    complete_job(
        db,
        job.id,
        "worker",
        NewResult(
            result_json_path="/r.json",
            bundle_name="b",
            bundle_version="1",
            bundle_sha256="bundle",
            category=category,
            probabilities=(0.2, 0.5, 0.3) if category is not None else (),
            outcome=outcome,
            pdac_likelihood=pdac,
        ),
    )
    return job.id


def _board(
    db: NodeDatabase, days: int = 3, rule: AutoRule | None = None, title: str = "HPB"
) -> int:
    board = create_board(
        db,
        BoardInput(
            board_date=utcnow().date() + timedelta(days=days),
            title=title,
            members=("Dr A (surgery)", " ", "Dr B (oncology)"),
            auto_rule=rule,
        ),
        actor="orthanc:admin",
    )
    return board.id


def test_board_inputs_are_valid_at_construction() -> None:
    with pytest.raises(ValidationError):
        BoardInput(board_date=date(2026, 1, 1), title="  ")
    with pytest.raises(ValidationError):
        AutoRule(outcomes=("done", "exploded"))
    with pytest.raises(ValidationError):
        CaseInput(study_instance_uid="1.2.abc")
    with pytest.raises(ValidationError, match="override needs"):
        ReviewInput(verdict=ReviewVerdict.OVERRIDE, category=BoardCategory.RESECTABLE)
    with pytest.raises(ValidationError, match="agreement takes no category"):
        ReviewInput(verdict=ReviewVerdict.AGREE, category=BoardCategory.RESECTABLE)
    decision = DecisionInput(
        category=BoardCategory.METASTATIC,
        treatments=(Treatment.PALLIATIVE_CHEMOTHERAPY, Treatment.PALLIATIVE_CHEMOTHERAPY),
        text="  ",
    )
    assert decision.treatments == (Treatment.PALLIATIVE_CHEMOTHERAPY,) and decision.text is None


def test_boards_cases_and_decisions_are_recorded_and_audited(node_db: NodeDatabase) -> None:
    job_id = _analyse(node_db, "1.1")
    board_id = _board(node_db)
    later = _board(node_db, days=10, title="Later")
    assert [b.id for b in list_boards(node_db)] == [board_id, later]
    assert [b.id for b in list_boards(node_db, date_from=utcnow().date() + timedelta(days=5))] == [
        later
    ]
    case, created = add_case(node_db, board_id, CaseInput(study_instance_uid="1.1"), actor="u")
    assert created and case.job_id == job_id and case.position == 1 and case.decision is None
    again, created = add_case(node_db, board_id, CaseInput(study_instance_uid="1.1"), actor="u")
    assert not created and again.position == 1
    unknown, _ = add_case(node_db, board_id, CaseInput(study_instance_uid="9.9"), actor="u")
    assert unknown.job_id is None and unknown.position == 2  # a study the node has not seen
    decided = record_decision(
        node_db,
        board_id,
        "1.1",
        DecisionInput(
            category=BoardCategory.BORDERLINE,
            treatments=(Treatment.NEOADJUVANT_THEN_SURGERY,),
            text="re-stage after 4 cycles",
        ),
        actor="orthanc:chair",
    )
    assert decided.decision is not None and decided.decision.decided_by == "orthanc:chair"
    info = get_board(node_db, board_id)
    assert info is not None and info.members == ("Dr A (surgery)", "Dr B (oncology)")
    assert (info.case_count, info.decided_count) == (2, 1)
    cases = list_board_cases(node_db, board_id)
    assert [c.study_instance_uid for c in cases] == ["1.1", "9.9"]
    assert cases[0].decision is not None
    assert cases[0].decision.treatments == (Treatment.NEOADJUVANT_THEN_SURGERY,)
    with pytest.raises(LookupError):
        record_decision(
            node_db, later, "1.1", DecisionInput(category=BoardCategory.RESECTABLE), actor="u"
        )
    with pytest.raises(LookupError):
        add_case(node_db, 999, CaseInput(study_instance_uid="1.1"), actor="u")
    assert remove_case(node_db, board_id, "9.9", actor="u")
    assert not remove_case(node_db, board_id, "9.9", actor="u")
    renamed = update_board(
        node_db, board_id, BoardInput(board_date=info.board_date, title="HPB MDT"), actor="u"
    )
    assert renamed.title == "HPB MDT" and renamed.case_count == 1
    actions = [e.action for e in list_audit_events(node_db, object_type="board")]
    assert actions.count("board.create") == 2 and "board.update" in actions
    assert actions.count("board.case.add") == 2 and actions.count("board.case.remove") == 1
    decision_event = next(
        e for e in list_audit_events(node_db, object_type="board") if e.action == "board.decision"
    )
    # The free text may hold clinical content: the audit trail has codes only.
    assert "re-stage" not in str(decision_event.detail)
    entry = {e.study_instance_uid: e for e in list_worklist(node_db)}["1.1"]
    assert entry.board_id == board_id and entry.decision_category == "borderline"


def test_auto_rule_puts_a_study_on_the_next_matching_board(node_db: NodeDatabase) -> None:
    strict = _board(node_db, days=1, rule=AutoRule(min_pdac_likelihood=0.8), title="strict")
    _board(node_db, days=-1, rule=AutoRule(), title="past")  # boards in the past never take one
    general = _board(node_db, days=5, rule=AutoRule(), title="general")
    hpb = _board(node_db, days=2, rule=AutoRule(referring_services=("HPB Surgery",)), title="hpb")
    _analyse(node_db, "1.1", pdac=0.9)
    _analyse(node_db, "2.1", pdac=0.5)
    _analyse(node_db, "3.1", pdac=0.5, service="hpb surgery")
    _analyse(node_db, "4.1", category=None, outcome="no-tumor")
    assert [c.study_instance_uid for c in list_board_cases(node_db, strict)] == ["1.1"]
    assert [c.study_instance_uid for c in list_board_cases(node_db, hpb)] == ["3.1"]
    general_cases = list_board_cases(node_db, general)
    assert [c.study_instance_uid for c in general_cases] == ["2.1"]
    assert general_cases[0].added_reason == "rule"


def test_reviews_keep_history_and_tell_disagreement(node_db: NodeDatabase) -> None:
    with pytest.raises(LookupError):
        record_review(node_db, "1.1", ReviewInput(verdict=ReviewVerdict.AGREE), actor="r")
    _analyse(node_db, "1.1", category=1)
    agree = record_review(node_db, "1.1", ReviewInput(verdict=ReviewVerdict.AGREE), actor="r1")
    assert not agree.disagrees and agree.ai_category == 1
    same = record_review(
        node_db,
        "1.1",
        ReviewInput(
            verdict=ReviewVerdict.OVERRIDE, category=BoardCategory.BORDERLINE, reason="same"
        ),
        actor="r2",
    )
    assert not same.disagrees
    override = record_review(
        node_db,
        "1.1",
        ReviewInput(
            verdict=ReviewVerdict.OVERRIDE,
            category=BoardCategory.LOCALLY_ADVANCED,
            reason="SMA encased on the arterial phase",
        ),
        actor="r3",
    )
    assert override.disagrees
    assert [r.reviewer for r in list_reviews(node_db, "1.1")] == ["r1", "r2", "r3"]
    newest = latest_review(node_db, "1.1")
    assert newest is not None and newest.id == override.id
    event = list_audit_events(node_db, object_type="study", object_id="1.1")[-1]
    assert event.action == "review.override" and event.detail is not None
    assert event.detail["disagrees"] is True and "SMA" not in str(event.detail)
    entry = {e.study_instance_uid: e for e in list_worklist(node_db)}["1.1"]
    assert entry.review_verdict == "override" and entry.review_category == "locally-advanced"


def test_corrections_go_pending_then_written_or_failed(node_db: NodeDatabase) -> None:
    _analyse(node_db, "1.1")
    _analyse(node_db, "2.1")
    correct = ReviewInput(verdict=ReviewVerdict.CORRECT, reason="tumor reaches the uncinate")
    with pytest.raises(ValueError, match="carries a label map"):
        record_review(node_db, "1.1", correct, actor="r")
    with pytest.raises(ValueError, match="carries a label map"):
        record_review(
            node_db, "1.1", ReviewInput(verdict=ReviewVerdict.AGREE), actor="r",
            correction_path="/c.json",
        )  # fmt: skip
    first = record_review(node_db, "1.1", correct, actor="r", correction_path="/c1.json")
    second = record_review(node_db, "2.1", correct, actor="r", correction_path="/c2.json")
    assert first.correction_state == "pending"
    assert [r.id for r in pending_corrections(node_db)] == [first.id, second.id]
    written = mark_correction_written(
        node_db, first.id, corrected_seg_sop_uid="1.2.3", amendment_sr_sop_uid="1.2.4"
    )
    assert written.correction_state == "written" and written.corrected_seg_sop_uid == "1.2.3"
    failed = mark_correction_failed(node_db, second.id, "label map does not fit the CT")
    assert failed.correction_state == "failed" and failed.correction_error is not None
    assert pending_corrections(node_db) == []
    with pytest.raises(LookupError):
        mark_correction_failed(node_db, 999, "x")
    board_id = _board(node_db)
    add_case(node_db, board_id, CaseInput(study_instance_uid="1.1"), actor="u")
    record_decision(
        node_db, board_id, "1.1", DecisionInput(category=BoardCategory.RESECTABLE), actor="u"
    )
    exported = {c.review.study_instance_uid: c for c in reviewed_cases(node_db)}
    assert set(exported) == {"1.1", "2.1"}
    assert exported["1.1"].board_category is BoardCategory.RESECTABLE
    assert exported["1.1"].series_instance_uid == "1.1.1"
    assert exported["2.1"].board_category is None
