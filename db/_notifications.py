"""The notification outbox: what happened, and its delivery to each channel (issue 26).

A notification is written in the same transaction as the change that causes it (a job done or
finally failed, a disagreeing review) or, for an event raised outside a database change (the
board packet), by :func:`queue_notification`. Nothing is sent from inside a transaction: the
sender (:mod:`dicom_node.notify`) expands each new notification into one delivery per channel
subscribed to its event and sends the due ones, so a crash loses nothing and a delivery is
at least once.

A notification's ``detail`` holds non-identifying facts only (ids the node made up, states,
categories, counts): never a patient's name, ID, birth date, accession number or free text.
The StudyInstanceUID is kept apart (``study_instance_uid``) so that only a channel the site
allows it for ever sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from db._audit import insert_ignore
from db._boards import job_study
from db._database import NodeDatabase
from db._models import UID, Base, Job, Result
from db._types import StrEnumType, utcnow
from pancreas_contracts.boards import NotificationEvent, nccn_board_category
from pancreas_contracts.job_states import failed_stage
from pancreas_contracts.status import REFUSED_PREFIX

__all__ = [
    "DeliveryState",
    "Notification",
    "NotificationDelivery",
    "NotificationDeliveryInfo",
    "NotificationInfo",
    "claim_due_deliveries",
    "expand_notifications",
    "job_study_uid",
    "list_notification_deliveries",
    "list_notifications",
    "mark_delivery_failed",
    "mark_delivery_sent",
    "notify_disagreement",
    "notify_job_done",
    "notify_job_failed",
    "queue_notification",
    "write_notification",
]

_MAX_ERROR = 500
#: Detail values are short facts; a longer string is a sign of free text and is refused.
_MAX_DETAIL_TEXT = 128
_DetailValue = str | int | float | bool | None


class DeliveryState(StrEnum):
    """Where one notification stands for one channel."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    """Something the node tells people about (the outbox row)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[NotificationEvent] = mapped_column(StrEnumType(NotificationEvent, 32))
    #: What it is about: ``job``, ``review`` or ``board``, and that object's id.
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128))
    #: Non-identifying facts (ids, states, categories, counts) for the message.
    detail: Mapped[dict[str, Any]] = mapped_column()
    #: Sent only to channels that allow it (``include_study_uid``).
    study_instance_uid: Mapped[str | None] = mapped_column(String(UID))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the sender made its deliveries (``None``: not yet; the sender's work list).
    expanded_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_notifications_expanded_at", "expanded_at"),)


class NotificationDelivery(Base):
    """One notification to one channel: state, attempts and the next try."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    #: The channel's configured name (never its URL: that may hold a password).
    channel: Mapped[str] = mapped_column(String(64))
    state: Mapped[DeliveryState] = mapped_column(StrEnumType(DeliveryState, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index("ix_notification_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )


@dataclass(frozen=True)
class NotificationInfo:
    """A notification as stored."""

    id: int
    event: NotificationEvent
    object_type: str
    object_id: str
    detail: Mapping[str, _DetailValue]
    study_instance_uid: str | None
    created_at: datetime


@dataclass(frozen=True)
class NotificationDeliveryInfo:
    """One delivery as stored, with its notification."""

    id: int
    notification: NotificationInfo
    channel: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None


def _info(row: Notification) -> NotificationInfo:
    return NotificationInfo(
        id=row.id,
        event=NotificationEvent(row.event),
        object_type=row.object_type,
        object_id=row.object_id,
        detail=MappingProxyType(dict(row.detail)),
        study_instance_uid=row.study_instance_uid,
        created_at=row.created_at,
    )


def _delivery_info(row: NotificationDelivery, note: Notification) -> NotificationDeliveryInfo:
    return NotificationDeliveryInfo(
        id=row.id,
        notification=_info(note),
        channel=row.channel,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        sent_at=row.sent_at,
    )


def _checked_detail(detail: Mapping[str, Any]) -> dict[str, _DetailValue]:
    """``detail`` as stored; refuses anything but short scalar facts (no free text)."""
    out: dict[str, _DetailValue] = {}
    for key, value in detail.items():
        if not isinstance(key, str) or not key:
            raise ValueError("notification detail keys are non-empty strings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"notification detail {key!r} must be a scalar")
        if isinstance(value, str) and len(value) > _MAX_DETAIL_TEXT:
            raise ValueError(f"notification detail {key!r} is too long for a short fact")
        out[key] = value
    return out


def write_notification(
    session: Session,
    event: NotificationEvent,
    *,
    object_type: str,
    object_id: str,
    detail: Mapping[str, Any],
    study_instance_uid: str | None = None,
    now: datetime | None = None,
) -> Notification:
    """Add a notification to ``session``'s transaction (for the repositories' own use).

    Raises
    ------
    ValueError
        If ``detail`` holds anything but short scalar facts.
    """
    row = Notification(
        event=NotificationEvent(event),
        object_type=object_type[:32],
        object_id=object_id[:128],
        detail=_checked_detail(detail),
        study_instance_uid=study_instance_uid,
        created_at=now or utcnow(),
    )
    session.add(row)
    return row


def queue_notification(
    db: NodeDatabase,
    event: NotificationEvent,
    *,
    object_type: str,
    object_id: str,
    detail: Mapping[str, Any],
    study_instance_uid: str | None = None,
) -> NotificationInfo:
    """Queue a notification for an event raised outside a database change (own transaction).

    Parameters
    ----------
    event
        What happened, e.g. ``NotificationEvent.PACKET_READY``.
    object_type, object_id
        What it is about (``"board"``, ``str(board_id)``).
    detail
        Non-identifying facts for the message (``{"board_id": 3, "case_count": 5}``): short
        scalars only, never patient identifiers or free text.
    study_instance_uid
        The study it concerns, if any; only channels that allow it ever see it.

    Raises
    ------
    ValueError
        If ``detail`` holds anything but short scalar facts.
    """
    with db.session() as session:
        row = write_notification(
            session, event, object_type=object_type, object_id=object_id, detail=detail,
            study_instance_uid=study_instance_uid,
        )  # fmt: skip
        session.flush()
        return _info(row)


def job_study_uid(session: Session, job: Job) -> str | None:
    """The StudyInstanceUID of ``job``'s series (``None`` if the series is unknown)."""
    study = job_study(session, job)
    return None if study is None else study.study_instance_uid


