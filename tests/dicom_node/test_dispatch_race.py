"""Exactly one delivery per (job, destination) when both delivery paths race (issue 22, D4).

The node's first delivery (right after the analysis) and its periodic delivery loop used to
send the same job at the same time: two success rows 1.1 s apart. Real peers: DCMTK storescp
and Orthanc; a real migrated SQLite node database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from db import DeliveryStatus, NodeDatabase, get_job, list_delivery_attempts
from dicom_node.dispatch import Dispatcher, DispatchStatus
from pancreas_contracts.job_states import JobState
from pancreas_contracts.settings import DicomDestination
from pancreas_node.orthanc_server import OrthancServer
from tests.conftest import free_port
from tests.dicom_node._dispatch_helpers import (
    assert_in_orthanc,
    done_job,
    make_result_set,
    received_sops,
    settings_for,
    storescp,
    wait_for,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _race(paths: list[Callable[[], T]]) -> list[T | None]:
    """Run every path at the same moment in its own thread; return what each returned."""
    start = threading.Barrier(len(paths))
    results: list[T | None] = [None] * len(paths)

    def run(n: int) -> None:
        start.wait()
        results[n] = paths[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(paths))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _both_paths(dispatcher: Dispatcher, job_id: str, files: list[Path]) -> list[DispatchStatus]:
    """The worker's first delivery and the delivery loop's due deliveries, at once."""

    def first_delivery() -> list[DispatchStatus]:
        return [dispatcher.deliver(job_id, files).status]

    def delivery_loop() -> list[DispatchStatus]:
        return [dispatcher.deliver(d.job_id, d.files).status for d in dispatcher.due_deliveries()]

    per_path = _race([first_delivery, delivery_loop, first_delivery])
    return [status for statuses in per_path for status in statuses or []]


def test_racing_deliveries_to_storescp_send_once(tmp_path: Path, node_db: NodeDatabase) -> None:
    results = make_result_set(tmp_path / "results")
    port = free_port()
    destination = DicomDestination(ae_title="STORESCP", host="127.0.0.1", port=port)
    settings = settings_for(tmp_path, ae_title="PANCREAS_AI", destinations=[destination])
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    # The loop finds the job's objects where the analysis writes them.
    (settings.results_dir / job_id).mkdir(parents=True)
    for path in results["paths"]:
        (settings.results_dir / job_id / path.name).write_bytes(path.read_bytes())

    with storescp(port, tmp_path / "storescp") as folder:
        statuses = _both_paths(dispatcher, job_id, results["paths"])
        wait_for(lambda: len(received_sops(folder)) == 3, "storescp to write 3 files")

    attempts = list_delivery_attempts(node_db, job_id)
    assert [a.status for a in attempts] == [DeliveryStatus.SUCCESS], attempts
    assert statuses.count(DispatchStatus.DELIVERED) == 1, statuses
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED
    assert set(received_sops(folder)) == results["sops"]


def test_racing_deliveries_to_orthanc_send_once(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer
) -> None:
    results = make_result_set(tmp_path / "results")
    destination = DicomDestination(
        ae_title=orthanc.config.dicom_aet, host="127.0.0.1", port=orthanc.config.dicom_port
    )
    dispatcher = Dispatcher(settings_for(tmp_path, destinations=[destination]), node_db)
    job_id = done_job(node_db)

    statuses = _race([lambda: dispatcher.deliver(job_id, results["paths"]).status] * 3)

    attempts = list_delivery_attempts(node_db, job_id)
    assert [a.status for a in attempts] == [DeliveryStatus.SUCCESS], attempts
    assert statuses.count(DispatchStatus.DELIVERED) == 1, statuses
    assert_in_orthanc(orthanc, results)
