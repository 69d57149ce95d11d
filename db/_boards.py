"""Tumor boards and their cases: schedule, add and remove cases, record the board's decision.

Issue 26. A board has a date, a title, members and optionally an
:class:`~pancreas_contracts.boards.AutoRule`: when a job's result is stored, the next board on
or after that day whose rule the result meets takes the study (:func:`auto_add_cases`, called
in :func:`db.complete_job`'s transaction). Cases are also added and removed by hand. Every
change writes an audit event in the same transaction; audit details hold states and codes,
never free text (a decision's text may hold clinical content).

Radiologists' reviews are in :mod:`db._reviews`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db._audit import write_audit
from db._database import NodeDatabase
from db._models import BoardCase, Job, Result, Series, Study, TumorBoard
from db._types import utcnow
from pancreas_contracts.boards import (
    AutoRule,
    BoardCategory,
    BoardInput,
    CaseInput,
    DecisionInput,
    Treatment,
    nccn_board_category,
)

__all__ = [
    "BoardCaseInfo",
    "BoardInfo",
    "DecisionInfo",
    "add_case",
    "auto_add_cases",
    "create_board",
    "get_board",
    "job_study",
    "list_board_cases",
    "list_boards",
    "record_decision",
    "remove_case",
    "study_job",
    "update_board",
]


@dataclass(frozen=True)
class BoardInfo:
    """One board as stored, with its case counts."""

    id: int
    board_date: date
    title: str
    members: tuple[str, ...]
    auto_rule: AutoRule | None
    created_by: str
    created_at: datetime
    case_count: int = 0
    decided_count: int = 0


@dataclass(frozen=True)
class DecisionInfo:
    """The board's decision on one case."""

    category: BoardCategory
    treatments: tuple[Treatment, ...]
    text: str | None
    decided_by: str
    decided_at: datetime


@dataclass(frozen=True)
class BoardCaseInfo:
    """One study on one board (``decision`` ``None``: not decided yet)."""

    board_id: int
    study_instance_uid: str
    job_id: str | None
    position: int
    added_by: str
    added_reason: str
    added_at: datetime
    decision: DecisionInfo | None


def _board_info(board: TumorBoard, cases: int = 0, decided: int = 0) -> BoardInfo:
    return BoardInfo(
        id=board.id,
        board_date=board.board_date,
        title=board.title,
        members=tuple(board.members or ()),
        auto_rule=None if board.auto_rule is None else AutoRule.model_validate(board.auto_rule),
        created_by=board.created_by,
        created_at=board.created_at,
        case_count=cases,
        decided_count=decided,
    )


def _case_info(case: BoardCase) -> BoardCaseInfo:
    decision = None
    if case.decision_category is not None and case.decided_at is not None:
        decision = DecisionInfo(
            category=BoardCategory(case.decision_category),
            treatments=tuple(Treatment(t) for t in case.treatments or ()),
            text=case.decision_text,
            decided_by=case.decided_by or "unknown",
            decided_at=case.decided_at,
        )
    return BoardCaseInfo(
        board_id=case.board_id,
        study_instance_uid=case.study_instance_uid,
        job_id=case.job_id,
        position=case.position,
        added_by=case.added_by,
        added_reason=case.added_reason,
        added_at=case.added_at,
        decision=decision,
    )


def _rule_json(rule: AutoRule | None) -> dict[str, object] | None:
    return None if rule is None else rule.model_dump(mode="json")


def _board_detail(board: BoardInput) -> dict[str, object]:
    return {"board_date": board.board_date.isoformat(), "auto": board.auto_rule is not None}


def create_board(
    db: NodeDatabase, board: BoardInput, *, actor: str, origin: str | None = None
) -> BoardInfo:
    """Schedule a board; audited as ``board.create``."""
    now = utcnow()
    with db.session() as session:
        row = TumorBoard(
            board_date=board.board_date,
            title=board.title,
            members=list(board.members),
            auto_rule=_rule_json(board.auto_rule),
            created_by=actor[:128],
            created_at=now,
        )
        session.add(row)
        session.flush()
        write_audit(
            session, actor=actor, action="board.create", object_type="board",
            object_id=str(row.id), origin=origin,
            detail=_board_detail(board),
            now=now,
        )  # fmt: skip
        return _board_info(row)


