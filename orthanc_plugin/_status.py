"""A study's AI status and labels, derived from the node's jobs and the plugin's submissions.

Pure functions: the worker and the routes feed them snapshots from the node database
(:func:`db.list_study_jobs`) and the plugin's store. The two sources answer different
questions: a submission says whether the plugin forwarded a series to the node; the node
database says what the node's series assembly decided for it (analyse or skip, with the
rules' reason) and which jobs it queued. The plugin never routes, so a series the node
skipped is known as skipped only from the node database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from db import JobInfo, RoutingDecision, SeriesInfo, StudyJobInfo
from orthanc_plugin._store import Submission, SubmissionState
from pancreas_contracts import JobState
from pancreas_contracts.result import CATEGORY_LABELS
from pancreas_contracts.status import REFUSED_PREFIX, STATUS_TEXT, StudyStatus

__all__ = [
    "MANAGED_LABELS",
    "AiStatus",
    "SeriesProgress",
    "StudyLabels",
    "category_name",
    "job_reason",
    "job_status",
    "progress_reason",
    "routing_status",
    "series_progress",
    "study_labels",
]

#: The one vocabulary (:class:`pancreas_contracts.status.StudyStatus`); the old name stays.
AiStatus = StudyStatus


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
    *(status.value for status in StudyStatus if status is not StudyStatus.NONE),
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
    reason
        Why the study stands there, in words without identifiers: the refusal and what was
        measured, the failure's stage and attempts, the routing rule that skipped it.
    """

    status: StudyStatus
    category: str | None = None
    final: bool = False
    reason: str | None = None

    @property
    def text(self) -> str:
        """The status in words (:data:`pancreas_contracts.status.STATUS_TEXT`)."""
        return STATUS_TEXT[self.status]

    @property
    def labels(self) -> tuple[str, ...]:
        """The Orthanc labels: the status (if it is one) and the category."""
        names: list[str] = []
        if self.status.value in MANAGED_LABELS:
            names.append(self.status.value)
        if self.category is not None:
            names.append(self.category)
        return tuple(names)


def job_status(
    state: JobState,
    retry_scheduled: bool,
    reason: str | None = None,
    *,
    has_category: bool = True,
    outcome: str | None = None,
) -> StudyStatus:
    """The AI status one job stands for.

    A done job whose reason is a refusal is refused; a done job whose result has no NCCN
    category is ``ai-out-of-domain`` when ``result.json``'s outcome is ``out-of-domain`` (the
    category withheld), else ``ai-no-tumor`` (outcome ``no-tumor``: no tumor segmented).
    """
    if state in (JobState.DONE, JobState.DELIVERED):
        if reason is not None and reason.startswith(REFUSED_PREFIX):
            return StudyStatus.REFUSED
        if has_category:
            return StudyStatus.DONE
        if outcome == "out-of-domain":
            return StudyStatus.OUT_OF_DOMAIN
        if outcome == "no-pdac":
            return StudyStatus.NO_PDAC
        return StudyStatus.NO_TUMOR
    if state is JobState.FAILED and not retry_scheduled:
        return StudyStatus.FAILED
    return StudyStatus.PENDING


def job_reason(job: JobInfo) -> str | None:
    """Why a job stands where it does: the refusal (without its prefix) or the failure."""
    reason = job.failure_reason
    if reason is None:
        return None
    return reason.removeprefix(REFUSED_PREFIX)


def routing_status(
    routing: Iterable[tuple[RoutingDecision, str | None]],
) -> tuple[StudyStatus, str | None]:
    """A study without a job, from its series' routing decisions and reasons.

    A series not yet decided keeps it pending; series the rules skipped make it skipped, with
    their reasons; otherwise it is ``none``.
    """
    decisions = list(routing)
    if any(d is RoutingDecision.PENDING for d, _ in decisions):
        return StudyStatus.PENDING, "series not complete yet"
    skipped = [
        r or "skipped by the routing rules" for d, r in decisions if d is RoutingDecision.SKIP
    ]
    if skipped:
        return StudyStatus.SKIPPED, "; ".join(dict.fromkeys(skipped))
    # ANALYZE without a job: the node is queueing it right now.
    if any(d is RoutingDecision.ANALYZE for d, _ in decisions):
        return StudyStatus.PENDING, None
    return StudyStatus.NONE, None


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
        status = job_status(
            job.state,
            job.next_attempt_at is not None,
            job.failure_reason,
            has_category=category_name(newest.result_category, newest.result_category_label)
            is not None,
            outcome=newest.result_outcome,
        )
        category = (
            category_name(newest.result_category, newest.result_category_label)
            if status is StudyStatus.DONE
            else None
        )
        return StudyLabels(
            status, category, final=status is not StudyStatus.PENDING, reason=job_reason(job)
        )
    known = {r.series.series_instance_uid: r.series for r in rows}
    progress = {series_progress(s, known.get(s.series_uid)) for s in submissions}
    # ANALYSE without a job: the node closed the series and is queueing its job right now.
    if progress & {SeriesProgress.SENDING, SeriesProgress.WAITING, SeriesProgress.ANALYSE}:
        return StudyLabels(StudyStatus.PENDING)
    if SeriesProgress.FAILED in progress:
        errors = [s.last_error for s in submissions if s.state is SubmissionState.FAILED]
        why = "; ".join(dict.fromkeys(e for e in errors if e)) or "not accepted by the node"
        return StudyLabels(StudyStatus.FAILED, final=True, reason=f"forwarding: {why}")
    status, reason = routing_status(
        (r.series.routing_decision, r.series.routing_reason)
        for r in {r.series.series_instance_uid: r for r in rows}.values()
    )
    if status is StudyStatus.PENDING:
        return StudyLabels(status, reason=reason)
    return StudyLabels(status, final=True, reason=reason)
