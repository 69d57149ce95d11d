"""Notifications through apprise to a real local SMTP sink and a real local HTTP receiver."""

from __future__ import annotations

import email
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from db import (
    DeliveryState,
    NewResult,
    NodeDatabase,
    NotificationDeliveryInfo,
    claim_next_job,
    complete_job,
    enqueue_job,
    list_notification_deliveries,
    queue_notification,
    record_instance,
    record_review,
)
from dicom_node.node import Node
from dicom_node.notify import INVESTIGATIONAL_NOTICE, Notifier
from pancreas_contracts import Settings
from pancreas_contracts.boards import BoardCategory, NotificationEvent, ReviewInput, ReviewVerdict
from pancreas_contracts.settings import NotificationChannel
from tests.conftest import free_port
from tests.dicom_node.conftest import node_settings

STUDY = "1.2.826.0.1.3680043.99.7"
SERIES = f"{STUDY}.1"
PATIENT_ID = "PAT-4711"
ACCESSION = "ACC-0815"
REASON = "Encasement of the SMA over 180 degrees"
REVIEWER = "dr.house"
TOKEN = "s3cret-token"
VIEWER = "http://viewer.example/ohif/pancreas-ai"


# --- the local receivers ---------------------------------------------------------------------


class _SmtpSink:
    """aiosmtpd handler: keeps every message it is handed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _mail_text(message: EmailMessage) -> str:
    """Subject and every decoded text part of ``message``."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(parts)


@dataclass
class _Receiver:
    """A loopback HTTP server that records requests and answers with scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "body": json.loads(body)})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        return Handler


@pytest.fixture
def smtp_sink() -> Iterator[tuple[_SmtpSink, int]]:
    sink = _SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    state = _Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _mailto(port: int) -> str:
    # Plain SMTP without TLS or login: apprise's insecure mode, the sink as SMTP host.
    return f"mailto://127.0.0.1:{port}?mode=insecure&from=node@example.org&to=board@example.org"


def _json(port: int, path: str = "/hook") -> str:
    return f"json://hook:{TOKEN}@127.0.0.1:{port}{path}"


def _channel(name: str, url: str, **values: Any) -> NotificationChannel:
    return NotificationChannel(name=name, url=SecretStr(url), **values)


def _settings(tmp_path: Path, channels: list[NotificationChannel], **values: Any) -> Settings:
    defaults: dict[str, Any] = {"notify_retry_s": 0.05, "notify_max_attempts": 5}
    defaults.update(values)
    return Settings(data_dir=tmp_path / "data", notify_channels=channels, **defaults)


def _until(notifier: Notifier, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Run the sender until ``done()`` holds (fails after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the notifications"
        notifier.run_once()
        time.sleep(0.02)


def _deliveries(db: NodeDatabase) -> list[NotificationDeliveryInfo]:
    return list_notification_deliveries(db)


def _settled(db: NodeDatabase, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = _deliveries(db)
        return len(rows) == count and all(d.state is not DeliveryState.PENDING for d in rows)

    return check


# --- the events ------------------------------------------------------------------------------


def _result_and_disagreement(db: NodeDatabase) -> str:
    """A job done with a result, then a radiologist's override: RESULT_READY, DISAGREEMENT."""
    record_instance(
        db, study_instance_uid=STUDY, series_instance_uid=SERIES, sop_instance_uid=f"{SERIES}.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", transfer_syntax_uid="1.2.840.10008.1.2.1",
        spool_path="/spool/x.dcm", modality="CT", patient_id=PATIENT_ID,
        accession_number=ACCESSION, study_date=date(2025, 3, 14),
    )  # fmt: skip
    job = enqueue_job(db, SERIES, 1, "sha").job
    assert claim_next_job(db, "w", 60) is not None
    complete_job(
        db, job.id, "w",
        NewResult(
            result_json_path="/r.json", bundle_name="b", bundle_version="1", bundle_sha256="sha",
            category=1, category_label="borderline", probabilities=(0.2, 0.7, 0.1),
            outcome="done",
        ),
    )  # fmt: skip
    override = ReviewInput(
        verdict=ReviewVerdict.OVERRIDE, category=BoardCategory.LOCALLY_ADVANCED, reason=REASON
    )
    record_review(db, STUDY, override, actor=REVIEWER)
    return job.id


def _assert_no_identifiers(text: str) -> None:
    for secret in (PATIENT_ID, ACCESSION, REASON, REVIEWER, TOKEN):
        assert secret not in text


