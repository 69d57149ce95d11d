"""A study's AI status and labels, derived from the node's jobs and the plugin's submissions.

Pure functions: the worker and the routes feed them snapshots from the node database
(:func:`db.list_study_jobs`) and the plugin's store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from db import RoutingDecision, StudyJobInfo
from orthanc_plugin._store import Submission, SubmissionState
from pancreas_contracts import JobState
from pancreas_contracts.result import CATEGORY_LABELS

__all__ = [
    "MANAGED_LABELS",
    "AiStatus",
    "StudyLabels",
    "category_name",
    "job_status",
    "study_labels",
]


class AiStatus(StrEnum):
    """A study's AI status; the first three are also Orthanc labels."""

    PENDING = "ai-pending"
    DONE = "ai-done"
    FAILED = "ai-failed"
    SKIPPED = "ai-skipped"  # the node's rules decided not to analyse any series
    NONE = "none"  # nothing submitted (e.g. only SEG/SR/PDF series)


#: Every label the plugin sets or removes on a study; other labels are left alone.
MANAGED_LABELS: tuple[str, ...] = (
    AiStatus.PENDING.value,
    AiStatus.DONE.value,
    AiStatus.FAILED.value,
    "nccn-resectable",
    "nccn-borderline",
    "nccn-locally-advanced",
)


def category_name(category: int | None, label: str | None) -> str | None:
    """The NCCN category as a label (``nccn-borderline``), from its index or its text."""
    if category is not None and 0 <= category < len(CATEGORY_LABELS):
        text = CATEGORY_LABELS[category]
    elif label is not None and label.strip().lower().replace("-", " ") in CATEGORY_LABELS:
        text = label.strip().lower().replace("-", " ")
    else:
        return None
    return "nccn-" + text.replace(" ", "-")


@dataclass(frozen=True)
class StudyLabels:
    """What a study's labels should be.

    Parameters
    ----------
    status
        The AI status.
    category
        ``nccn-...`` when the status is done and the result has a category.
    final
        Whether only an operator (re-analysis) or a new series can change it.
    """

    status: AiStatus
    category: str | None = None
    final: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        """The Orthanc labels: the status (if it is one) and the category."""
        names: list[str] = []
        if self.status.value in MANAGED_LABELS:
            names.append(self.status.value)
        if self.category is not None:
            names.append(self.category)
        return tuple(names)


def job_status(state: JobState, retry_scheduled: bool) -> AiStatus:
    """The AI status one job stands for."""
    if state in (JobState.DONE, JobState.DELIVERED):
        return AiStatus.DONE
    if state is JobState.FAILED and not retry_scheduled:
        return AiStatus.FAILED
    return AiStatus.PENDING


def study_labels(rows: Sequence[StudyJobInfo], submissions: Sequence[Submission]) -> StudyLabels:
    """Combine the node's view of a study with the plugin's submissions.

    The newest job of the study decides once there is one (a re-opened series or a
    re-analysis creates a newer job). Before that, a submission still pending or not yet
    recorded by the node keeps the study pending; a submission the node never accepted fails
    it; series the node routed to *skip* mark it skipped.
    """
    jobs = [r for r in rows if r.job is not None]
    if jobs:
        newest = max(jobs, key=lambda r: (r.job.created_at, r.job.id) if r.job else ())
        job = newest.job
        assert job is not None
        status = job_status(job.state, job.next_attempt_at is not None)
        category = (
            category_name(newest.result_category, newest.result_category_label)
            if status is AiStatus.DONE
            else None
        )
        return StudyLabels(status, category, final=status is not AiStatus.PENDING)
    live = [s for s in submissions if s.state is not SubmissionState.SUPERSEDED]
    known = {r.series.series_instance_uid: r.series for r in rows}
    waiting = False
    for sub in live:
        if sub.state is SubmissionState.PENDING:
            waiting = True
        elif sub.state is SubmissionState.SUBMITTED:
            series = known.get(sub.series_uid)
            if series is None or series.routing_decision is not RoutingDecision.SKIP:
                waiting = True  # the node has not closed the series yet
    if waiting:
        return StudyLabels(AiStatus.PENDING)
    if any(s.state is SubmissionState.FAILED for s in live):
        return StudyLabels(AiStatus.FAILED, final=True)
    if any(r.series.routing_decision is RoutingDecision.SKIP for r in rows):
        return StudyLabels(AiStatus.SKIPPED, final=True)
    return StudyLabels(AiStatus.NONE, final=True)
