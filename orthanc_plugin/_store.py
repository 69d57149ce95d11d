"""The plugin's persistent state: submissions waiting for the node and labels applied.

A small SQLite file beside Orthanc's storage (``PancreasAI.StateFile``). It survives Orthanc
restarts, so a series that could not reach the node is retried after a restart too. Each
stable series is recorded once per *fingerprint* (the set of its instances): the same series
becoming stable again with the same instances is not submitted twice; with new instances it
is submitted again (the node then sees the late instances and versions the series).

A submission says whether the series was forwarded to the node, never what the routing rules
decided: the node's series assembly decides and the node database keeps that decision. The
column holding the forwarding note is still called ``decision``, so state files written when
the plugin routed series itself open unchanged; their ``ignored`` rows (series the plugin's
rules kept back) read as not forwarded.

Every method opens its own connection, so the worker thread and Orthanc's HTTP threads can use
one store without sharing a connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from time import time

__all__ = ["NewSubmission", "StudyState", "Submission", "SubmissionState", "SubmissionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY,
    orthanc_series_id TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    orthanc_study_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    instance_count INTEGER NOT NULL,
    state TEXT NOT NULL,
    decision TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    submitted_at REAL,
    UNIQUE (orthanc_series_id, fingerprint)
);
CREATE INDEX IF NOT EXISTS ix_submissions_due ON submissions (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS ix_submissions_study ON submissions (orthanc_study_id);
-- Rows written when the plugin applied the routing rules itself (see the docstring).
UPDATE submissions SET state = 'not-forwarded' WHERE state = 'ignored';
CREATE TABLE IF NOT EXISTS studies (
    orthanc_study_id TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    status TEXT,
    category TEXT,
    final INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
"""


class SubmissionState(StrEnum):
    """Where one submission stands."""

    PENDING = "pending"  # to be sent (first try or retry due at next_attempt_at)
    SUBMITTED = "submitted"  # the node acknowledged every instance
    NOT_FORWARDED = "not-forwarded"  # never sent: not a CT series (``forwarding`` says why)
    FAILED = "failed"  # the node never accepted it within the give-up time
    SUPERSEDED = "superseded"  # a newer fingerprint of the same series replaced it


@dataclass(frozen=True)
class NewSubmission:
    """A stable series as the worker found it."""

    orthanc_series_id: str
    series_uid: str
    orthanc_study_id: str
    study_uid: str
    fingerprint: str
    instance_count: int
    forward: bool  # whether the series is to be sent to the node
    forwarding: str  # "forwarded", or "not forwarded: <reason>"


@dataclass(frozen=True)
class Submission:
    """A recorded submission."""

    id: int
    orthanc_series_id: str
    series_uid: str
    orthanc_study_id: str
    study_uid: str
    fingerprint: str
    instance_count: int
    state: SubmissionState
    forwarding: str
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float
    submitted_at: float | None


@dataclass(frozen=True)
class StudyState:
    """The labels last applied to a study and whether they can still change on their own."""

    orthanc_study_id: str
    study_uid: str
    status: str | None
    category: str | None
    final: bool


_COLUMNS = (
    "id, orthanc_series_id, series_uid, orthanc_study_id, study_uid, fingerprint, "
    "instance_count, state, decision, attempts, next_attempt_at, last_error, created_at, "
    "updated_at, submitted_at"
)


def _submission(row: tuple[object, ...]) -> Submission:
    values = list(row)
    values[7] = SubmissionState(str(values[7]))
    return Submission(*values)  # type: ignore[arg-type]