def notify_job_done(
    session: Session, job: Job, result: Result | None, reason: str | None, now: datetime
) -> None:
    """Queue RESULT_READY for a job done with a result or a refusal (caller's transaction).

    A job done with neither has nothing to tell; the caller skips superseded jobs (their
    result is never delivered).
    """
    if result is not None:
        detail: dict[str, _DetailValue] = {
            "job_id": job.id,
            "outcome": result.outcome or "done",
            "category": result.category_label,
        }
    elif reason is not None and reason.startswith(REFUSED_PREFIX):
        # Only the refusal's code ("not-localised"), not what was measured.
        code = reason[len(REFUSED_PREFIX) :].split(":", 1)[0].strip()[:64]
        detail = {"job_id": job.id, "outcome": "refused", "refusal": code or None}
    else:
        return
    write_notification(
        session, NotificationEvent.RESULT_READY, object_type="job", object_id=job.id,
        detail=detail, study_instance_uid=job_study_uid(session, job), now=now,
    )  # fmt: skip


def notify_job_failed(session: Session, job: Job, now: datetime) -> None:
    """Queue RESULT_FAILED for a job that failed for good (caller's transaction).

    The detail names the stage only: a failure reason may quote measured values.
    """
    write_notification(
        session, NotificationEvent.RESULT_FAILED, object_type="job", object_id=job.id,
        detail={"job_id": job.id, "stage": failed_stage(job.failure_reason) or "unknown"},
        study_instance_uid=job_study_uid(session, job), now=now,
    )  # fmt: skip


def notify_disagreement(
    session: Session,
    *,
    review_id: int,
    verdict: str,
    ai_category: int | None,
    category: str | None,
    study_instance_uid: str,
    now: datetime,
) -> None:
    """Queue DISAGREEMENT for a review whose category differs from the node's.

    The reviewer's reason is free text and never part of it.
    """
    ai = None if ai_category is None else nccn_board_category(ai_category).value
    write_notification(
        session, NotificationEvent.DISAGREEMENT, object_type="review", object_id=str(review_id),
        detail={
            "review_id": review_id, "verdict": verdict, "ai_category": ai,
            "reviewer_category": category,
        },
        study_instance_uid=study_instance_uid, now=now,
    )  # fmt: skip


