"""Named statuses and outcome records of result dispatch (see :mod:`dicom_node.dispatch`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from db import DeliveryProtocol

__all__ = [
    "AttemptStatus",
    "DeliveryLedger",
    "DeliveryOutcome",
    "DestinationOutcome",
    "DispatchStatus",
    "InstanceOutcome",
    "InstanceStatus",
    "describe_store_status",
    "is_store_success",
    "summarize_failures",
]

_MAX_LISTED = 8  # instances named in one error text; the rest are counted


class InstanceStatus(StrEnum):
    """What became of one SOP instance at one destination in one attempt."""

    #: The peer answered Success (C-STORE 0x0000; STOW-RS ReferencedSOPSequence item).
    STORED = "stored"
    #: The peer stored it with a warning (C-STORE 0xBxxx; STOW-RS WarningReason).
    STORED_WITH_WARNING = "stored-with-warning"
    #: The peer answered a failure status, or no response came (DIMSE timeout, abort).
    FAILED = "failed"
    #: Never offered to the peer: unreadable file, no accepted presentation context, or the
    #: association ended before its turn.
    NOT_SENT = "not-sent"


class AttemptStatus(StrEnum):
    """Outcome of one attempt to send a batch to one destination."""

    #: Every instance was stored (possibly with warnings).
    SUCCESS = "success"
    #: The peer was reached but one or more instances were not stored.
    INSTANCE_FAILURES = "instance-failures"
    #: No TCP connection, or no A-ASSOCIATE response within the ACSE timeout.
    CONNECTION_FAILED = "connection-failed"
    #: The peer answered A-ASSOCIATE-RJ (PS3.8 7.1.1.9).
    ASSOCIATION_REJECTED = "association-rejected"
    #: A-ABORT / A-P-ABORT during negotiation or while sending.
    ASSOCIATION_ABORTED = "association-aborted"
    #: The association was accepted but none of the proposed presentation contexts were.
    NO_ACCEPTED_CONTEXT = "no-accepted-context"
    #: STOW-RS answered an HTTP error status (PS3.18 10.5.3).
    HTTP_ERROR = "http-error"
    #: STOW-RS answered a body that is not a Store Instances Response (PS3.18 10.5.3.1).
    INVALID_RESPONSE = "invalid-response"
    #: Nothing could be offered: no readable result file, or more than 128 presentation
    #: contexts would be needed (PS3.8 9.3.2.2).
    NOTHING_SENDABLE = "nothing-sendable"


class DispatchStatus(StrEnum):
    """Outcome of :meth:`dicom_node.dispatch.Dispatcher.deliver` for one job."""

    #: Every destination has the objects; the job was marked ``delivered``.
    DELIVERED = "delivered"
    #: The job was already ``delivered``; nothing was sent.
    ALREADY_DELIVERED = "already-delivered"
    #: At least one destination failed; the next attempt is due at ``next_attempt_at``.
    RETRY_SCHEDULED = "retry-scheduled"
    #: ``dispatch_max_age_h`` passed since the first attempt: the job was marked ``failed``.
    GIVEN_UP = "given-up"
    #: No destination is configured; the job stays ``done``.
    NO_DESTINATIONS = "no-destinations"
    #: Another delivery of the same job holds its lease; nothing was sent by this call.
    IN_PROGRESS = "in-progress"
    #: The job was cancelled or superseded by a newer version of its series: never delivered.
    SUPERSEDED = "superseded"
    #: The delivery raised an unexpected error; it was recorded as a failed attempt.
    INTERNAL_ERROR = "internal-error"


@dataclass(frozen=True)
class InstanceOutcome:
    """One instance's outcome at one destination.

    Parameters
    ----------
    sop_instance_uid
        The instance's SOPInstanceUID, or the file name if it could not be read.
    status
        What happened to it.
    code
        The DIMSE status (C-STORE) or FailureReason/WarningReason (STOW-RS), if the peer gave one.
    detail
        A short, patient-data-free explanation for the audit trail.
    """

    sop_instance_uid: str
    status: InstanceStatus
    code: int | None = None
    detail: str = ""

    @property
    def stored(self) -> bool:
        """Whether the peer has the instance."""
        return self.status in (InstanceStatus.STORED, InstanceStatus.STORED_WITH_WARNING)


def _record_nothing(sop_instance_uid: str) -> None:
    """The default ledger keeps no record (a destination used on its own)."""


@dataclass(frozen=True)
class DeliveryLedger:
    """What one destination already holds of a job, and where to record what it confirms.

    The dispatcher builds one per (job, destination) from :func:`db.delivered_objects` with a
    ``record`` that commits :func:`db.record_delivered_object`, so a destination stays free of
    the database. A destination skips the objects in ``delivered`` (reported as stored) and
    calls ``record`` for each object right after the peer confirmed it, before sending the next
    (C-STORE) or after the request (STOW-RS).

    Parameters
    ----------
    delivered
        SOPInstanceUIDs confirmed by this destination in earlier attempts.
    record
        Called with each SOPInstanceUID the peer confirms; its errors propagate.
    """

    delivered: frozenset[str] = frozenset()
    record: Callable[[str], None] = field(default=_record_nothing, compare=False)

    def skipped(self, sop_instance_uid: str) -> InstanceOutcome:
        """The outcome of an object not sent again because an earlier attempt stored it."""
        return InstanceOutcome(
            sop_instance_uid, InstanceStatus.STORED, detail="stored in an earlier attempt"
        )


@dataclass(frozen=True)
class DestinationOutcome:
    """One attempt at one destination.

    Parameters
    ----------
    destination
        The destination's name as recorded (``AE@host:port`` or the STOW-RS URL).
    protocol
        C-STORE or STOW-RS.
    status
        The attempt's named outcome.
    instances
        Per-instance outcomes, in the order the files were given.
    error
        What went wrong, for the delivery record (``None`` on success); never patient data.
    """

    destination: str
    protocol: DeliveryProtocol
    status: AttemptStatus
    instances: tuple[InstanceOutcome, ...] = ()
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """Whether every instance reached this destination."""
        return self.status is AttemptStatus.SUCCESS


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one :meth:`~dicom_node.dispatch.Dispatcher.deliver` call did.

    Parameters
    ----------
    job_id
        The job.
    status
        The named overall outcome.
    attempts
        The attempts made by this call (destinations already served earlier are not retried).
    next_attempt_at
        When the next attempt is due (``RETRY_SCHEDULED`` only).
    first_attempt_at
        When the job's first delivery attempt was recorded (``None`` before any).
    """

    job_id: str
    status: DispatchStatus
    attempts: tuple[DestinationOutcome, ...] = ()
    next_attempt_at: datetime | None = None
    first_attempt_at: datetime | None = None


