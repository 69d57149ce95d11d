"""Studies, series and instances as the SCP records them (both backends)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from db import (
    JobRequest,
    NodeDatabase,
    RoutingDecision,
    SeriesClosed,
    SeriesStatus,
    close_series,
    get_series,
    get_study,
    list_audit_events,
    list_recent_jobs,
    record_instance,
    reopen_series,
    series_instance_paths,
    series_quiet_since,
)
from pancreas_contracts.job_states import JobState

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _store(
    db: NodeDatabase, sop: str, *, series: str = "1.2.3.2", when: datetime | None = None
) -> bool:
    return record_instance(
        db,
        study_instance_uid="1.2.3.1",
        series_instance_uid=series,
        sop_instance_uid=sop,
        sop_class_uid=CT,
        transfer_syntax_uid=EXPLICIT_LE,
        spool_path=f"/spool/1.2.3.1/{series}/{sop}.dcm",
        calling_ae="SCANNER",
        modality="CT",
        patient_id="PHANTOM-0001",
        study_date=date(2025, 3, 14),
        received_at=when,
    )


def test_record_instance_is_idempotent(node_db: NodeDatabase) -> None:
    assert _store(node_db, "1.2.3.4.1") is True
    assert _store(node_db, "1.2.3.4.1") is False
    assert _store(node_db, "1.2.3.4.2") is True
    series = get_series(node_db, "1.2.3.2")
    assert series is not None
    assert series.instance_count == 2
    assert series.status is SeriesStatus.RECEIVING
    assert series.routing_decision is RoutingDecision.PENDING
    assert series.study_instance_uid == "1.2.3.1"
    assert series_instance_paths(node_db, "1.2.3.2") == [
        "/spool/1.2.3.1/1.2.3.2/1.2.3.4.1.dcm",
        "/spool/1.2.3.1/1.2.3.2/1.2.3.4.2.dcm",
    ]
    study = get_study(node_db, "1.2.3.1")
    assert study is not None
    assert study.patient_id == "PHANTOM-0001"
    assert study.study_date == date(2025, 3, 14)
    (event,) = [e for e in list_audit_events(node_db) if e.object_type == "series"]
    assert event.action == "series.receiving"
    assert event.origin == "SCANNER"


def test_concurrent_receivers_store_each_instance_once(node_db: NodeDatabase) -> None:
    results: list[bool] = []
    lock = threading.Lock()

    def receive(offset: int) -> None:
        for i in range(20):
            stored = _store(node_db, f"1.2.3.9.{(i + offset) % 20}")
            with lock:
                results.append(stored)

    threads = [threading.Thread(target=receive, args=(k * 5,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 20
    series = get_series(node_db, "1.2.3.2")
    assert series is not None
    assert series.instance_count == 20


def test_quiet_series_are_listed_and_completed_once(node_db: NodeDatabase) -> None:
    t0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    _store(node_db, "1.1", series="9.1", when=t0)
    _store(node_db, "2.1", series="9.2", when=t0 + timedelta(seconds=50))
    quiet = series_quiet_since(node_db, t0 + timedelta(seconds=30))
    assert [s.series_instance_uid for s in quiet] == ["9.1"]
    (series,) = quiet
    assert close_series(
        node_db, "9.1", version=series.version, decision=RoutingDecision.ANALYZE, reason="CT ok"
    ) == SeriesClosed(job=None)
    # A second completion (another SCP thread, a stale version) changes nothing.
    assert (
        close_series(
            node_db, "9.1", version=series.version, decision=RoutingDecision.SKIP, reason="again"
        )
        is None
    )
    done = get_series(node_db, "9.1")
    assert done is not None
    assert done.status is SeriesStatus.COMPLETE
    assert done.routing_decision is RoutingDecision.ANALYZE
    assert done.routing_reason == "CT ok"
    assert series_quiet_since(node_db, t0 + timedelta(seconds=30)) == []


def test_completion_is_refused_if_an_instance_arrived_meanwhile(node_db: NodeDatabase) -> None:
    t0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    _store(node_db, "1.1", when=t0)
    cutoff = t0 + timedelta(seconds=30)
    (series,) = series_quiet_since(node_db, cutoff)
    _store(node_db, "1.2", when=t0 + timedelta(seconds=40))
    closed = close_series(
        node_db,
        series.series_instance_uid,
        version=series.version,
        decision=RoutingDecision.ANALYZE,
        reason="quiet",
        quiet_since=cutoff,
        job=JobRequest("bundle-a"),
    )
    assert closed is None and list_recent_jobs(node_db) == []


def test_late_instance_reopens_a_complete_series(node_db: NodeDatabase) -> None:
    _store(node_db, "1.1")
    close_series(node_db, "1.2.3.2", version=1, decision=RoutingDecision.ANALYZE, reason="r")
    assert _store(node_db, "1.2")
    series = get_series(node_db, "1.2.3.2")
    assert series is not None
    assert series.version == 2
    assert series.status is SeriesStatus.RECEIVING
    assert series.routing_decision is RoutingDecision.PENDING
    assert len(series_instance_paths(node_db, "1.2.3.2", max_version=1)) == 1
    assert len(series_instance_paths(node_db, "1.2.3.2")) == 2
    assert reopen_series(node_db, "1.2.3.2") == 3
    actions = [e.action for e in list_audit_events(node_db, object_type="series")]
    assert actions == ["series.receiving", "series.complete", "series.reopen", "series.reopen"]


def test_reopen_unknown_series_is_a_lookup_error(node_db: NodeDatabase) -> None:
    import pytest

    with pytest.raises(LookupError):
        reopen_series(node_db, "9.9.9")
    assert get_series(node_db, "9.9.9") is None
    assert get_study(node_db, "9.9.9") is None


def test_instance_count_and_last_received_never_move_back(node_db: NodeDatabase) -> None:
    later = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    assert _store(node_db, "1.1", when=later)
    # An instance stamped earlier (a slow association) counts but does not move the clock back.
    assert _store(node_db, "1.2", when=later - timedelta(minutes=5))
    assert not _store(node_db, "1.2", when=later + timedelta(minutes=5))  # re-send: no change
    series = get_series(node_db, "1.2.3.2")
    assert series is not None
    assert series.instance_count == 2
    assert series.last_received_at == later
    assert _store(node_db, "1.3", when=later + timedelta(minutes=1))
    series = get_series(node_db, "1.2.3.2")
    assert series is not None
    assert (series.instance_count, series.last_received_at) == (3, later + timedelta(minutes=1))


def test_closing_a_series_queues_its_job_in_the_same_transaction(node_db: NodeDatabase) -> None:
    _store(node_db, "1.1")
    closed = close_series(
        node_db,
        "1.2.3.2",
        version=1,
        decision=RoutingDecision.ANALYZE,
        reason="CT ok",
        job=JobRequest("bundle-a", instance_count=1),
    )
    assert closed is not None and closed.job is not None
    assert closed.job.state is JobState.QUEUED and closed.job.instance_count == 1
    assert [job.id for job in list_recent_jobs(node_db)] == [closed.job.id]
    # Closed once: a second close (another poller, a stale version) queues nothing.
    assert (
        close_series(
            node_db,
            "1.2.3.2",
            version=1,
            decision=RoutingDecision.ANALYZE,
            reason="again",
            job=JobRequest("bundle-a"),
        )
        is None
    )
    assert len(list_recent_jobs(node_db)) == 1
    events = [
        e.action
        for e in list_audit_events(node_db)
        if e.action in {"series.complete", "job.create"}
    ]
    assert sorted(events) == ["job.create", "series.complete"]