def expand_notifications(
    db: NodeDatabase,
    subscriptions: Mapping[NotificationEvent, tuple[str, ...]],
    *,
    limit: int = 100,
    now: datetime | None = None,
) -> int:
    """Make the deliveries of notifications not expanded yet; how many were expanded.

    ``subscriptions`` maps each event to the names of the channels that want it. A
    notification nobody subscribes to is marked expanded without deliveries. Idempotent per
    (notification, channel), so two senders never make a delivery twice.
    """
    now = now or utcnow()
    stmt = (
        select(Notification)
        .where(Notification.expanded_at.is_(None))
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with db.session() as session:
        rows = list(session.scalars(stmt))
        for row in rows:
            for channel in subscriptions.get(NotificationEvent(row.event), ()):
                insert_ignore(
                    session,
                    NotificationDelivery.__table__,  # type: ignore[arg-type]
                    {
                        "notification_id": row.id,
                        "channel": channel,
                        "state": DeliveryState.PENDING.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                    },
                    ["notification_id", "channel"],
                )
            row.expanded_at = now
        return len(rows)


def claim_due_deliveries(
    db: NodeDatabase, *, lease_s: float, limit: int = 20, now: datetime | None = None
) -> list[NotificationDeliveryInfo]:
    """Take the pending deliveries that are due, oldest first, and count the attempt.

    Each claimed delivery's next attempt moves ``lease_s`` ahead in the same transaction, so
    another sender skips it while it is being sent, and a sender that dies mid-send leaves it
    to be tried again when the lease runs out (at least once).
    """
    now = now or utcnow()
    stmt = (
        select(NotificationDelivery, Notification)
        .join(Notification, Notification.id == NotificationDelivery.notification_id)
        .where(
            NotificationDelivery.state == DeliveryState.PENDING,
            NotificationDelivery.next_attempt_at <= now,
        )
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=NotificationDelivery)
    )
    lease = datetime.fromtimestamp(now.timestamp() + lease_s, tz=now.tzinfo)
    with db.session() as session:
        claimed = []
        for delivery, note in session.execute(stmt):
            delivery.attempts += 1
            delivery.next_attempt_at = lease
            claimed.append(_delivery_info(delivery, note))
        return claimed


def mark_delivery_sent(db: NodeDatabase, delivery_id: int, *, now: datetime | None = None) -> None:
    """Record that the channel accepted the message."""
    stmt = (
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id)
        .values(
            state=DeliveryState.SENT, sent_at=now or utcnow(), next_attempt_at=None,
            last_error=None,
        )
    )  # fmt: skip
    with db.session() as session:
        session.execute(stmt)


def mark_delivery_failed(
    db: NodeDatabase, delivery_id: int, error: str, *, retry_at: datetime | None
) -> None:
    """Record a failed attempt: try again at ``retry_at``, or give up (``None``).

    ``error`` must not hold the channel's URL or any identifier.
    """
    stmt = (
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id)
        .values(
            state=DeliveryState.PENDING if retry_at is not None else DeliveryState.FAILED,
            next_attempt_at=retry_at,
            last_error=error[:_MAX_ERROR],
        )
    )
    with db.session() as session:
        session.execute(stmt)


def list_notifications(
    db: NodeDatabase, *, event: NotificationEvent | None = None
) -> list[NotificationInfo]:
    """Notifications, oldest first, optionally of one event only."""
    stmt = select(Notification).order_by(Notification.id)
    if event is not None:
        stmt = stmt.where(Notification.event == event)
    with db.session() as session:
        return [_info(row) for row in session.scalars(stmt)]


def list_notification_deliveries(
    db: NodeDatabase, *, notification_id: int | None = None
) -> list[NotificationDeliveryInfo]:
    """Deliveries with their notifications, in id order."""
    stmt = (
        select(NotificationDelivery, Notification)
        .join(Notification, Notification.id == NotificationDelivery.notification_id)
        .order_by(NotificationDelivery.id)
    )
    if notification_id is not None:
        stmt = stmt.where(NotificationDelivery.notification_id == notification_id)
    with db.session() as session:
        return [_delivery_info(d, n) for d, n in session.execute(stmt)]
