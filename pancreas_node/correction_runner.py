"""Radiologists' segmentation corrections become DICOM and reach Orthanc (issue 26, item 3).

The Orthanc plugin stores a correction the viewer sent (``<data>/corrections/<id>.json``) and
records a ``correct`` review whose correction is *pending*. :class:`CorrectionRunner` picks up
pending corrections (:func:`db.pending_corrections`, oldest first) and, for each:

1. reads the correction (:func:`inference.seg_correction.read_correction`), the job's CT
   series from the spool (:func:`db.series_instance_paths`, the version the job analysed) and
   the job's AI SEG and SR (``<data>/results/<job id>/seg.dcm`` and ``sr.dcm``);
2. writes the reviewer-corrected SEG and the SR amendment into
   ``<data>/results/<job id>/corrections/<review id>/`` (``seg.dcm``, ``sr.dcm``;
   :func:`inference.sr_amendment.write_correction_outputs`);
3. sends both to every configured destination through the dispatch room's destinations
   (:func:`dicom_node.dispatch.destinations_from_settings`: C-STORE and STOW-RS, as job results
   go), then records the correction *written* with both SOP Instance UIDs
   (:func:`db.mark_correction_written`).

A correction that cannot be written (an invalid payload, a CT image it names that is not in
the series, a missing AI SEG, a series no longer stored) is recorded *failed* with a reason in
words (:func:`db.mark_correction_failed`); reasons never hold identifiers or the radiologist's
text. A destination that cannot be reached leaves the correction pending: the next poll sends
again, only to the destinations that did not confirm (receivers deduplicate the objects by SOP
Instance UID in any case, and the files are not rebuilt).

:func:`correction_loop` runs the runner on a thread of its own every few seconds while
``pancreas-node serve`` runs: never on a DICOM association thread, never in the worker's.
Log lines carry review and job ids only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from db import (
    NodeDatabase,
    ReviewInfo,
    get_job,
    mark_correction_failed,
    mark_correction_written,
    pending_corrections,
    series_instance_paths,
)
from dicom_node.dispatch import (
    DeliveryLedger,
    Destination,
    ResultFile,
    destinations_from_settings,
)
from inference import VolumeError
from inference.seg_correction import CorrectionError, read_correction
from inference.sr_amendment import (
    AI_SEG_NAME,
    AI_SR_NAME,
    CorrectionOutputs,
    ReviewStatement,
    write_correction_outputs,
)
from pancreas_contracts import Settings

__all__ = [
    "ORTHANC_ACTOR_PREFIX",
    "POLL_INTERVAL_S",
    "CorrectionOutcome",
    "CorrectionRunner",
    "CorrectionState",
    "correction_loop",
]

#: Seconds between two looks at the pending corrections.
POLL_INTERVAL_S: Final = 5.0
#: The Orthanc plugin records its users as ``orthanc:<user>``; the SEG and SR name the user.
ORTHANC_ACTOR_PREFIX: Final = "orthanc:"
_ACTOR = "corrections"
_log = logging.getLogger(__name__)


class CorrectionState(StrEnum):
    """What one pass did with a correction."""

    WRITTEN = "written"
    FAILED = "failed"
    #: Written, but not every destination confirmed it: tried again at the next poll.
    RETRY = "retry"


@dataclass(frozen=True)
class CorrectionOutcome:
    """One correction's outcome in one pass.

    Parameters
    ----------
    review_id
        The review.
    state
        Written, failed (for good) or to retry.
    detail
        The failure reason, or the destinations still missing the objects (no identifiers).
    """

    review_id: int
    state: CorrectionState
    detail: str = ""


class _UnwritableError(Exception):
    """A correction that can never be written, with the reason to record."""


class CorrectionRunner:
    """Turns pending corrections into a corrected SEG and an SR amendment and sends them.

    Parameters
    ----------
    settings
        ``results_dir`` and the destinations (``destinations``, ``stow_url``).
    database
        The node database.
    destinations
        Overrides the destinations built from ``settings``.
    """

    def __init__(
        self,
        settings: Settings,
        database: NodeDatabase,
        *,
        destinations: Sequence[Destination] | None = None,
    ) -> None:
        self._settings = settings
        self._db = database
        chosen = destinations_from_settings(settings) if destinations is None else destinations
        self._destinations = tuple(chosen)
        # SOP Instance UIDs each destination confirmed, by (review id, destination name): a
        # retry sends only what is missing (kept in memory: after a restart a receiver's
        # deduplication by SOP Instance UID covers the few objects sent again).
        self._confirmed: dict[tuple[int, str], set[str]] = {}

    def run_once(self, *, limit: int = 20) -> list[CorrectionOutcome]:
        """Process every pending correction (oldest first, at most ``limit``).

        One correction's unexpected error is recorded as its failure and the next one is
        processed; database errors propagate (the database is what failed).
        """
        outcomes = []
        for review in pending_corrections(self._db, limit=limit):
            try:
                outcomes.append(self.process(review))
            except SQLAlchemyError:
                raise
            # Supervision boundary: one correction's inputs never stop the others.
            except Exception as exc:  # noqa: BLE001
                _log.error("review %d: correction failed (%s)", review.id, type(exc).__name__)
                _log.debug("review %d: correction traceback", review.id, exc_info=exc)
                outcomes.append(self._fail(review, f"internal error: {type(exc).__name__}"))
        return outcomes

    def process(self, review: ReviewInfo) -> CorrectionOutcome:
        """Write and send one pending correction, and record what became of it."""
        try:
            outputs = self._write(review)
        except _UnwritableError as exc:
            return self._fail(review, str(exc))
        except OSError as exc:  # a full or read-only results folder: try again later
            _log.warning("review %d: correction not written (%s)", review.id, type(exc).__name__)
            return CorrectionOutcome(review.id, CorrectionState.RETRY, "results folder")
        missing = self._send(review, outputs)
        if missing:
            _log.info("review %d: correction pending for %s", review.id, ", ".join(missing))
            return CorrectionOutcome(review.id, CorrectionState.RETRY, ", ".join(missing))
        mark_correction_written(
            self._db,
            review.id,
            corrected_seg_sop_uid=outputs.seg_sop_instance_uid,
            amendment_sr_sop_uid=outputs.sr_sop_instance_uid,
            actor=_ACTOR,
        )
        self._forget(review.id)
        _log.info("review %d: corrected SEG and SR amendment written", review.id)
        return CorrectionOutcome(review.id, CorrectionState.WRITTEN)

    def _write(self, review: ReviewInfo) -> CorrectionOutputs:
        """The correction's objects, written now or by an earlier pass.

        Raises
        ------
        _UnwritableError
            With the reason, when the correction can never be written.
        OSError
            When the results folder cannot be written (worth another try).
        """
        if review.correction_path is None or review.job_id is None:
            raise _UnwritableError("the review has no correction or no AI result")
        job = get_job(self._db, review.job_id)
        if job is None:
            raise _UnwritableError("the reviewed AI result's job no longer exists")
        try:
            correction = read_correction(Path(review.correction_path))
        except CorrectionError as exc:
            raise _UnwritableError(f"invalid correction: {exc}") from exc
        except OSError as exc:
            raise _UnwritableError("the stored correction cannot be read") from exc
        ct = [
            Path(p)
            for p in series_instance_paths(
                self._db, job.series_instance_uid, max_version=job.series_version
            )
            if Path(p).is_file()
        ]
        if not ct:
            raise _UnwritableError("the CT series is no longer stored on the node")
        results = self._settings.results_dir / job.id
        statement = ReviewStatement(
            verdict=review.verdict,
            reviewer=review.reviewer.removeprefix(ORTHANC_ACTOR_PREFIX),
            category=review.category,
            reason=review.reason,
        )
        try:
            return write_correction_outputs(
                correction,
                ct,
                results / AI_SEG_NAME,
                results / AI_SR_NAME,
                statement,
                results / "corrections" / str(review.id),
            )
        except CorrectionError as exc:
            raise _UnwritableError(str(exc)) from exc
        except VolumeError as exc:
            # Its message can name the series UID: record the kind of problem only.
            raise _UnwritableError(f"the CT series cannot be read ({type(exc).__name__})") from exc

    def _send(self, review: ReviewInfo, outputs: CorrectionOutputs) -> list[str]:
        """Send both objects to each destination still missing them; the names still missing."""
        if not self._destinations:
            _log.warning("review %d: no destination configured; correction stays local", review.id)
            return []
        batch = ResultFile.read_all(outputs.paths)
        wanted = {outputs.seg_sop_instance_uid, outputs.sr_sop_instance_uid}
        missing = []
        for destination in self._destinations:
            confirmed = self._confirmed.setdefault((review.id, destination.name), set())
            if wanted <= confirmed:
                continue
            outcome = destination.send(
                batch,
                job_id=review.job_id or "",
                ledger=DeliveryLedger(frozenset(confirmed), confirmed.add),
            )
            if not outcome.succeeded:
                _log.warning(
                    "review %d: %s did not take the correction (%s)",
                    review.id,
                    destination.name,
                    outcome.status.value,
                )
                missing.append(destination.name)
        return missing

    def _fail(self, review: ReviewInfo, reason: str) -> CorrectionOutcome:
        _log.warning("review %d: correction failed: %s", review.id, reason)
        mark_correction_failed(self._db, review.id, reason, actor=_ACTOR)
        self._forget(review.id)
        return CorrectionOutcome(review.id, CorrectionState.FAILED, reason)

    def _forget(self, review_id: int) -> None:
        for key in [k for k in self._confirmed if k[0] == review_id]:
            del self._confirmed[key]


@contextmanager
def correction_loop(
    settings: Settings,
    database: NodeDatabase,
    *,
    interval_s: float = POLL_INTERVAL_S,
    runner: CorrectionRunner | None = None,
) -> Iterator[CorrectionRunner]:
    """Run :meth:`CorrectionRunner.run_once` on a thread every ``interval_s`` until the block ends.

    A pass that raises (the database unreachable) is logged by its error's name and the loop
    goes on at the next interval. Leaving the block stops the thread after the current pass.

    Raises
    ------
    ValueError
        If a destination in ``settings`` is invalid.
    """
    chosen = runner or CorrectionRunner(settings, database)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                chosen.run_once()
            # Supervision boundary: a failed pass must not end the node's correction loop.
            except Exception as exc:  # noqa: BLE001
                _log.error("correction pass failed (%s)", type(exc).__name__)
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name="corrections", daemon=True)
    thread.start()
    try:
        yield chosen
    finally:
        stop.set()
        thread.join(timeout=60)
