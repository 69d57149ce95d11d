"""Dispatch without peers: back-off schedule, store statuses, STOW responses, settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydicom.uid import (
    generate_uid,
)

from db import (
    DeliveryAttemptInfo,
    DeliveryProtocol,
    DeliveryStatus,
    NodeDatabase,
    enqueue_job,
    get_job,
    list_delivery_attempts,
    record_delivery_attempt,
)
from dicom_node._dispatch_schedule import plan_delivery
from dicom_node.dispatch import (
    AttemptStatus,
    CStoreDestination,
    DestinationOutcome,
    Dispatcher,
    DispatchStatus,
    NotDeliverableError,
    ResultFile,
    RetryPolicy,
    StowDestination,
    describe_store_status,
    describe_stow_reason,
    destinations_from_settings,
    parse_store_response,
)
from pancreas_contracts import JobState
from pancreas_contracts.settings import DicomDestination
from tests.conftest import free_port
from tests.dicom_node._dispatch_helpers import (
    T0,
    done_job,
    make_result_set,
    settings_for,
)

# --------------------------------------------------------------------------- pure parts


def _attempt(
    destination: str, status: DeliveryStatus, at: datetime, number: int = 1
) -> DeliveryAttemptInfo:
    return DeliveryAttemptInfo(
        id=number,
        job_id="job",
        destination=destination,
        protocol=DeliveryProtocol.C_STORE,
        status=status,
        error=None,
        attempted_at=at,
    )


def test_back_off_doubles_from_30_s_is_capped_at_1_h_and_stops_at_the_deadline() -> None:
    policy = RetryPolicy()
    key = ("A@h:1", DeliveryProtocol.C_STORE)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 7, 8, 20)] == [
        30,
        60,
        120,
        1920,
        3600,
        3600,
    ]
    fresh = plan_delivery([], [key], policy, ready_at=T0)
    assert fresh.pending == (key,) and fresh.next_attempt_at == T0 and fresh.deadline is None

    failures = [
        _attempt("A@h:1", DeliveryStatus.FAILURE, T0 + timedelta(minutes=i), i) for i in range(3)
    ]
    plan = plan_delivery(failures, [key], policy, ready_at=T0)
    assert plan.first_attempt_at == T0
    assert plan.next_attempt_at == T0 + timedelta(minutes=2, seconds=120)
    assert not plan.is_due(T0 + timedelta(minutes=3)) and plan.is_due(T0 + timedelta(minutes=4))

    late = [_attempt("A@h:1", DeliveryStatus.FAILURE, T0), *failures[1:]]
    late.append(_attempt("A@h:1", DeliveryStatus.FAILURE, T0 + timedelta(hours=23, minutes=58)))
    plan = plan_delivery(late, [key], policy, ready_at=T0)
    assert plan.next_attempt_at == T0 + timedelta(hours=24)  # clamped to the deadline
    assert plan.is_expired(T0 + timedelta(hours=24)) and not plan.is_expired(T0)

    done = [*failures, _attempt("A@h:1", DeliveryStatus.SUCCESS, T0 + timedelta(hours=1), 9)]
    plan = plan_delivery(done, [key], policy, ready_at=T0)
    assert plan.pending == () and plan.next_attempt_at is None and not plan.is_expired(T0)


def test_store_statuses_are_named_and_warnings_count_as_success() -> None:
    from dicom_node.dispatch import is_store_success

    assert is_store_success(0x0000) and is_store_success(0xB000) and is_store_success(0xB007)
    assert not is_store_success(0xA700) and not is_store_success(0x0122)
    assert describe_store_status(0xA700) == "0xA700 Failure: Refused: Out of Resources"
    assert describe_store_status(0xB000) == "0xB000 Warning: Coercion of Data Elements"
    assert describe_store_status(0xC123).startswith("0xC123 Failure")


def test_store_instances_response_is_parsed() -> None:
    body = {
        "00081199": {
            "vr": "SQ",
            "Value": [
                {"00081155": {"vr": "UI", "Value": ["1.2.3"]}},
                {
                    "00081155": {"vr": "UI", "Value": ["1.2.4"]},
                    "00081196": {"vr": "US", "Value": [0xB000]},
                },
            ],
        },
        "00081198": {
            "vr": "SQ",
            "Value": [
                {
                    "00081155": {"vr": "UI", "Value": ["1.2.5"]},
                    "00081197": {"vr": "US", "Value": [0xA700]},
                }
            ],
        },
    }
    parsed = parse_store_response(json.dumps(body).encode())
    assert parsed is not None
    assert parsed.stored == {"1.2.3": None, "1.2.4": 0xB000}
    assert parsed.failed == {"1.2.5": 0xA700} and parsed.other_failures == ()
    assert parse_store_response(json.dumps([body]).encode()) == parsed
    assert parse_store_response(b"<html>not json</html>") is None
    assert parse_store_response(b"{}") is None
    others = {"0008119A": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xC122]}}]}}
    parsed = parse_store_response(json.dumps(others).encode())
    assert parsed is not None and parsed.other_failures == (0xC122,)
    assert describe_stow_reason(0xC122).endswith("Referenced Transfer Syntax not supported")


def test_destinations_come_from_settings_without_credentials_in_names(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        ae_title="NODE_AE",
        destinations=[DicomDestination(ae_title="PACS", host="10.0.0.5", port=104)],
        stow_url="https://admin:pw@pacs.example:8443/dicom-web/",
        stow_username="node",
        stow_password=SecretStr("s3cret"),
    )
    cstore, stow = destinations_from_settings(settings)
    assert isinstance(cstore, CStoreDestination) and isinstance(stow, StowDestination)
    assert cstore.name == "PACS@10.0.0.5:104" and cstore.calling_ae_title == "NODE_AE"
    assert stow.name == "https://pacs.example:8443/dicom-web"
    assert stow.studies_url == "https://pacs.example:8443/dicom-web/studies"
    assert "s3cret" not in repr(stow) and "s3cret" not in repr(settings)
    with pytest.raises(ValueError, match="AE title"):
        CStoreDestination(ae_title="A" * 17, host="h", port=104)
    with pytest.raises(ValueError, match="http"):
        StowDestination(base_url="ftp://x/dicom-web")


def test_jobs_that_are_not_done_are_refused_and_delivered_ones_left_alone(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    settings = settings_for(tmp_path)
    unused = CStoreDestination("NOBODY", "127.0.0.1", free_port())
    dispatcher = Dispatcher(settings, node_db, destinations=[unused])
    job_id = done_job(node_db)
    queued = enqueue_job(node_db, generate_uid(), 1, "e" * 64).job.id
    with pytest.raises(NotDeliverableError):
        dispatcher.deliver(queued, [])
    with pytest.raises(LookupError):
        dispatcher.deliver("no-such-job", [])
    assert Dispatcher(settings, node_db, destinations=[]).deliver(job_id, []).status is (
        DispatchStatus.NO_DESTINATIONS
    )
    assert list_delivery_attempts(node_db, job_id) == []


class _BreaksOnOneJob:
    """A destination with a bug that shows on one job's objects (an unforeseen error)."""

    name = "BUGGY@127.0.0.1:1"
    protocol = DeliveryProtocol.C_STORE

    def __init__(self, bad_job: str) -> None:
        self.bad_job = bad_job
        self.sent: list[str] = []

    def send(
        self, files: Sequence[ResultFile], *, job_id: str, ledger: object = None
    ) -> DestinationOutcome:
        if job_id == self.bad_job:
            raise KeyError("(0008,0018)")
        self.sent.append(job_id)
        return DestinationOutcome(self.name, self.protocol, AttemptStatus.SUCCESS)


