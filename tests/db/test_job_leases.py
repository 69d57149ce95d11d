"""Delivery leases and a restarted node's own leases (issue 22, D4 and D9), on both backends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from db import (
    NodeDatabase,
    claim_delivery,
    claim_next_job,
    complete_job,
    enqueue_job,
    get_job,
    mark_delivered,
    reclaim_node_leases,
    release_delivery,
)
from pancreas_contracts.job_states import JobState

SHA = "b" * 64
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def _done(db: NodeDatabase, uid: str = "1.2.3") -> str:
    job_id = enqueue_job(db, uid, 1, SHA).job.id
    assert claim_next_job(db, "w1", 60) is not None
    complete_job(db, job_id, "w1")
    return job_id


def test_only_one_of_many_racing_dispatchers_gets_the_delivery(node_db: NodeDatabase) -> None:
    job_id = _done(node_db)
    owners = [f"dispatch-{n}" for n in range(4)]
    won: list[str] = []
    start = threading.Barrier(len(owners))

    def race(owner: str) -> None:
        start.wait()
        if claim_delivery(node_db, job_id, owner, 60):
            won.append(owner)

    threads = [threading.Thread(target=race, args=(o,)) for o in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1


def test_a_delivery_lease_is_released_or_expires(node_db: NodeDatabase) -> None:
    job_id = _done(node_db)
    assert claim_delivery(node_db, job_id, "a", 60, now=T0)
    assert not claim_delivery(node_db, job_id, "b", 60, now=T0 + timedelta(seconds=59))
    release_delivery(node_db, job_id, "b")  # not the holder: nothing happens
    assert not claim_delivery(node_db, job_id, "b", 60, now=T0 + timedelta(seconds=59))
    assert claim_delivery(node_db, job_id, "b", 60, now=T0 + timedelta(seconds=61))  # a died
    release_delivery(node_db, job_id, "b")
    assert claim_delivery(node_db, job_id, "c", 60, now=T0 + timedelta(seconds=62))


def test_only_done_jobs_can_be_claimed_for_delivery(node_db: NodeDatabase) -> None:
    job_id = _done(node_db)
    mark_delivered(node_db, job_id)
    assert not claim_delivery(node_db, job_id, "a", 60)
    queued = enqueue_job(node_db, "1.2.4", 1, SHA).job.id
    assert not claim_delivery(node_db, queued, "a", 60)


def test_a_restarted_node_reclaims_its_previous_run_at_once(node_db: NodeDatabase) -> None:
    mine = enqueue_job(node_db, "1.2.3", 1, SHA).job.id
    other = enqueue_job(node_db, "1.2.4", 1, SHA).job.id
    current = enqueue_job(node_db, "1.2.5", 1, SHA).job.id
    # The dead incarnation "run1" of this node held a 300 s lease; another node holds its own.
    assert claim_next_job(node_db, "host/node-a/run1/worker", 300, now=T0) is not None
    assert claim_next_job(node_db, "host/node-b/run1/worker", 300, now=T0) is not None
    assert claim_next_job(node_db, "host/node-a/run2/worker", 300, now=T0) is not None
    delivered = _done(node_db, "1.2.6")
    assert claim_delivery(node_db, delivered, "host/node-a/run1/dispatch", 300, now=T0)

    now = T0 + timedelta(seconds=5)  # long before the leases expire
    requeued = reclaim_node_leases(node_db, "host/node-a/", "host/node-a/run2/", now=now)
    assert requeued == [mine]
    states = {j: get_job(node_db, j) for j in (mine, other, current)}
    assert {j: (i.state if i else None) for j, i in states.items()} == {
        mine: JobState.QUEUED,
        other: JobState.RUNNING,
        current: JobState.RUNNING,
    }
    assert claim_delivery(node_db, delivered, "host/node-a/run2/dispatch", 300, now=now)


def test_reclaim_needs_a_current_incarnation_under_the_node(node_db: NodeDatabase) -> None:
    with pytest.raises(ValueError, match="extend"):
        reclaim_node_leases(node_db, "host/node-a/", "host/node-b/run2/")
