"""A restarted node takes back its previous run's leases at once (issue 22, D9).

A ``kill -9`` during an analysis left the job leased for ``job_lease_s`` (300 s by default): the
restarted node waited it out before running the job again. Real node (SCP, assembly, delivery
loop) on a real SQLite database; the dead run is the lease its owner left behind.
"""

from __future__ import annotations

import socket
from pathlib import Path

from db import (
    NodeDatabase,
    claim_delivery,
    claim_next_job,
    complete_job,
    enqueue_job,
    get_job,
)
from dicom_node.node import Node, node_id
from pancreas_contracts.job_states import JobState
from tests.dicom_node.conftest import node_settings


def test_the_node_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = node_id(tmp_path)
    assert len(first) == 32 and (tmp_path / "node-id").is_file()
    assert node_id(tmp_path) == first
    other = tmp_path / "other"
    other.mkdir()
    assert node_id(other) != first


def test_a_restarted_node_requeues_its_dead_run_s_job_at_once(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, job_lease_s=300.0)
    settings.data_dir.mkdir(parents=True)
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    mine = f"{socket.gethostname()[:40]}/{node_id(settings.data_dir)}/"
    try:
        dead = enqueue_job(database, "1.2.3", 1, "a" * 64).job.id
        foreign = enqueue_job(database, "1.2.4", 1, "a" * 64).job.id
        assert claim_next_job(database, f"{mine}deadbeef/worker", 300) is not None
        assert claim_next_job(database, "otherhost/othernode/run/worker", 300) is not None

        with Node(settings) as node:
            assert node.incarnation.startswith(mine) and node.incarnation != f"{mine}deadbeef/"
            reclaimed = get_job(database, dead)
            assert reclaimed is not None and reclaimed.state is JobState.QUEUED
            assert reclaimed.lease_owner is None
            other = get_job(database, foreign)
            assert other is not None and other.state is JobState.RUNNING  # not this node's
    finally:
        database.dispose()


def test_a_restarted_node_takes_back_its_dead_run_s_delivery(tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    mine = f"{socket.gethostname()[:40]}/{node_id(settings.data_dir)}/"
    try:
        job_id = enqueue_job(database, "1.2.3", 1, "a" * 64).job.id
        assert claim_next_job(database, "w", 60) is not None
        complete_job(database, job_id, "w")
        assert claim_delivery(database, job_id, f"{mine}deadbeef/dispatch", 900)
        with Node(settings):
            # The new run's own dispatcher could now take it; a stranger can too (unleased).
            assert claim_delivery(database, job_id, "probe", 60)
    finally:
        database.dispose()