def update_board(
    db: NodeDatabase, board_id: int, board: BoardInput, *, actor: str, origin: str | None = None
) -> BoardInfo:
    """Change a board's date, title, members or rule; audited as ``board.update``.

    Raises
    ------
    LookupError
        If there is no board ``board_id``.
    """
    with db.session() as session:
        row = session.get(TumorBoard, board_id)
        if row is None:
            raise LookupError(f"no board {board_id}")
        row.board_date = board.board_date
        row.title = board.title
        row.members = list(board.members)
        row.auto_rule = _rule_json(board.auto_rule)
        write_audit(
            session, actor=actor, action="board.update", object_type="board",
            object_id=str(board_id), origin=origin,
            detail=_board_detail(board),
        )  # fmt: skip
        cases, decided = _counts(session, board_id)
        return _board_info(row, cases, decided)


def _counts(session: Session, board_id: int) -> tuple[int, int]:
    total, decided = session.execute(
        select(func.count(BoardCase.id), func.count(BoardCase.decided_at)).where(
            BoardCase.board_id == board_id
        )
    ).one()
    return int(total), int(decided)


def list_boards(
    db: NodeDatabase, *, date_from: date | None = None, date_to: date | None = None
) -> list[BoardInfo]:
    """Boards by date (then id), optionally between two dates (inclusive), with counts."""
    stmt = (
        select(TumorBoard, func.count(BoardCase.id), func.count(BoardCase.decided_at))
        .outerjoin(BoardCase, BoardCase.board_id == TumorBoard.id)
        .group_by(TumorBoard.id)
        .order_by(TumorBoard.board_date, TumorBoard.id)
    )
    if date_from is not None:
        stmt = stmt.where(TumorBoard.board_date >= date_from)
    if date_to is not None:
        stmt = stmt.where(TumorBoard.board_date <= date_to)
    with db.session() as session:
        return [_board_info(b, int(n), int(d)) for b, n, d in session.execute(stmt)]


def get_board(db: NodeDatabase, board_id: int) -> BoardInfo | None:
    """One board with its counts (``None`` if there is none)."""
    with db.session() as session:
        row = session.get(TumorBoard, board_id)
        if row is None:
            return None
        return _board_info(row, *_counts(session, board_id))


def list_board_cases(db: NodeDatabase, board_id: int) -> list[BoardCaseInfo]:
    """A board's cases in order of discussion."""
    stmt = (
        select(BoardCase)
        .where(BoardCase.board_id == board_id)
        .order_by(BoardCase.position, BoardCase.id)
    )
    with db.session() as session:
        return [_case_info(c) for c in session.scalars(stmt)]


def job_study(session: Session, job: Job) -> Study | None:
    """The study of ``job``'s series (``None`` if the series is unknown)."""
    return session.scalars(
        select(Study)
        .join(Series, Series.study_id == Study.id)
        .where(Series.series_instance_uid == job.series_instance_uid)
    ).first()


