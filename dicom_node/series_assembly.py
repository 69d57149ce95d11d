"""Series assembly: a series is complete after a quiet period, then routed and queued.

A series whose last instance arrived more than ``quiet_period_s`` ago is closed with the
routing rules' decision (stored with the series, with every reason) and, when the decision is
*analyze*, one job is queued for that series version. An instance arriving later re-opens the
series as a new version (``db.record_instance``), which leads to a new, versioned job over the
whole series instead of a mixed analysis.

Supervision (issue 22, D1). Closing a series runs code over whatever a sender sent: one that
raises an unexpected error fails that series alone. The series is closed (decision ``skip``,
reason ``assembly failed: <error>``) and a job is recorded ``failed`` at stage ``assembly`` so
that ``pancreas-node status``, the study labels and the worklist show it with its reason; the
log gets one line with the SeriesInstanceUID (the traceback only at DEBUG); the loop goes on
with the next series. Database errors are the loop's, not the series': they are logged and the
next poll tries again.

The contrast phase, when a rule asks for it, is measured by a :data:`PhaseEstimator` passed in
by whoever builds the node (the command line passes ``inference.estimate_series_phase``): this
room reads headers only and never imports the model rooms.

Slice thickness. SliceThickness (0018,0050) is Type 2 in the Image Plane module (PS3.3
C.7.6.2) and may be empty or absent (NIH Pancreas-CT leaves it out); a multi-valued one is
malformed (VM 1). Enhanced CT carries it in the Pixel Measures functional group (PS3.3
C.7.6.16.2.1), shared or per frame. When no single usable value is found, the slice spacing is
measured instead: the median gap between the sorted ImagePositionPatient (0020,0032)
projections on the slice normal, the cross product of the ImageOrientationPatient (0020,0037)
row and column cosines (PS3.3 C.7.6.2.1.1); for Enhanced CT the positions are the per-frame
PlanePositionSequence items (C.7.6.16.2.3) and the orientation the shared or per-frame
PlaneOrientationSequence (C.7.6.16.2.4). The reason says the value was derived from positions.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from sqlalchemy.exc import SQLAlchemyError

from db import (
    JobRequest,
    NodeDatabase,
    RoutingDecision,
    SeriesInfo,
    close_series,
    series_calling_ae,
    series_instance_paths,
    series_quiet_since,
)
from dicom_node.metrics import ASSEMBLY_FAILED, NodeMetrics
from dicom_node.routing import RoutingDecisionResult, RuleAction, RuleSet, SeriesFacts
from pancreas_contracts.job_states import ASSEMBLY_STAGE, failure_reason

__all__ = [
    "AssemblyOutcome",
    "PhaseEstimator",
    "SeriesAssembler",
    "gather_facts",
    "slice_thickness",
]

_log = logging.getLogger(__name__)

#: Measures a series' contrast phase from its files: ``(phase, reason)``, where phase is a
#: ``ContrastPhase`` value (``"unknown"`` when it cannot be told).
PhaseEstimator = Callable[[Sequence[Path]], tuple[str, str]]


@dataclass(frozen=True)
class AssemblyOutcome:
    """What happened to one series version when it went quiet."""

    SeriesInstanceUID: str
    version: int
    decision: RoutingDecisionResult
    job_id: str | None


def gather_facts(
    paths: Sequence[Path],
    calling_ae: str = "",
    phase_estimator: PhaseEstimator | None = None,
) -> SeriesFacts:
    """Collect the attributes the routing rules look at from a series' files.

    Headers are read without pixel data; the contrast phase is measured from the pixels (by
    ``phase_estimator``) only if a rule asks for it. Without an estimator the phase is
    ``unknown``, with that reason.

    Raises
    ------
    ValueError
        If no file is a readable DICOM instance.
    """
    headers = []
    for path in paths:
        try:
            headers.append(dcmread(path, stop_before_pixels=True, force=True))
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
    if not headers:
        raise ValueError("no readable DICOM instance in the series")
    first = headers[0]
    frames = sum(_frame_count(h) for h in headers)
    thickness, thickness_source = slice_thickness(headers)
    sop_class = UID(str(first.get("SOPClassUID", "")))

    def contrast_phase() -> tuple[str, str]:
        if phase_estimator is None:
            return "unknown", "no contrast-phase estimator configured"
        return phase_estimator(list(paths))

    return SeriesFacts(
        modality=str(first.get("Modality", "")),
        sop_class=sop_class.name if sop_class.is_valid else str(sop_class),
        num_slices=frames,
        slice_thickness_mm=thickness,
        slice_thickness_source=thickness_source,
        body_part=str(first.get("BodyPartExamined", "") or ""),
        series_description=str(first.get("SeriesDescription", "") or ""),
        calling_ae=calling_ae,
        contrast_phase=contrast_phase,
    )


def _frame_count(ds: Dataset) -> int:
    """NumberOfFrames (0028,0008, IS, VM 1; PS3.3 C.7.6.6): 1 when absent, empty or malformed."""
    raw = ds.get("NumberOfFrames")
    if raw is None or _multi_valued(raw):
        return 1
    try:
        count = int(raw)
    except (TypeError, ValueError):
        return 1
    return count if count > 0 else 1


def _multi_valued(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _single_float(value: object) -> float | None:
    """A finite, positive number from a VM-1 value; None if empty, multi-valued or invalid."""
    if value is None or _multi_valued(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    """``count`` finite numbers from a multi-valued attribute, or None."""
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        return None
    return numbers


def _first_item(ds: Dataset | None, sequence: str) -> Dataset | None:
    if ds is None:
        return None
    seq = ds.get(sequence)
    try:
        return seq[0] if seq else None
    except (TypeError, IndexError):
        return None


def _group_value(
    per_frame: Dataset | None, shared: Dataset | None, sequence: str, keyword: str
) -> object:
    """``keyword`` in a functional group: the frame's own item first, then the shared one."""
    for group in (per_frame, shared):
        item = _first_item(group, sequence)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _planes(headers: Sequence[Dataset]) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """(orientation, position) of every frame of every instance that has both."""
    planes = []
    for ds in headers:
        per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame_seq:
            shared = _first_item(ds, "SharedFunctionalGroupsSequence")
            for per in per_frame_seq:
                iop = _floats(
                    _group_value(per, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
                    or ds.get("ImageOrientationPatient"),
                    6,
                )
                ipp = _floats(
                    _group_value(per, shared, "PlanePositionSequence", "ImagePositionPatient"), 3
                )
                if iop is not None and ipp is not None:
                    planes.append((iop, ipp))
            continue
        iop = _floats(ds.get("ImageOrientationPatient"), 6)
        ipp = _floats(ds.get("ImagePositionPatient"), 3)
        if iop is not None and ipp is not None:
            planes.append((iop, ipp))
    return planes


def _spacing_from_positions(headers: Sequence[Dataset]) -> float | None:
    """Median gap between the sorted slice positions along the slice normal (mm), or None.

    Positions closer than 0.01 mm count as one position (duplicates, a second echo).
    """
    planes = _planes(headers)
    if len(planes) < 2:
        return None
    r, c = planes[0][0][:3], planes[0][0][3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    norm = math.sqrt(sum(n * n for n in normal))
    if norm < 1e-6:
        return None
    distances = sorted(
        sum(n * p for n, p in zip(normal, ipp, strict=True)) / norm for _, ipp in planes
    )
    gaps = [b - a for a, b in itertools.pairwise(distances) if b - a > 0.01]
    return statistics.median(gaps) if gaps else None


def slice_thickness(headers: Sequence[Dataset]) -> tuple[float | None, str]:
    """The series' slice thickness (mm) and where it came from.

    SliceThickness of the first instance (top level, or the Enhanced CT Pixel Measures
    functional group) when it holds one positive number; otherwise the spacing of the slice
    positions (see the module docstring). ``(None, reason)`` when neither can be told.
    """
    first = headers[0]
    shared = _first_item(first, "SharedFunctionalGroupsSequence")
    first_frame = _first_item(first, "PerFrameFunctionalGroupsSequence")
    raw = _group_value(first_frame, shared, "PixelMeasuresSequence", "SliceThickness")
    present = raw is not None
    if not present:
        present = "SliceThickness" in first
        raw = first.get("SliceThickness")
    value = _single_float(raw)
    if value is not None:
        return value, "from SliceThickness"
    if not present:
        why = "SliceThickness absent"
    elif raw is None or raw == "" or (_multi_valued(raw) and len(raw) == 0):  # type: ignore[arg-type]
        why = "SliceThickness empty"
    elif _multi_valued(raw):
        why = "SliceThickness multi-valued"
    else:
        why = "SliceThickness not a positive number"
    spacing = _spacing_from_positions(headers)
    if spacing is None:
        return None, f"{why}, and no spacing between ImagePositionPatient along the normal"
    return spacing, f"{why}: derived from ImagePositionPatient spacing along the slice normal"


class SeriesAssembler:
    """Closes quiet series, routes them and queues jobs.

    Parameters
    ----------
    database
        The node database.
    rules
        The routing rules.
    quiet_period_s
        Seconds without a new instance after which a series counts as complete.
    bundle_sha256
        Hash of the model bundle jobs are queued for (part of a job's identity).
    phase_estimator
        Measures the contrast phase when a rule asks for it (see :data:`PhaseEstimator`).
    clock
        Returns the current UTC time (injectable for tests).
    metrics
        Counts each closed series version by decision (``assembly_failed`` for a series whose
        assembly raised); ``None``: no counting.
    """

    def __init__(
        self,
        database: NodeDatabase,
        rules: RuleSet,
        quiet_period_s: float,
        bundle_sha256: str,
        phase_estimator: PhaseEstimator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._db = database
        self._metrics = metrics
        self._rules = rules
        self._quiet = timedelta(seconds=quiet_period_s)
        self._bundle_sha256 = bundle_sha256
        self._phase_estimator = phase_estimator
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> list[AssemblyOutcome]:
        """Close every series that has been quiet long enough; return what was decided."""
        cutoff = self._clock() - self._quiet
        outcomes = []
        for series in series_quiet_since(self._db, cutoff):
            try:
                outcome = self._close(series, cutoff)
            except SQLAlchemyError:
                raise  # the database's failure, not the series': the loop retries
            # Supervision boundary: whatever one series' files make the code raise, it fails
            # alone and the other series are still closed.
            except Exception as exc:  # noqa: BLE001
                outcome = self._fail(series, cutoff, exc)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _fail(self, series: SeriesInfo, cutoff: datetime, exc: Exception) -> AssemblyOutcome | None:
        """Close a series whose assembly raised, and record the failure as a failed job."""
        uid = series.series_instance_uid
        # The error's type only: its message may quote the sender's values.
        reason = f"assembly failed: {type(exc).__name__}"
        _log.error("series %s v%d: %s", uid, series.version, reason)
        _log.debug("series %s v%d: assembly traceback", uid, series.version, exc_info=exc)
        decision = RoutingDecisionResult(RuleAction.IGNORE, None, (reason,))
        closed = close_series(
            self._db,
            uid,
            version=series.version,
            decision=RoutingDecision.SKIP,
            reason=reason,
            quiet_since=cutoff,
            job=JobRequest(self._bundle_sha256, failure=failure_reason(ASSEMBLY_STAGE, 1, reason)),
        )
        if closed is None:
            return None  # a new instance arrived meanwhile: the next poll tries again
        if self._metrics is not None:
            self._metrics.series_routed(ASSEMBLY_FAILED)
        job_id = None if closed.job is None else closed.job.id
        return AssemblyOutcome(uid, series.version, decision, job_id)

    def _close(self, series: SeriesInfo, cutoff: datetime) -> AssemblyOutcome | None:
        uid = series.series_instance_uid
        paths = [Path(p) for p in series_instance_paths(self._db, uid, max_version=series.version)]
        try:
            calling_ae = series_calling_ae(self._db, uid) or ""
            decision = self._rules.evaluate(gather_facts(paths, calling_ae, self._phase_estimator))
        except ValueError as exc:
            decision = RoutingDecisionResult(
                RuleAction.IGNORE, None, (f"unreadable series: {exc}",)
            )
        stored = (
            RoutingDecision.ANALYZE
            if decision.action is RuleAction.ANALYZE
            else RoutingDecision.SKIP
        )
        job = None
        if decision.action is RuleAction.ANALYZE:
            job = JobRequest(self._bundle_sha256, instance_count=len(paths))
        # The series and its job commit together: a crash between them would lose the job.
        closed = close_series(
            self._db,
            uid,
            version=series.version,
            decision=stored,
            reason=decision.summary,
            quiet_since=cutoff,
            job=job,
        )
        if closed is None:
            return None  # a new instance arrived meanwhile: the series stays open
        if self._metrics is not None:
            self._metrics.series_routed(decision.action)
        job_id = None if closed.job is None else closed.job.id
        _log.info("series %s v%d complete: %s", uid, series.version, decision.action.value)
        return AssemblyOutcome(uid, series.version, decision, job_id)

    def start(self, interval_s: float = 1.0) -> None:
        """Poll in a background thread every ``interval_s`` seconds."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="series-assembly", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.poll_once()
            except SQLAlchemyError as exc:
                _log.error("series assembly poll failed: database error (%s)", type(exc).__name__)
            # Supervision boundary: the loop outlives any one poll (series failures are
            # handled in poll_once; this is for the unforeseen).
            except Exception as exc:  # noqa: BLE001
                _log.error("series assembly poll failed: %s", type(exc).__name__)
                _log.debug("series assembly poll traceback", exc_info=exc)
