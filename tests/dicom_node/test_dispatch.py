"""Result dispatch against real peers: DCMTK storescp, Orthanc (C-STORE and STOW-RS), pynetdicom.

Every test uses a real migrated SQLite node database; time is injected, never slept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import SecretStr
from pydicom.uid import (
    CTImageStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    RLELossless,
)
from pynetdicom import AE, evt

from db import (
    DeliveryProtocol,
    DeliveryStatus,
    NodeDatabase,
    get_job,
    list_delivery_attempts,
)
from dicom_node.dispatch import (
    AttemptStatus,
    Dispatcher,
    DispatchStatus,
    InstanceStatus,
    NotDeliverableError,
)
from pancreas_contracts.job_states import JobState
from pancreas_contracts.settings import DicomDestination
from pancreas_node.orthanc_server import OrthancServer
from tests.conftest import free_port
from tests.dicom_node._dispatch_helpers import (
    assert_in_orthanc,
    done_job,
    make_result_set,
    orthanc_lookup,
    received_sops,
    settings_for,
    storescp,
    wait_for,
)

# --------------------------------------------------------------------------- real peers


@pytest.mark.integration
def test_c_store_to_storescp_delivers_every_instance_and_marks_the_job_delivered(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    port = free_port()
    settings = settings_for(
        tmp_path,
        ae_title="PANCREAS_AI",
        destinations=[DicomDestination(ae_title="STORESCP", host="127.0.0.1", port=port)],
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    with storescp(port, tmp_path / "storescp") as folder:
        outcome = dispatcher.deliver(job_id, results["paths"])
        wait_for(lambda: len(received_sops(folder)) == 3, "storescp to write 3 files")
        received = received_sops(folder)

    assert outcome.status is DispatchStatus.DELIVERED
    (attempt,) = outcome.attempts
    assert attempt.status is AttemptStatus.SUCCESS
    assert {i.sop_instance_uid for i in attempt.instances} == results["sops"]
    assert all(i.status is InstanceStatus.STORED for i in attempt.instances)
    assert set(received) == results["sops"]
    # storescp accepts no RLE by default: the fallback context carried it decompressed.
    assert received[results["rle_sop"]] in {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.destination == f"STORESCP@127.0.0.1:{port}"
    assert record.protocol is DeliveryProtocol.C_STORE
    assert record.status is DeliveryStatus.SUCCESS and record.error is None
    assert dispatcher.deliver(job_id, results["paths"]).status is DispatchStatus.ALREADY_DELIVERED


@pytest.mark.integration
def test_c_store_to_orthanc_is_retrievable_over_rest_and_dicomweb(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer
) -> None:
    results = make_result_set(tmp_path / "results")
    destination = DicomDestination(
        ae_title=orthanc.config.dicom_aet, host="127.0.0.1", port=orthanc.config.dicom_port
    )
    dispatcher = Dispatcher(settings_for(tmp_path, destinations=[destination]), node_db)
    job_id = done_job(node_db)

    outcome = dispatcher.deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.DELIVERED, outcome
    assert_in_orthanc(orthanc, results)
    rle_id = orthanc_lookup(orthanc, results["rle_sop"])
    status, syntax = orthanc.request(f"/instances/{rle_id}/metadata/TransferSyntax")
    assert status == 200 and syntax.decode() == RLELossless  # Orthanc took the file's own syntax


@pytest.mark.integration
@pytest.mark.parametrize("credentials_in", ["settings", "url"])
def test_stow_rs_to_orthanc_with_basic_auth(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer, credentials_in: str
) -> None:
    results = make_result_set(tmp_path / "results")
    password = orthanc.config.admin_password
    if credentials_in == "settings":
        settings = settings_for(
            tmp_path,
            stow_url=f"{orthanc.url}/dicom-web",
            stow_username="admin",
            stow_password=SecretStr(password),
        )
    else:
        url = orthanc.url.replace("http://", f"http://admin:{quote(password, safe='')}@")
        settings = settings_for(tmp_path, stow_url=f"{url}/dicom-web")
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)

    outcome = dispatcher.deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.DELIVERED, outcome
    (attempt,) = outcome.attempts
    assert attempt.protocol is DeliveryProtocol.STOW_RS
    assert {i.sop_instance_uid for i in attempt.instances} == results["sops"]
    assert all(i.stored for i in attempt.instances)
    assert_in_orthanc(orthanc, results)
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.destination == f"{orthanc.url}/dicom-web"
    assert record.status is DeliveryStatus.SUCCESS


@pytest.mark.integration
def test_stow_rs_with_a_wrong_password_is_recorded_as_http_401(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer
) -> None:
    results = make_result_set(tmp_path / "results")
    settings = settings_for(
        tmp_path,
        stow_url=f"{orthanc.url}/dicom-web",
        stow_username="admin",
        stow_password=SecretStr("not-the-password"),
    )
    job_id = done_job(node_db)

    outcome = Dispatcher(settings, node_db).deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.RETRY_SCHEDULED
    assert outcome.attempts[0].status is AttemptStatus.HTTP_ERROR
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.status is DeliveryStatus.FAILURE
    assert record.error is not None and record.error.startswith("http-error: HTTP 401")
    assert "not-the-password" not in record.error and "Phantom" not in record.error
    for sop_uid in results["sops"]:
        assert orthanc_lookup(orthanc, sop_uid) is None


@pytest.mark.integration
def test_unreachable_destination_is_retried_with_back_off_until_the_peer_comes_up(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    port = free_port()  # nobody listens here yet
    settings = settings_for(
        tmp_path, destinations=[DicomDestination(ae_title="LATE", host="127.0.0.1", port=port)]
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    results = make_result_set(settings.results_dir / job_id)  # where the worker puts them
    start = datetime.now(UTC)

    (due,) = dispatcher.due_deliveries(start)
    assert due.job_id == job_id and not due.expired
    assert set(due.files) == set(results["paths"])
    first = dispatcher.deliver(job_id, due.files, now=start)

    assert first.status is DispatchStatus.RETRY_SCHEDULED
    assert first.attempts[0].status is AttemptStatus.CONNECTION_FAILED
    assert all(i.status is InstanceStatus.NOT_SENT for i in first.attempts[0].instances)
    (failed,) = list_delivery_attempts(node_db, job_id)
    assert failed.status is DeliveryStatus.FAILURE and failed.error is not None
    assert failed.error.startswith("connection-failed")
    assert first.next_attempt_at == failed.attempted_at + timedelta(seconds=30)
    assert dispatcher.due_deliveries(start) == []  # not yet due
    assert dispatcher.due_deliveries(first.next_attempt_at - timedelta(seconds=1)) == []

    with storescp(port, tmp_path / "late", ae_title="LATE") as folder:
        (due,) = dispatcher.due_deliveries(first.next_attempt_at)
        second = dispatcher.deliver(job_id, due.files, now=first.next_attempt_at)
        wait_for(lambda: set(received_sops(folder)) == results["sops"], "the late peer's files")

    assert second.status is DispatchStatus.DELIVERED
    assert [a.status for a in list_delivery_attempts(node_db, job_id)] == [
        DeliveryStatus.FAILURE,
        DeliveryStatus.SUCCESS,
    ]
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED
    assert dispatcher.due_deliveries(first.next_attempt_at + timedelta(days=2)) == []


@pytest.mark.integration
def test_delivery_is_given_up_24_h_after_the_first_attempt(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    settings = settings_for(
        tmp_path,
        destinations=[DicomDestination(ae_title="GONE", host="127.0.0.1", port=free_port())],
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    files = make_result_set(tmp_path / "results")["paths"]

    first = dispatcher.deliver(job_id, files)
    assert first.status is DispatchStatus.RETRY_SCHEDULED and first.first_attempt_at is not None
    deadline = first.first_attempt_at + timedelta(hours=24)
    second = dispatcher.deliver(job_id, files, now=deadline - timedelta(minutes=1))
    assert second.status is DispatchStatus.RETRY_SCHEDULED  # still tried just before
    (due,) = dispatcher.due_deliveries(deadline)
    assert due.expired

    final = dispatcher.deliver(job_id, files, now=deadline)

    assert final.status is DispatchStatus.GIVEN_UP
    assert final.attempts == ()  # nothing is sent after the deadline
    assert len(list_delivery_attempts(node_db, job_id)) == 2
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.FAILED and job.next_attempt_at is None
    assert job.failure_reason is not None and "delivery given up" in job.failure_reason
    assert dispatcher.due_deliveries(deadline + timedelta(days=1)) == []
    with pytest.raises(NotDeliverableError):
        dispatcher.deliver(job_id, files)


@pytest.mark.integration
def test_only_the_destination_that_failed_is_retried(tmp_path: Path, node_db: NodeDatabase) -> None:
    up, down = free_port(), free_port()
    settings = settings_for(
        tmp_path,
        destinations=[
            DicomDestination(ae_title="UP", host="127.0.0.1", port=up),
            DicomDestination(ae_title="DOWN", host="127.0.0.1", port=down),
        ],
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    results = make_result_set(tmp_path / "results")
    with storescp(up, tmp_path / "up", ae_title="UP"):
        first = dispatcher.deliver(job_id, results["paths"])
    assert first.status is DispatchStatus.RETRY_SCHEDULED
    assert [a.status for a in first.attempts] == [
        AttemptStatus.SUCCESS,
        AttemptStatus.CONNECTION_FAILED,
    ]
    assert first.next_attempt_at is not None

    with storescp(down, tmp_path / "down", ae_title="DOWN") as folder:
        second = dispatcher.deliver(job_id, results["paths"], now=first.next_attempt_at)
        wait_for(lambda: set(received_sops(folder)) == results["sops"], "the second peer")

    assert second.status is DispatchStatus.DELIVERED
    assert [a.destination for a in second.attempts] == [f"DOWN@127.0.0.1:{down}"]
    records = [
        (r.destination.split("@")[0], r.status) for r in list_delivery_attempts(node_db, job_id)
    ]
    assert records == [
        ("UP", DeliveryStatus.SUCCESS),
        ("DOWN", DeliveryStatus.FAILURE),
        ("DOWN", DeliveryStatus.SUCCESS),
    ]


@pytest.mark.integration
def test_each_c_store_status_is_checked_and_failures_are_named(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    sops = sorted(results["sops"])
    answers = {sops[0]: 0xA700, sops[1]: 0xB000}  # the third gets 0x0000
    received: list[str] = []

    def handle_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        received.append(uid)
        return answers.get(uid, 0x0000)

    scp = AE(ae_title="PICKY")
    for sop_class in (CTImageStorage, EncapsulatedPDFStorage):
        scp.add_supported_context(sop_class, [ExplicitVRLittleEndian, RLELossless])
    port = free_port()
    server = scp.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)]
    )
    assert server is not None
    try:
        settings = settings_for(
            tmp_path, destinations=[DicomDestination(ae_title="PICKY", host="127.0.0.1", port=port)]
        )
        job_id = done_job(node_db)
        outcome = Dispatcher(settings, node_db).deliver(job_id, results["paths"])
    finally:
        server.shutdown()

    assert sorted(received) == sops  # one association, every instance offered once
    (attempt,) = outcome.attempts
    assert attempt.status is AttemptStatus.INSTANCE_FAILURES
    by_uid = {i.sop_instance_uid: i for i in attempt.instances}
    assert by_uid[sops[0]].status is InstanceStatus.FAILED and by_uid[sops[0]].code == 0xA700
    assert by_uid[sops[1]].status is InstanceStatus.STORED_WITH_WARNING
    assert by_uid[sops[2]].status is InstanceStatus.STORED
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.status is DeliveryStatus.FAILURE and record.error is not None
    assert f"{sops[0]}: 0xA700 Failure: Refused: Out of Resources" in record.error
    assert "1 of 3 instances not stored" in record.error and "Phantom" not in record.error
    assert outcome.status is DispatchStatus.RETRY_SCHEDULED


@pytest.mark.integration
def test_rejected_association_and_refused_contexts_are_named(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    scp = AE(ae_title="STRICT")
    scp.require_called_aet = True  # A-ASSOCIATE-RJ for any other called AE title
    scp.add_supported_context("1.2.840.10008.1.1")  # Verification only: no storage
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    assert server is not None
    try:
        outcomes = {}
        for called in ("WRONG", "STRICT"):
            job_id = done_job(node_db)
            settings = settings_for(
                tmp_path,
                destinations=[DicomDestination(ae_title=called, host="127.0.0.1", port=port)],
            )
            outcomes[called] = Dispatcher(settings, node_db).deliver(job_id, results["paths"])
    finally:
        server.shutdown()

    rejected = outcomes["WRONG"].attempts[0]
    assert rejected.status is AttemptStatus.ASSOCIATION_REJECTED
    assert rejected.error is not None and "Called AE title not recognised" in rejected.error
    refused = outcomes["STRICT"].attempts[0]
    assert refused.status is AttemptStatus.NO_ACCEPTED_CONTEXT
    for outcome in outcomes.values():
        assert outcome.status is DispatchStatus.RETRY_SCHEDULED
        assert all(i.status is InstanceStatus.NOT_SENT for i in outcome.attempts[0].instances)