def test_the_delivery_loop_fails_one_job_alone_and_goes_on(
    tmp_path: Path, node_db: NodeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22, item 2: one job's unexpected delivery error used to end the delivery loop."""
    settings = settings_for(tmp_path)
    bad, good = done_job(node_db), done_job(node_db)
    for job_id in (bad, good):
        make_result_set(settings.results_dir / job_id)
    buggy = _BreaksOnOneJob(bad)
    dispatcher = Dispatcher(settings, node_db, destinations=[buggy])

    outcomes = {o.job_id: o.status for o in dispatcher.deliver_due()}

    assert outcomes == {bad: DispatchStatus.INTERNAL_ERROR, good: DispatchStatus.DELIVERED}
    assert buggy.sent == [good]
    (attempt,) = list_delivery_attempts(node_db, bad)
    assert attempt.status is DeliveryStatus.FAILURE and attempt.error == "internal error: KeyError"
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and bad in errors[0].getMessage() and errors[0].exc_info is None
    # The failed job is retried with back-off like any failed attempt.
    assert dispatcher.schedule(bad).next_attempt_at == attempt.attempted_at + timedelta(seconds=30)


def test_a_superseded_job_is_never_delivered(tmp_path: Path, node_db: NodeDatabase) -> None:
    settings = settings_for(tmp_path)
    old = done_job(node_db)
    series = get_job(node_db, old)
    assert series is not None
    enqueue_job(node_db, series.series_instance_uid, 2, series.bundle_sha256)
    make_result_set(settings.results_dir / old)
    never = _BreaksOnOneJob(old)
    dispatcher = Dispatcher(settings, node_db, destinations=[never])
    assert dispatcher.deliver(old, []).status is DispatchStatus.SUPERSEDED
    assert dispatcher.deliver_due() == []
    assert list_delivery_attempts(node_db, old) == []


def test_a_job_killed_after_its_last_success_is_marked_delivered_without_resending(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    """A kill between recording the last destination's success and marking the job delivered
    left it ``done`` for ever: the delivery loop only looked at jobs with a destination pending
    (found by ``make bench-robustness``'s kill during delivery)."""
    settings = settings_for(tmp_path)
    job_id = done_job(node_db)
    make_result_set(settings.results_dir / job_id)
    never = _BreaksOnOneJob(job_id)
    record_delivery_attempt(
        node_db,
        job_id,
        destination=never.name,
        protocol=never.protocol,
        status=DeliveryStatus.SUCCESS,
        error=None,
        actor="test",
    )
    dispatcher = Dispatcher(settings, node_db, destinations=[never])

    (outcome,) = dispatcher.deliver_due()

    assert outcome.status is DispatchStatus.DELIVERED and outcome.attempts == ()
    assert never.sent == []
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED
    assert len(list_delivery_attempts(node_db, job_id)) == 1
    assert dispatcher.deliver_due() == []