def test_email_and_webhook_get_their_events_without_identifiers(
    tmp_path: Path,
    node_db: NodeDatabase,
    smtp_sink: tuple[_SmtpSink, int],
    receiver: _Receiver,
) -> None:
    sink, smtp_port = smtp_sink
    channels = [
        _channel("mail", _mailto(smtp_port)),  # every event, no StudyInstanceUID
        _channel(
            "hook",
            _json(receiver.port),
            events=(NotificationEvent.DISAGREEMENT,),
            include_study_uid=True,
        ),
        _channel(
            "packets", _json(receiver.port, "/packets"), events=(NotificationEvent.PACKET_READY,)
        ),
    ]
    notifier = Notifier(_settings(tmp_path, channels, notify_viewer_url=VIEWER), node_db)
    job_id = _result_and_disagreement(node_db)
    _until(notifier, _settled(node_db, 3))
    assert {d.state for d in _deliveries(node_db)} == {DeliveryState.SENT}

    mails = sorted((_mail_text(m) for m in sink.messages), key=len)
    assert len(mails) == 2
    ready = next(m for m in mails if "result ready" in m)
    assert f"Job: {job_id}" in ready and "Outcome: done" in ready
    assert "AI category: borderline" in ready
    assert f"{VIEWER}?job={job_id}" in ready
    disagree = next(m for m in mails if "disagrees" in m)
    assert "Reviewer's category: locally-advanced" in disagree
    for text in mails:
        assert INVESTIGATIONAL_NOTICE in text
        assert STUDY not in text  # the mail channel is not allowed the StudyInstanceUID
        _assert_no_identifiers(text)

    # The webhook subscribed to disagreements only; the packet channel got nothing.
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    hook = receiver.requests[0]["body"]
    assert hook["title"] == "PancreasAI: review disagrees with the AI category"
    assert hook["type"] == "warning"
    assert f"Study: {STUDY}" in hook["message"]
    assert f"StudyInstanceUIDs={STUDY}" in hook["message"]
    assert hook["message"].rstrip().endswith(INVESTIGATIONAL_NOTICE)
    _assert_no_identifiers(json.dumps(hook))


def test_a_refusing_receiver_is_retried_until_it_accepts(
    tmp_path: Path, node_db: NodeDatabase, receiver: _Receiver
) -> None:
    receiver.statuses = [500, 500, 200]
    notifier = Notifier(_settings(tmp_path, [_channel("hook", _json(receiver.port))]), node_db)
    note = queue_notification(
        node_db, NotificationEvent.PACKET_READY, object_type="board", object_id="4",
        detail={"board_id": 4, "case_count": 6},
    )  # fmt: skip
    _until(notifier, _settled(node_db, 1))
    [delivery] = _deliveries(node_db)
    assert delivery.notification.id == note.id
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 3)
    assert len(receiver.requests) == 3
    message = receiver.requests[-1]["body"]["message"]
    assert "Board: 4" in message and "Cases: 6" in message


def test_a_receiver_that_is_down_fails_after_the_last_attempt(
    tmp_path: Path, node_db: NodeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    down = free_port()  # nothing listens there
    notifier = Notifier(
        _settings(tmp_path, [_channel("hook", _json(down))], notify_max_attempts=3),
        node_db,
    )
    note = queue_notification(
        node_db, NotificationEvent.PACKET_READY, object_type="board", object_id="5",
        detail={"board_id": 5},
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="dicom_node.notify"):
        _until(notifier, _settled(node_db, 1))
    [delivery] = _deliveries(node_db)
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 3)
    assert delivery.last_error is not None and TOKEN not in delivery.last_error
    gave_up = [
        r for r in caplog.records if r.name == "dicom_node.notify" and r.levelno == logging.WARNING
    ]
    assert len(gave_up) == 1
    assert f"notification {note.id} to hook given up" in gave_up[0].getMessage()
    assert TOKEN not in caplog.text and str(down) not in caplog.text
    notifier.run_once()  # given up: never tried again
    assert _deliveries(node_db)[0].attempts == 3


def test_a_channel_apprise_refuses_fails_at_once_without_its_url(
    tmp_path: Path, node_db: NodeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"nosuchservice://{TOKEN}@example.org"
    with caplog.at_level(logging.INFO, logger="dicom_node.notify"):
        notifier = Notifier(_settings(tmp_path, [_channel("odd", url)]), node_db)
        queue_notification(
            node_db, NotificationEvent.PACKET_READY, object_type="board", object_id="6",
            detail={"board_id": 6},
        )  # fmt: skip
        _until(notifier, _settled(node_db, 1))
    [delivery] = _deliveries(node_db)
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)
    assert delivery.last_error == "attempt 1: channel URL not accepted"
    assert "channel odd" in caplog.text and TOKEN not in caplog.text


def test_the_running_node_sends_queued_notifications(tmp_path: Path, receiver: _Receiver) -> None:
    settings = node_settings(
        tmp_path,
        notify_channels=[_channel("hook", _json(receiver.port))],
        notify_poll_s=0.1,
    )
    with Node(settings) as node:
        queue_notification(
            node.database, NotificationEvent.PACKET_READY, object_type="board", object_id="9",
            detail={"board_id": 9, "case_count": 2},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not receiver.requests:
            assert time.monotonic() < deadline, "the node's notifier sent nothing"
            time.sleep(0.05)
    assert receiver.requests[0]["body"]["title"] == "PancreasAI: tumor board packet ready"