def study_job(session: Session, study_instance_uid: str) -> tuple[Job, Result] | None:
    """The study's newest job with a stored result (what a board or a reviewer sees)."""
    row = session.execute(
        select(Job, Result)
        .join(Result, Result.job_id == Job.id)
        .join(Series, Series.series_instance_uid == Job.series_instance_uid)
        .join(Study, Study.id == Series.study_id)
        .where(Study.study_instance_uid == study_instance_uid)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def _find_case(session: Session, board_id: int, study_instance_uid: str) -> BoardCase | None:
    return session.scalars(
        select(BoardCase).where(
            BoardCase.board_id == board_id, BoardCase.study_instance_uid == study_instance_uid
        )
    ).one_or_none()


def _insert_case(
    session: Session,
    board_id: int,
    study_instance_uid: str,
    job_id: str | None,
    *,
    actor: str,
    reason: str,
    origin: str | None,
    now: datetime,
) -> BoardCase:
    last = session.scalar(
        select(func.max(BoardCase.position)).where(BoardCase.board_id == board_id)
    )
    case = BoardCase(
        board_id=board_id,
        study_instance_uid=study_instance_uid,
        job_id=job_id,
        position=(last or 0) + 1,
        added_by=actor[:128],
        added_reason=reason,
        added_at=now,
    )
    session.add(case)
    session.flush()
    write_audit(
        session, actor=actor, action="board.case.add", object_type="board",
        object_id=str(board_id), origin=origin,
        detail={"study_instance_uid": study_instance_uid, "reason": reason, "job_id": job_id},
        now=now,
    )  # fmt: skip
    return case


def add_case(
    db: NodeDatabase, board_id: int, case: CaseInput, *, actor: str, origin: str | None = None
) -> tuple[BoardCaseInfo, bool]:
    """Put a study on a board by hand; ``(case, created)`` (a study already on it is kept).

    The study need not be known to the node yet (a board may discuss a study before it is
    analysed); its newest analysed job is linked when there is one.

    Raises
    ------
    LookupError
        If there is no board ``board_id``.
    """
    now = utcnow()
    with db.session() as session:
        if session.get(TumorBoard, board_id) is None:
            raise LookupError(f"no board {board_id}")
        existing = _find_case(session, board_id, case.study_instance_uid)
        if existing is not None:
            return _case_info(existing), False
        found = study_job(session, case.study_instance_uid)
        row = _insert_case(
            session, board_id, case.study_instance_uid, None if found is None else found[0].id,
            actor=actor, reason="manual", origin=origin, now=now,
        )  # fmt: skip
        return _case_info(row), True


def remove_case(
    db: NodeDatabase,
    board_id: int,
    study_instance_uid: str,
    *,
    actor: str,
    origin: str | None = None,
) -> bool:
    """Take a study off a board (its decision goes with it; the audit trail keeps both)."""
    with db.session() as session:
        case = _find_case(session, board_id, study_instance_uid)
        if case is None:
            return False
        detail = {
            "study_instance_uid": study_instance_uid,
            "had_decision": case.decision_category,
        }
        session.delete(case)
        write_audit(
            session, actor=actor, action="board.case.remove", object_type="board",
            object_id=str(board_id), origin=origin, detail=detail,
        )  # fmt: skip
        return True


def record_decision(
    db: NodeDatabase,
    board_id: int,
    study_instance_uid: str,
    decision: DecisionInput,
    *,
    actor: str,
    origin: str | None = None,
) -> BoardCaseInfo:
    """Record (or replace) the board's decision on a case; audited as ``board.decision``.

    The audit event holds the previous and the new category and treatment codes; the free text
    stays in the case only.

    Raises
    ------
    LookupError
        If the study is not on board ``board_id``.
    """
    now = utcnow()
    with db.session() as session:
        case = _find_case(session, board_id, study_instance_uid)
        if case is None:
            raise LookupError(f"study is not on board {board_id}")
        previous = case.decision_category
        case.decision_category = decision.category.value
        case.treatments = [t.value for t in decision.treatments]
        case.decision_text = decision.text
        case.decided_by = actor[:128]
        case.decided_at = now
        write_audit(
            session, actor=actor, action="board.decision", object_type="board",
            object_id=str(board_id), origin=origin,
            detail={
                "study_instance_uid": study_instance_uid,
                "previous": previous,
                "category": decision.category.value,
                "treatments": [t.value for t in decision.treatments],
                "has_text": decision.text is not None,
            },
            now=now,
        )  # fmt: skip
        return _case_info(case)


def _rule_matches(rule: AutoRule, result: Result, requesting_service: str | None) -> bool:
    if result.outcome not in rule.outcomes:
        return False
    if rule.min_pdac_likelihood is not None and (
        result.pdac_likelihood is None or result.pdac_likelihood < rule.min_pdac_likelihood
    ):
        return False
    if rule.categories and (
        result.category is None or nccn_board_category(result.category) not in rule.categories
    ):
        return False
    if rule.referring_services:
        wanted = {s.casefold() for s in rule.referring_services}
        if requesting_service is None or requesting_service.casefold() not in wanted:
            return False
    return True


def auto_add_cases(session: Session, job: Job, result: Result, now: datetime) -> list[int]:
    """Put a freshly analysed study on the next board whose auto rule it meets.

    Only boards on or after today are considered; the earliest matching one takes the study
    (one board per study by rule: a radiologist moves it by hand). A study already on any
    upcoming board is left where it is. Runs in :func:`db.complete_job`'s transaction.

    Returns
    -------
    list of int
        The ids of the boards the study was added to (empty or one).
    """
    study = job_study(session, job)
    if study is None:
        return []
    boards = session.scalars(
        select(TumorBoard)
        .where(TumorBoard.board_date >= now.date(), TumorBoard.auto_rule.is_not(None))
        .order_by(TumorBoard.board_date, TumorBoard.id)
    ).all()
    upcoming = {b.id for b in boards}
    on_board = session.scalars(
        select(BoardCase.board_id).where(BoardCase.study_instance_uid == study.study_instance_uid)
    ).all()
    if upcoming & set(on_board):
        return []
    for board in boards:
        rule = AutoRule.model_validate(board.auto_rule)
        if _rule_matches(rule, result, study.requesting_service):
            _insert_case(
                session, board.id, study.study_instance_uid, job.id,
                actor=job.lease_owner or "system", reason="rule", origin=None, now=now,
            )  # fmt: skip
            return [board.id]
    return []
