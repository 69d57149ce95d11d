"""The notification outbox: rows written with the change that causes them, and their deliveries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from db import (
    DeliveryState,
    NewResult,
    NodeDatabase,
    claim_due_deliveries,
    claim_next_job,
    complete_job,
    enqueue_job,
    expand_notifications,
    fail_job,
    get_job,
    get_result,
    list_notification_deliveries,
    list_notifications,
    mark_delivery_failed,
    mark_delivery_sent,
    queue_notification,
    record_instance,
    record_review,
)
from pancreas_contracts import JobState
from pancreas_contracts.boards import BoardCategory, NotificationEvent, ReviewInput, ReviewVerdict
from pancreas_contracts.job_states import failure_reason

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
STUDY = "1.2.826.0.1.3680043.99.1"
SERIES = f"{STUDY}.1"
PATIENT_ID = "PAT-4711"
ACCESSION = "ACC-0815"
REASON = "Encasement of the SMA over 180 degrees on the arterial phase"


def _receive(db: NodeDatabase, series: str = SERIES, sop: str = f"{SERIES}.1") -> None:
    record_instance(
        db, study_instance_uid=STUDY, series_instance_uid=series, sop_instance_uid=sop,
        sop_class_uid=CT, transfer_syntax_uid=EXPLICIT_LE, spool_path=f"/spool/{sop}.dcm",
        modality="CT", patient_id=PATIENT_ID, accession_number=ACCESSION,
        study_date=date(2025, 3, 14),
    )  # fmt: skip


def _result(category: int | None = 1) -> NewResult:
    return NewResult(
        result_json_path="/r.json", bundle_name="b", bundle_version="1", bundle_sha256="sha",
        category=category, category_label=None if category is None else "borderline",
        probabilities=(0.2, 0.7, 0.1), outcome="done",
    )  # fmt: skip


def _running_job(db: NodeDatabase, version: int = 1) -> str:
    _receive(db)
    job = enqueue_job(db, SERIES, version, "sha").job
    claimed = claim_next_job(db, "w", 60)
    assert claimed is not None and claimed.id == job.id
    return job.id


def _events(db: NodeDatabase) -> list[NotificationEvent]:
    return [n.event for n in list_notifications(db)]


def test_result_ready_is_written_with_the_completion(node_db: NodeDatabase) -> None:
    job_id = _running_job(node_db)
    assert list_notifications(node_db) == []
    done = complete_job(node_db, job_id, "w", _result())
    [note] = list_notifications(node_db)
    assert note.event is NotificationEvent.RESULT_READY
    assert (note.object_type, note.object_id) == ("job", job_id)
    assert dict(note.detail) == {"job_id": job_id, "outcome": "done", "category": "borderline"}
    assert note.study_instance_uid == STUDY
    assert note.created_at == done.updated_at  # the completion's own timestamp
    stored = repr(note.detail)
    assert PATIENT_ID not in stored and ACCESSION not in stored and STUDY not in stored


def test_a_completion_that_cannot_write_its_notification_is_not_committed(
    node_db: NodeDatabase,
) -> None:
    """One transaction: without the outbox table, the completion itself rolls back."""
    job_id = _running_job(node_db)
    with node_db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE notifications RENAME TO notifications_away"))
    try:
        with pytest.raises(SQLAlchemyError):
            complete_job(node_db, job_id, "w", _result())
    finally:
        with node_db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE notifications_away RENAME TO notifications"))
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.RUNNING
    assert get_result(node_db, job_id, actor="test") is None
    complete_job(node_db, job_id, "w", _result())
    assert _events(node_db) == [NotificationEvent.RESULT_READY]


def test_a_refusal_is_ready_with_its_code_only(node_db: NodeDatabase) -> None:
    job_id = _running_job(node_db)
    complete_job(node_db, job_id, "w", reason="refused: not-localised: confidence 0.11")
    [note] = list_notifications(node_db)
    assert dict(note.detail) == {"job_id": job_id, "outcome": "refused", "refusal": "not-localised"}


def test_done_without_result_or_refusal_tells_nobody(node_db: NodeDatabase) -> None:
    complete_job(node_db, _running_job(node_db), "w")
    assert list_notifications(node_db) == []


def test_a_superseded_job_tells_nobody(node_db: NodeDatabase) -> None:
    old = _running_job(node_db)
    enqueue_job(node_db, SERIES, 2, "sha")  # the series grew while the old job ran
    finished = complete_job(node_db, old, "w", _result())
    assert finished.state is JobState.SUPERSEDED
    assert list_notifications(node_db) == []


def test_only_a_final_failure_is_told(node_db: NodeDatabase) -> None:
    job_id = _running_job(node_db)
    retry_at = datetime.now(UTC) - timedelta(seconds=1)  # due at once
    first = failure_reason("analysis", 1, "out of memory")
    fail_job(node_db, job_id, first, retry_at=retry_at, worker_id="w")
    assert list_notifications(node_db) == []
    again = claim_next_job(node_db, "w", 60)
    assert again is not None and again.id == job_id
    reason = failure_reason("analysis", 2, "out of memory with 123 ml measured")
    fail_job(node_db, job_id, reason, worker_id="w")
    [note] = list_notifications(node_db)
    assert note.event is NotificationEvent.RESULT_FAILED
    assert dict(note.detail) == {"job_id": job_id, "stage": "analysis"}
    assert note.study_instance_uid == STUDY


def test_a_series_that_cannot_be_assembled_is_a_final_failure(node_db: NodeDatabase) -> None:
    _receive(node_db)
    job = enqueue_job(
        node_db, SERIES, 1, "sha", failure=failure_reason("assembly", 1, "mixed sizes")
    ).job
    [note] = list_notifications(node_db)
    assert note.event is NotificationEvent.RESULT_FAILED
    assert dict(note.detail) == {"job_id": job.id, "stage": "assembly"}


def test_a_disagreeing_review_is_told_without_its_reason(node_db: NodeDatabase) -> None:
    complete_job(node_db, _running_job(node_db), "w", _result(category=1))
    before = len(list_notifications(node_db))
    record_review(node_db, STUDY, ReviewInput(verdict=ReviewVerdict.AGREE), actor="dr.a")
    same = ReviewInput(
        verdict=ReviewVerdict.OVERRIDE, category=BoardCategory.BORDERLINE, reason=REASON
    )
    record_review(node_db, STUDY, same, actor="dr.a")
    assert len(list_notifications(node_db)) == before  # agreement, same category: nothing
    other = ReviewInput(
        verdict=ReviewVerdict.OVERRIDE, category=BoardCategory.LOCALLY_ADVANCED, reason=REASON
    )
    review = record_review(node_db, STUDY, other, actor="dr.a")
    [note] = list_notifications(node_db, event=NotificationEvent.DISAGREEMENT)
    assert (note.object_type, note.object_id) == ("review", str(review.id))
    assert dict(note.detail) == {
        "review_id": review.id,
        "verdict": "override",
        "ai_category": "borderline",
        "reviewer_category": "locally-advanced",
    }
    assert note.study_instance_uid == STUDY
    assert "SMA" not in repr(note.detail) and "dr.a" not in repr(note.detail)


def test_queue_notification_takes_short_facts_only(node_db: NodeDatabase) -> None:
    note = queue_notification(
        node_db, NotificationEvent.PACKET_READY, object_type="board", object_id="7",
        detail={"board_id": 7, "case_count": 3},
    )  # fmt: skip
    assert list_notifications(node_db) == [note]
    assert note.study_instance_uid is None
    for bad in ({"text": REASON * 3}, {"members": ["Dr A"]}):
        with pytest.raises(ValueError, match="notification detail"):
            queue_notification(
                node_db, NotificationEvent.PACKET_READY, object_type="board", object_id="7",
                detail=bad,
            )  # fmt: skip
    assert len(list_notifications(node_db)) == 1


def test_deliveries_per_subscribed_channel_claimed_once(node_db: NodeDatabase) -> None:
    packet = queue_notification(
        node_db, NotificationEvent.PACKET_READY, object_type="board", object_id="1",
        detail={"board_id": 1},
    )  # fmt: skip
    queue_notification(
        node_db, NotificationEvent.RESULT_FAILED, object_type="job", object_id="j",
        detail={"job_id": "j"},
    )  # fmt: skip
    subscriptions = {NotificationEvent.PACKET_READY: ("mail", "hook")}
    now = datetime.now(UTC)
    assert expand_notifications(node_db, subscriptions, now=now) == 2
    assert expand_notifications(node_db, subscriptions, now=now) == 0  # each expanded once
    deliveries = list_notification_deliveries(node_db)
    assert [(d.notification.id, d.channel) for d in deliveries] == [
        (packet.id, "mail"),
        (packet.id, "hook"),
    ]
    claimed = claim_due_deliveries(node_db, lease_s=60, now=now)
    assert [(d.channel, d.attempts) for d in claimed] == [("mail", 1), ("hook", 1)]
    assert claim_due_deliveries(node_db, lease_s=60, now=now) == []  # leased
    mark_delivery_sent(node_db, claimed[0].id)
    mark_delivery_failed(node_db, claimed[1].id, "attempt 1: refused", retry_at=now)
    again = claim_due_deliveries(node_db, lease_s=60, now=now)
    assert [(d.channel, d.attempts) for d in again] == [("hook", 2)]
    mark_delivery_failed(node_db, again[0].id, "attempt 2: refused", retry_at=None)
    later = now + timedelta(hours=1)
    assert claim_due_deliveries(node_db, lease_s=60, now=later) == []
    states = {d.channel: d for d in list_notification_deliveries(node_db)}
    assert states["mail"].state is DeliveryState.SENT and states["mail"].sent_at is not None
    assert states["hook"].state is DeliveryState.FAILED
    assert (states["hook"].attempts, states["hook"].last_error) == (2, "attempt 2: refused")
