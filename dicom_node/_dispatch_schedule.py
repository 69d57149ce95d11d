"""The retry schedule of a job's delivery, derived from its recorded attempts.

The delivery records are the only state: a restarted node computes the same schedule, and the
schedule is a pure function that tests can drive with any clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import DeliveryAttemptInfo, DeliveryProtocol, DeliveryStatus, backoff_delay

__all__ = ["DeliverySchedule", "DestinationKey", "RetryPolicy", "plan_delivery"]

#: How a destination is matched with its recorded attempts: (recorded name, protocol).
DestinationKey = tuple[str, DeliveryProtocol]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off between attempts, and when to give up.

    Parameters
    ----------
    base_delay_s
        Delay after the first failure; it doubles after each further one (:func:`db.backoff_delay`).
    max_delay_s
        Upper bound of one delay.
    max_age
        Delivery is given up this long after the job's first attempt (``dispatch_max_age_h``).
    """

    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    max_age: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.base_delay_s <= 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 < base_delay_s <= max_delay_s")
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")

    def delay(self, failures: int) -> timedelta:
        """Wait after ``failures`` consecutive failed attempts (30 s, 60 s, ... 1 h by default)."""
        return backoff_delay(failures, base_s=self.base_delay_s, max_s=self.max_delay_s)


@dataclass(frozen=True)
class DeliverySchedule:
    """Where one job's delivery stands.

    Parameters
    ----------
    pending
        Destinations without a successful attempt, in configuration order.
    delivered
        Destinations with a successful attempt.
    first_attempt_at
        The job's first recorded attempt (any destination), ``None`` before any.
    next_attempt_at
        When the next attempt is due; ``None`` if nothing is pending. Never later than
        ``deadline``.
    deadline
        ``first_attempt_at + max_age``: at or after it the delivery is given up.
    """

    pending: tuple[DestinationKey, ...]
    delivered: tuple[DestinationKey, ...]
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    deadline: datetime | None

    def is_due(self, now: datetime) -> bool:
        """Whether an attempt (or the give-up) is due at ``now``."""
        return self.next_attempt_at is not None and self.next_attempt_at <= now

    def is_expired(self, now: datetime) -> bool:
        """Whether destinations are still pending at or after the deadline."""
        return bool(self.pending) and self.deadline is not None and now >= self.deadline


def plan_delivery(
    attempts: Sequence[DeliveryAttemptInfo],
    destinations: Sequence[DestinationKey],
    policy: RetryPolicy,
    *,
    ready_at: datetime,
) -> DeliverySchedule:
    """Compute a job's schedule from its recorded attempts.

    A destination with a successful attempt is done. A pending destination that was never
    tried is due at ``ready_at`` (when the job finished); one that failed ``n`` times since is
    due ``policy.delay(n)`` after its latest attempt, but no later than the deadline.

    Parameters
    ----------
    attempts
        The job's delivery attempts (any order).
    destinations
        The destinations configured now; attempts at others only count for the first-attempt
        time.
    policy
        Back-off and give-up rules.
    ready_at
        When the job became ready for delivery.
    """
    first = min((a.attempted_at for a in attempts), default=None)
    deadline = first + policy.max_age if first is not None else None
    pending: list[DestinationKey] = []
    delivered: list[DestinationKey] = []
    due: list[datetime] = []
    for key in destinations:
        mine = [a for a in attempts if (a.destination, a.protocol) == key]
        if any(a.status is DeliveryStatus.SUCCESS for a in mine):
            delivered.append(key)
            continue
        pending.append(key)
        if not mine:
            due.append(ready_at)
        else:
            latest = max(a.attempted_at for a in mine)
            due.append(latest + policy.delay(len(mine)))
    next_at = min(due, default=None)
    if next_at is not None and deadline is not None:
        next_at = min(next_at, deadline)
    return DeliverySchedule(tuple(pending), tuple(delivered), first, next_at, deadline)
