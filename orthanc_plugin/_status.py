"""A study's AI status and labels, derived from the node's jobs and the plugin's submissions.

Pure functions: the worker and the routes feed them snapshots from the node database
(:func:`db.list_study_jobs`) and the plugin's store. The two sources answer different
questions: a submission says whether the plugin forwarded a series to the node; the node
database says what the node's series assembly decided for it (analyse or skip, with the
rules' reason) and which jobs it queued. The plugin never routes, so a series the node
skipped is known as skipped only from the node database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from db import RoutingDecision, SeriesInfo, StudyJobInfo
from orthanc_plugin._store import Submission, SubmissionState
from pancreas_contracts import JobState
from pancreas_contracts.result import CATEGORY_LABELS

__all__ = [
    "MANAGED_LABELS",
    "AiStatus",
    "SeriesProgress",
    "StudyLabels",
    "category_name",
    "job_status",
    "progress_reason",
    "series_progress",
    "study_labels",
]


class AiStatus(StrEnum):
    """A study's AI status; the first three are also Orthanc labels."""

    PENDING = "ai-pending"
    DONE = "ai-done"
    FAILED = "ai-failed"
    SKIPPED = "ai-skipped"  # the node's series assembly decided not to analyse any series
    NONE = "none"  # nothing forwarded (e.g. only SEG/SR/PDF series)


class SeriesProgress(StrEnum):
    """Where one submitted series stands, from the plugin's record and the node's series."""

    NOT_FORWARDED = "not-forwarded"  # not CT: never sent to the node
    SENDING = "sending"  # to be sent to the node (first try or a retry)
    WAITING = "waiting-for-node"  # sent; the node's assembly has not decided yet
    ANALYSE = "analyse"  # the node's assembly decided to analyse it (see its jobs)
    SKIPPED = "skipped"  # the node's assembly decided not to analyse it
    FAILED = "failed"  # the node never accepted it, or it was deleted from Orthanc first
    SUPERSEDED = "superseded"  # a newer set of instances of the series replaced this record


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


def series_progress(submission: Submission, node_series: SeriesInfo | None) -> SeriesProgress:
    """Where a submitted series stands.

    Parameters
    ----------
    submission
        The plugin's record of the series.
    node_series
        The node's record of the same SeriesInstanceUID (``None`` while the node has none).
        Its routing decision counts only once the plugin has sent the series: before that it
        may belong to an older set of instances.
    """
    state = submission.state
    if state is SubmissionState.NOT_FORWARDED:
        return SeriesProgress.NOT_FORWARDED
    if state is SubmissionState.SUPERSEDED:
        return SeriesProgress.SUPERSEDED
    if state is SubmissionState.FAILED:
        return SeriesProgress.FAILED
    if state is SubmissionState.PENDING:
        return SeriesProgress.SENDING
    if node_series is None or node_series.routing_decision is RoutingDecision.PENDING:
        return SeriesProgress.WAITING
    if node_series.routing_decision is RoutingDecision.SKIP:
        return SeriesProgress.SKIPPED
    return SeriesProgress.ANALYSE


def progress_reason(submission: Submission, node_series: SeriesInfo | None) -> str | None:
    """Why a series stands where it does: the plugin's, the node's or the last error's words."""
    progress = series_progress(submission, node_series)
    if progress is SeriesProgress.NOT_FORWARDED:
        return submission.forwarding
    if progress in (SeriesProgress.SKIPPED, SeriesProgress.ANALYSE):
        return None if node_series is None else node_series.routing_reason
    return submission.last_error


def study_labels(rows: Sequence[StudyJobInfo], submissions: Sequence[Submission]) -> StudyLabels:
    """Combine the node's view of a study with the plugin's submissions.

    The newest job of the study decides once there is one (a re-opened series or a
    re-analysis creates a newer job). Before that, a series still to be sent, or sent and not
    yet decided by the node, keeps the study pending; a submission the node never accepted
    fails it; series the node's assembly routed to *skip* mark it skipped. Series that were
    not forwarded (not CT) do not count.
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
    known = {r.series.series_instance_uid: r.series for r in rows}
    progress = {series_progress(s, known.get(s.series_uid)) for s in submissions}
    # ANALYSE without a job: the node closed the series and is queueing its job right now.
    if progress & {SeriesProgress.SENDING, SeriesProgress.WAITING, SeriesProgress.ANALYSE}:
        return StudyLabels(AiStatus.PENDING)
    if SeriesProgress.FAILED in progress:
        return StudyLabels(AiStatus.FAILED, final=True)
    if any(r.series.routing_decision is RoutingDecision.SKIP for r in rows):
        return StudyLabels(AiStatus.SKIPPED, final=True)
    return StudyLabels(AiStatus.NONE, final=True)