class SubmissionStore:
    """SQLite-backed submission queue and study-label cache.

    Parameters
    ----------
    path
        The SQLite file (created with its folder when missing).
    clock
        Seconds since the epoch (injectable for tests).
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as connection, connection:
            yield connection

    # -- submissions -----------------------------------------------------------------------

    def record(self, new: NewSubmission) -> Submission | None:
        """Record a stable series; ``None`` if this exact fingerprint is already recorded.

        A recorded series to forward is due at once; older pending rows of the same series
        are superseded (the newest fingerprint carries the whole series).
        """
        now = self._clock()
        state = SubmissionState.PENDING if new.forward else SubmissionState.NOT_FORWARDED
        with self._connect() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO submissions (orthanc_series_id, series_uid, "
                "orthanc_study_id, study_uid, fingerprint, instance_count, state, decision, "
                "next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    new.orthanc_series_id,
                    new.series_uid,
                    new.orthanc_study_id,
                    new.study_uid,
                    new.fingerprint,
                    new.instance_count,
                    state.value,
                    new.forwarding[:2000],
                    now if new.forward else None,
                    now,
                    now,
                ),
            )
            if cursor.rowcount == 0:
                return None
            row_id = cursor.lastrowid
            connection.execute(
                "UPDATE submissions SET state = ?, updated_at = ? WHERE orthanc_series_id = ? "
                "AND id != ? AND state = ?",
                (
                    SubmissionState.SUPERSEDED.value,
                    now,
                    new.orthanc_series_id,
                    row_id,
                    SubmissionState.PENDING.value,
                ),
            )
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM submissions WHERE id = ?", (row_id,)
            ).fetchone()
        return _submission(row)

    def known(self, orthanc_series_id: str, fingerprint: str) -> bool:
        """Whether this set of instances of the series was recorded before."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT 1 FROM submissions WHERE orthanc_series_id = ? AND fingerprint = ?",
                (orthanc_series_id, fingerprint),
            ).fetchone()
        return row is not None

    def due(self, now: float | None = None) -> list[Submission]:
        """Pending submissions whose (re)try time has come, oldest first."""
        now = self._clock() if now is None else now
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM submissions WHERE state = ? AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, id",
                (SubmissionState.PENDING.value, now),
            ).fetchall()
        return [_submission(r) for r in rows]

    def next_due_at(self) -> float | None:
        """When the next pending submission is due (``None`` if nothing is pending)."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT MIN(next_attempt_at) FROM submissions WHERE state = ?",
                (SubmissionState.PENDING.value,),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_submitted(self, submission_id: int) -> None:
        """The node acknowledged the series."""
        now = self._clock()
        with self._connect() as connection:
            connection.execute(
                "UPDATE submissions SET state = ?, attempts = attempts + 1, submitted_at = ?, "
                "next_attempt_at = NULL, last_error = NULL, updated_at = ? WHERE id = ?",
                (SubmissionState.SUBMITTED.value, now, now, submission_id),
            )

    def mark_retry(self, submission_id: int, error: str, retry_at: float | None) -> None:
        """An attempt failed: retry at ``retry_at``, or fail for good when it is ``None``."""
        now = self._clock()
        state = SubmissionState.PENDING if retry_at is not None else SubmissionState.FAILED
        with self._connect() as connection:
            connection.execute(
                "UPDATE submissions SET state = ?, attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ?, updated_at = ? WHERE id = ?",
                (state.value, retry_at, error[:2000], now, submission_id),
            )

    def mark_gone(self, submission_id: int) -> None:
        """The series was deleted from Orthanc before it could be sent."""
        now = self._clock()
        with self._connect() as connection:
            connection.execute(
                "UPDATE submissions SET state = ?, next_attempt_at = NULL, "
                "last_error = 'deleted from Orthanc', updated_at = ? WHERE id = ?",
                (SubmissionState.FAILED.value, now, submission_id),
            )

    def resubmit_study(self, orthanc_study_id: str) -> int:
        """Send the newest submission of each forwarded series of a study again, now.

        Returns
        -------
        int
            How many series were re-queued.
        """
        now = self._clock()
        with self._connect() as connection:
            cursor = connection.execute(
                "UPDATE submissions SET state = ?, attempts = 0, next_attempt_at = ?, "
                "last_error = NULL, created_at = ?, updated_at = ? WHERE id IN ("
                "SELECT MAX(id) FROM submissions WHERE orthanc_study_id = ? AND state != ? "
                "GROUP BY orthanc_series_id)",
                (
                    SubmissionState.PENDING.value,
                    now,
                    now,
                    now,
                    orthanc_study_id,
                    SubmissionState.NOT_FORWARDED.value,
                ),
            )
            return int(cursor.rowcount)

    def forget_series(self, orthanc_series_id: str) -> None:
        """Drop every record of a series, so its next stable event is treated as new."""
        with self._connect() as connection:
            connection.execute(
                "DELETE FROM submissions WHERE orthanc_series_id = ?", (orthanc_series_id,)
            )

    def study_submissions(self, orthanc_study_id: str) -> list[Submission]:
        """Every submission of a study, oldest first."""
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM submissions WHERE orthanc_study_id = ? ORDER BY id",
                (orthanc_study_id,),
            ).fetchall()
        return [_submission(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of submissions in each state (every state present)."""
        counts = {state.value: 0 for state in SubmissionState}
        with self._connect() as connection:
            for state, count in connection.execute(
                "SELECT state, COUNT(*) FROM submissions GROUP BY state"
            ):
                counts[str(state)] = int(count)
        return counts

    # -- studies ---------------------------------------------------------------------------

    def track_study(self, orthanc_study_id: str, study_uid: str) -> None:
        """Watch a study's labels again (a new series, a re-analysis)."""
        now = self._clock()
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO studies (orthanc_study_id, study_uid, final, updated_at) "
                "VALUES (?, ?, 0, ?) ON CONFLICT (orthanc_study_id) DO UPDATE SET final = 0, "
                "updated_at = excluded.updated_at",
                (orthanc_study_id, study_uid, now),
            )

    def tracked_studies(self) -> list[StudyState]:
        """Studies whose labels may still change (not final)."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT orthanc_study_id, study_uid, status, category, final FROM studies "
                "WHERE final = 0 ORDER BY updated_at"
            ).fetchall()
        return [StudyState(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def study(self, orthanc_study_id: str) -> StudyState | None:
        """The labels last applied to a study, or ``None`` if it was never tracked."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT orthanc_study_id, study_uid, status, category, final FROM studies "
                "WHERE orthanc_study_id = ?",
                (orthanc_study_id,),
            ).fetchone()
        return None if row is None else StudyState(row[0], row[1], row[2], row[3], bool(row[4]))

    def set_study_labels(
        self, orthanc_study_id: str, status: str | None, category: str | None, *, final: bool
    ) -> None:
        """Remember the labels applied to a study; a final study is no longer watched."""
        now = self._clock()
        with self._connect() as connection:
            connection.execute(
                "UPDATE studies SET status = ?, category = ?, final = ?, updated_at = ? "
                "WHERE orthanc_study_id = ?",
                (status, category, int(final), now, orthanc_study_id),
            )
