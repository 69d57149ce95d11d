"""Read-only views for the Orthanc plugin's routes: a study's jobs and the tumor-board worklist.

Nothing here writes (not even audit events): result *contents* are read through
:func:`db.get_result`, which records the read. These views carry categories and states only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from db._database import NodeDatabase
from db._ingest import SeriesInfo, _series_info
from db._jobs import JobInfo, _info
from db._models import (
    BoardCase,
    Job,
    Result,
    Review,
    RoutingDecision,
    Series,
    Study,
    TumorBoard,
)

__all__ = ["StudyJobInfo", "WorklistEntry", "list_study_jobs", "list_worklist"]


@dataclass(frozen=True)
class StudyJobInfo:
    """One job of a study's series (``job`` is ``None`` for a series without any job).

    ``result_category`` / ``result_category_label`` / ``result_outcome`` come from the job's
    result, if any.
    """

    series: SeriesInfo
    job: JobInfo | None
    result_category: int | None
    result_category_label: str | None
    result_outcome: str | None = None


@dataclass(frozen=True)
class WorklistEntry:
    """One study on the tumor-board worklist: its newest job, that job's result, its board.

    ``board_*`` and ``decision_*`` describe the study's latest board (by date) and that board's
    decision (``None`` when the study is on no board or it is not decided); ``review_*`` the
    study's newest radiologist review (``None``: not reviewed). ``series_routing`` holds each
    of its series' routing decision and reason (a study whose series were all skipped has no
    job).
    """

    study_instance_uid: str
    accession_number: str | None
    study_date: date | None
    study_created_at: datetime
    job: JobInfo | None
    category: int | None
    category_label: str | None
    probabilities: tuple[float, ...]
    board_id: int | None
    board_date: date | None
    board_title: str | None
    decision_category: str | None
    decided_at: datetime | None
    review_verdict: str | None
    reviewer: str | None
    review_category: str | None
    series_routing: tuple[tuple[RoutingDecision, str | None], ...] = ()
    outcome: str | None = None
    #: The PDAC detector's likelihood (``None`` without a detector).
    pdac_likelihood: float | None = None
    #: The lymph-node model's N estimate (``N0``/``N+``) and probability of N+ (``None``
    #: without a lymph-node bundle).
    n_estimate: str | None = None
    n_positive_probability: float | None = None
    #: The survival model's risk group (``high``/``low``) and probabilities of death within 1
    #: and 3 years (``None`` without a survival bundle).
    risk_group: str | None = None
    death_probability_1y: float | None = None
    death_probability_3y: float | None = None


def list_study_jobs(db: NodeDatabase, study_instance_uid: str) -> list[StudyJobInfo]:
    """Every series of a study with each of its jobs, newest job first.

    A series without a job (still receiving, or routed to *skip*) appears once with ``job``
    ``None``; series are ordered by their first instance's arrival.
    """
    stmt = (
        select(Series, Job, Result.category, Result.category_label, Result.outcome)
        .join(Study, Series.study_id == Study.id)
        .outerjoin(Job, Job.series_instance_uid == Series.series_instance_uid)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(Study.study_instance_uid == study_instance_uid)
        .order_by(Series.first_received_at, Series.id, Job.created_at.desc(), Job.id)
    )
    with db.session() as session:
        return [
            StudyJobInfo(
                series=_series_info(series, study_instance_uid),
                job=None if job is None else _info(job),
                result_category=category,
                result_category_label=label,
                result_outcome=outcome,
            )
            for series, job, category, label, outcome in session.execute(stmt)
        ]


def list_worklist(db: NodeDatabase, *, limit: int = 1000) -> list[WorklistEntry]:
    """The ``limit`` most recently created studies the node knows (received or on a board).

    Every study the node touched is listed, with or without a job: a study whose series the
    routing rules skipped carries their decisions and reasons in ``series_routing``.

    Filtering and sorting for display are the caller's (the plugin's worklist route).
    """
    with db.session() as session:
        studies = list(
            session.scalars(select(Study).order_by(Study.created_at.desc(), Study.id).limit(limit))
        )
        uids = [s.study_instance_uid for s in studies]
        newest: dict[str, tuple[Job, Result | None]] = {}
        jobs = session.execute(
            select(Study.study_instance_uid, Job, Result)
            .join(Series, Series.study_id == Study.id)
            .join(Job, Job.series_instance_uid == Series.series_instance_uid)
            .outerjoin(Result, Result.job_id == Job.id)
            .where(Study.study_instance_uid.in_(uids))
            .order_by(Job.created_at, Job.id)
        )
        for uid, job, result in jobs:
            newest[uid] = (job, result)  # ascending order: the last one wins
        boards: dict[str, tuple[BoardCase, TumorBoard]] = {}
        cases = session.execute(
            select(BoardCase, TumorBoard)
            .join(TumorBoard, BoardCase.board_id == TumorBoard.id)
            .where(BoardCase.study_instance_uid.in_(uids))
            .order_by(TumorBoard.board_date, BoardCase.id)
        )
        for case, board in cases:
            boards[case.study_instance_uid] = (case, board)
        routing: dict[str, list[tuple[RoutingDecision, str | None]]] = {}
        decisions = session.execute(
            select(Study.study_instance_uid, Series.routing_decision, Series.routing_reason)
            .join(Series, Series.study_id == Study.id)
            .where(Study.study_instance_uid.in_(uids))
            .order_by(Series.first_received_at, Series.id)
        )
        for uid, decision, reason in decisions:
            routing.setdefault(uid, []).append((decision, reason))
        reviews: dict[str, Review] = {}
        for review in session.scalars(
            select(Review).where(Review.study_instance_uid.in_(uids)).order_by(Review.id)
        ):
            reviews[review.study_instance_uid] = review  # ascending: the newest wins
        return [
            _worklist_entry(
                study,
                newest.get(study.study_instance_uid),
                boards.get(study.study_instance_uid),
                tuple(routing.get(study.study_instance_uid, ())),
                reviews.get(study.study_instance_uid),
            )
            for study in studies
        ]


def _worklist_entry(
    study: Study,
    job_row: tuple[Job, Result | None] | None,
    board_row: tuple[BoardCase, TumorBoard] | None,
    series_routing: tuple[tuple[RoutingDecision, str | None], ...],
    review: Review | None,
) -> WorklistEntry:
    job, result = job_row if job_row is not None else (None, None)
    case, board = board_row if board_row is not None else (None, None)
    return WorklistEntry(
        study_instance_uid=study.study_instance_uid,
        accession_number=study.accession_number,
        study_date=study.study_date,
        study_created_at=study.created_at,
        job=None if job is None else _info(job),
        category=None if result is None else result.category,
        category_label=None if result is None else result.category_label,
        probabilities=() if result is None else tuple(result.probabilities),
        board_id=None if board is None else board.id,
        board_date=None if board is None else board.board_date,
        board_title=None if board is None else board.title,
        decision_category=None if case is None else case.decision_category,
        decided_at=None if case is None else case.decided_at,
        review_verdict=None if review is None else review.verdict,
        reviewer=None if review is None else review.reviewer,
        review_category=None if review is None else review.category,
        series_routing=series_routing,
        outcome=None if result is None else result.outcome,
        pdac_likelihood=None if result is None else result.pdac_likelihood,
        n_estimate=None if result is None else result.n_estimate,
        n_positive_probability=None if result is None else result.n_positive_probability,
        risk_group=None if result is None else result.risk_group,
        death_probability_1y=None if result is None else result.death_probability_1y,
        death_probability_3y=None if result is None else result.death_probability_3y,
    )
