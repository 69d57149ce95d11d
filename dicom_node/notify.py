"""The notification sender: the outbox's notifications to e-mail and webhooks (issue 26).

The database writes a notification in the transaction of the change that causes it (a result
ready, a final failure, a disagreeing review) or through :func:`db.queue_notification` (the
board packet). The :class:`Notifier` here, a thread of the running node, then

1. expands each new notification into one delivery per channel subscribed to its event
   (``notify_channels`` in the settings);
2. sends the due deliveries with `apprise <https://github.com/caronc/apprise>`_ (one
   ``apprise.Apprise`` per channel: ``mailto://``, ``json://``, ``slack://``, ...) and marks
   each sent as soon as apprise reports success, or schedules the next attempt with
   exponential back-off, giving up after ``notify_max_attempts``.

Delivery is at least once: a crash between apprise's success and the database update sends
that message again. A message carries the event, the ids the node made up (job, review,
board), states, categories and counts, an optional viewer link, and the investigational
notice; never a patient's name, ID, birth date, accession number or free text. The
StudyInstanceUID is added only for channels with ``include_study_uid``. Logs name the channel,
never its URL (it may hold a password or a token).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apprise
from sqlalchemy.exc import SQLAlchemyError

from db import (
    NodeDatabase,
    NotificationDeliveryInfo,
    NotificationInfo,
    backoff_delay,
    claim_due_deliveries,
    expand_notifications,
    mark_delivery_failed,
    mark_delivery_sent,
)
from pancreas_contracts.boards import NotificationEvent
from pancreas_contracts.settings import NotificationChannel, Settings

__all__ = ["INVESTIGATIONAL_NOTICE", "Message", "Notifier", "compose_message"]

_log = logging.getLogger(__name__)

#: The last line of every message.
INVESTIGATIONAL_NOTICE = "Investigational, not for clinical use."

# A claimed delivery is not offered again for this long: longer than apprise's own connect
# and read timeouts, so only a sender that died mid-send leaves one to be retried.
_CLAIM_LEASE_S = 300.0

_TITLES: Mapping[NotificationEvent, str] = {
    NotificationEvent.RESULT_READY: "PancreasAI: result ready",
    NotificationEvent.RESULT_FAILED: "PancreasAI: analysis failed",
    NotificationEvent.DISAGREEMENT: "PancreasAI: review disagrees with the AI category",
    NotificationEvent.PACKET_READY: "PancreasAI: tumor board packet ready",
}

_SUMMARIES: Mapping[NotificationEvent, str] = {
    NotificationEvent.RESULT_READY: "An AI result is ready for review.",
    NotificationEvent.RESULT_FAILED: "An analysis failed and will not be retried on its own.",
    NotificationEvent.DISAGREEMENT: (
        "A radiologist's review gives another category than the AI result."
    ),
    NotificationEvent.PACKET_READY: "A tumor board's packet has been built.",
}

# apprise's message type: chat and webhook receivers colour or route by it.
_TYPES: Mapping[NotificationEvent, apprise.NotifyType] = {
    NotificationEvent.RESULT_READY: apprise.NotifyType.INFO,
    NotificationEvent.RESULT_FAILED: apprise.NotifyType.FAILURE,
    NotificationEvent.DISAGREEMENT: apprise.NotifyType.WARNING,
    NotificationEvent.PACKET_READY: apprise.NotifyType.INFO,
}

# Readable labels for the detail keys the node writes; other keys are shown as they are.
_LABELS: Mapping[str, str] = {
    "job_id": "Job",
    "outcome": "Outcome",
    "category": "AI category",
    "refusal": "Refused because",
    "stage": "Failed at stage",
    "review_id": "Review",
    "verdict": "Verdict",
    "ai_category": "AI category",
    "reviewer_category": "Reviewer's category",
    "board_id": "Board",
    "case_count": "Cases",
}


@dataclass(frozen=True)
class Message:
    """One notification as one channel sees it."""

    title: str
    body: str


def _viewer_link(viewer_url: str, note: NotificationInfo, study_instance_uid: str | None) -> str:
    """``viewer_url`` with the object's id (and the study's UID, if allowed) as query."""
    parts = urlsplit(viewer_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.append((note.object_type, note.object_id))
    if study_instance_uid:
        query.append(("StudyInstanceUIDs", study_instance_uid))
    return urlunsplit(parts._replace(query=urlencode(query)))


def compose_message(
    note: NotificationInfo, channel: NotificationChannel, viewer_url: str | None
) -> Message:
    """The title and plain-text body of ``note`` for ``channel``.

    Only the notification's non-identifying detail is shown; the StudyInstanceUID only when
    the channel allows it.
    """
    lines = [_SUMMARIES[note.event], ""]
    for key, value in note.detail.items():
        if value is not None:
            lines.append(f"{_LABELS.get(key, key)}: {value}")
    study = note.study_instance_uid if channel.include_study_uid else None
    if study:
        lines.append(f"Study: {study}")
    if viewer_url:
        lines.append(f"Open: {_viewer_link(viewer_url, note, study)}")
    lines += ["", INVESTIGATIONAL_NOTICE]
    return Message(title=_TITLES[note.event], body="\n".join(lines))


class Notifier:
    """Expands and sends notifications, in a thread of the running node.

    Parameters
    ----------
    settings
        ``notify_channels``, ``notify_max_attempts``, ``notify_retry_s``, ``notify_poll_s``
        and ``notify_viewer_url``.
    database
        The node database (already migrated).
    """

    def __init__(self, settings: Settings, database: NodeDatabase) -> None:
        self._db = database
        self._channels = {c.name: c for c in settings.notify_channels}
        self._senders = {c.name: self._apprise(c) for c in settings.notify_channels}
        self._subscriptions = {
            event: tuple(c.name for c in settings.notify_channels if event in c.events)
            for event in NotificationEvent
        }
        self._max_attempts = settings.notify_max_attempts
        self._retry_s = settings.notify_retry_s
        self._poll_s = settings.notify_poll_s
        self._viewer_url = settings.notify_viewer_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _apprise(channel: NotificationChannel) -> apprise.Apprise | None:
        sender = apprise.Apprise()
        if not sender.add(channel.url.get_secret_value()):
            # The URL is not shown: it may hold a password.
            _log.error("notification channel %s: apprise does not accept its URL", channel.name)
            return None
        return sender

    def run_once(self, *, now: datetime | None = None) -> int:
        """Expand new notifications, then send the due deliveries; how many were sent."""
        now = now or datetime.now(UTC)
        expand_notifications(self._db, self._subscriptions, now=now)
        sent = 0
        for delivery in claim_due_deliveries(self._db, lease_s=_CLAIM_LEASE_S, now=now):
            sent += self._send(delivery, now)
        return sent

    def _send(self, delivery: NotificationDeliveryInfo, now: datetime) -> bool:
        channel = self._channels.get(delivery.channel)
        sender = self._senders.get(delivery.channel)
        if channel is None or sender is None:
            why = "channel not configured" if channel is None else "channel URL not accepted"
            self._failed(delivery, why, now, final=True)
            return False
        message = compose_message(delivery.notification, channel, self._viewer_url)
        ok = sender.notify(
            title=message.title,
            body=message.body,
            body_format=apprise.NotifyFormat.TEXT,
            notify_type=_TYPES[delivery.notification.event],
        )
        if ok:
            mark_delivery_sent(self._db, delivery.id)
            _log.info(
                "notification %d (%s) sent to %s",
                delivery.notification.id, delivery.notification.event.value, channel.name,
            )  # fmt: skip
            return True
        final = delivery.attempts >= self._max_attempts
        self._failed(delivery, "the channel did not accept the message", now, final=final)
        return False

    def _failed(
        self, delivery: NotificationDeliveryInfo, why: str, now: datetime, *, final: bool
    ) -> None:
        error = f"attempt {delivery.attempts}: {why}"
        if final:
            mark_delivery_failed(self._db, delivery.id, error, retry_at=None)
            _log.warning(
                "notification %d to %s given up after %d attempt(s): %s",
                delivery.notification.id, delivery.channel, delivery.attempts, why,
            )  # fmt: skip
            return
        retry_at = now + backoff_delay(delivery.attempts, base_s=self._retry_s)
        mark_delivery_failed(self._db, delivery.id, error, retry_at=retry_at)
        _log.info(
            "notification %d to %s: %s; retry at %s",
            delivery.notification.id, delivery.channel, why, retry_at.isoformat(),
        )  # fmt: skip

    def start(self) -> None:
        """Run :meth:`run_once` every ``notify_poll_s`` in a daemon thread."""
        # apprise's own INFO/DEBUG lines repeat recipients and message text.
        logging.getLogger("apprise").setLevel(logging.WARNING)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread (a send in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except SQLAlchemyError as exc:
                _log.error("notification loop: %s", type(exc).__name__)
            # Supervision boundary: no error of one pass ends the notification loop.
            except Exception as exc:  # noqa: BLE001
                _log.error("notification loop: %s", type(exc).__name__)
                _log.debug("notification loop traceback", exc_info=exc)
            if self._stop.wait(self._poll_s):
                return

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