def is_store_success(code: int) -> bool:
    """Whether a C-STORE status means the instance was stored.

    PS3.4 B.2.3: 0x0000 is Success; 0xB000, 0xB006 and 0xB007 are Warnings (the instance was
    stored, possibly coerced). Every 0xBxxx is treated as a warning; anything else is a failure.
    """
    return code == 0x0000 or 0xB000 <= code <= 0xBFFF


def describe_store_status(code: int) -> str:
    """``0xA700 Failure: Refused: Out of Resources`` for a C-STORE status or failure reason.

    Names come from PS3.4 Table B.2-1 (Storage Service Class) and PS3.7 Annex C (general
    statuses), as tabulated by pynetdicom.
    """
    category, text = STORAGE_SERVICE_CLASS_STATUS.get(code, ("Unknown", "unknown status"))
    return f"0x{code:04X} {category}: {text}" if text else f"0x{code:04X} {category}"


def summarize_failures(instances: tuple[InstanceOutcome, ...]) -> str:
    """One line naming the instances that were not stored and why (for the audit record)."""
    bad = [i for i in instances if not i.stored]
    listed = "; ".join(f"{i.sop_instance_uid}: {i.detail}" for i in bad[:_MAX_LISTED])
    more = f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    return f"{len(bad)} of {len(instances)} instances not stored: {listed}{more}"
