"""Audit events and delivery attempts (both backends)."""

from __future__ import annotations

import pytest

from db import (
    DeliveryProtocol,
    DeliveryStatus,
    NodeDatabase,
    add_audit_event,
    enqueue_job,
    list_audit_events,
    list_delivery_attempts,
    record_delivery_attempt,
)


def test_audit_event_records_who_what_when_where(node_db: NodeDatabase) -> None:
    event_id = add_audit_event(
        node_db,
        actor="dr-who",
        action="board.decision",
        object_type="board_case",
        object_id="7",
        origin="10.0.0.7",
        detail={"decision": "agree"},
    )
    (event,) = list_audit_events(node_db, object_type="board_case", object_id="7")
    assert event.id == event_id
    assert (event.actor, event.action, event.origin) == ("dr-who", "board.decision", "10.0.0.7")
    assert event.detail == {"decision": "agree"}


def test_delivery_attempts_are_recorded_and_audited(node_db: NodeDatabase) -> None:
    job_id = enqueue_job(node_db, "1.2.3", 1, "d" * 64).job.id
    record_delivery_attempt(
        node_db,
        job_id,
        destination="ORTHANC@127.0.0.1:4242",
        protocol=DeliveryProtocol.C_STORE,
        status=DeliveryStatus.FAILURE,
        error="association rejected",
    )
    record_delivery_attempt(
        node_db,
        job_id,
        destination="http://127.0.0.1:8042/dicom-web",
        protocol=DeliveryProtocol.STOW_RS,
        status=DeliveryStatus.SUCCESS,
    )
    attempts = list_delivery_attempts(node_db, job_id)
    assert [(a.protocol, a.status) for a in attempts] == [
        (DeliveryProtocol.C_STORE, DeliveryStatus.FAILURE),
        (DeliveryProtocol.STOW_RS, DeliveryStatus.SUCCESS),
    ]
    assert attempts[0].error == "association rejected"
    deliveries = [
        e for e in list_audit_events(node_db, object_id=job_id) if e.action == "job.delivery"
    ]
    assert len(deliveries) == 2
    with pytest.raises(LookupError):
        record_delivery_attempt(
            node_db,
            "no-such-job",
            destination="x",
            protocol=DeliveryProtocol.C_STORE,
            status=DeliveryStatus.SUCCESS,
        )
