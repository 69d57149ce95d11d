"""Radiologists' reviews of a study's AI result: agree, override, correct (issue 26).

Every review is kept (the newest one is the study's review) and audited; the audit detail holds
the verdict and categories, never the reason's text. A correction carries the label map the
viewer sent (a file under the data directory); the node writes it as a new SEG version and an
SR amendment and records their UIDs here (:func:`mark_correction_written`).

A review that disagrees with the node (an override to another category, or a correction that
changes it) is a *disagreement*; :func:`record_review` reports it so that the caller can tell
people (notifications).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from db._audit import write_audit
from db._boards import study_job
from db._database import NodeDatabase
from db._models import BoardCase, Job, Review
from db._notifications import notify_disagreement
from db._types import utcnow
from pancreas_contracts.boards import BoardCategory, ReviewInput, ReviewVerdict

__all__ = [
    "CorrectionState",
    "ReviewInfo",
    "ReviewedCase",
    "get_review",
    "latest_review",
    "list_reviews",
    "mark_correction_failed",
    "mark_correction_written",
    "pending_corrections",
    "record_review",
    "reviewed_cases",
]

_MAX_ERROR = 2000


class CorrectionState:
    """The states of a segmentation correction (``Review.correction_state``)."""

    PENDING = "pending"
    WRITTEN = "written"
    FAILED = "failed"


@dataclass(frozen=True)
class ReviewInfo:
    """One review as stored.

    ``disagrees`` is true when the review's category differs from the node's (or the node gave
    none and the radiologist gave one).
    """

    id: int
    study_instance_uid: str
    job_id: str | None
    verdict: ReviewVerdict
    ai_category: int | None
    category: BoardCategory | None
    reason: str | None
    reviewer: str
    created_at: datetime
    correction_path: str | None = None
    correction_state: str | None = None
    correction_error: str | None = None
    corrected_seg_sop_uid: str | None = None
    amendment_sr_sop_uid: str | None = None

    @property
    def disagrees(self) -> bool:
        """Whether the radiologist's category differs from the node's."""
        if self.category is None:
            return False
        if self.ai_category is None:
            return True
        return list(BoardCategory).index(self.category) != self.ai_category


@dataclass(frozen=True)
class ReviewedCase:
    """A study with a review, for the training export: the newest review and board decision.

    ``board_category`` is the newest board decision's category on any board (``None``: none
    decided yet).
    """

    review: ReviewInfo
    series_instance_uid: str | None
    board_category: BoardCategory | None


def _info(row: Review) -> ReviewInfo:
    return ReviewInfo(
        id=row.id,
        study_instance_uid=row.study_instance_uid,
        job_id=row.job_id,
        verdict=ReviewVerdict(row.verdict),
        ai_category=row.ai_category,
        category=None if row.category is None else BoardCategory(row.category),
        reason=row.reason,
        reviewer=row.reviewer,
        created_at=row.created_at,
        correction_path=row.correction_path,
        correction_state=row.correction_state,
        correction_error=row.correction_error,
        corrected_seg_sop_uid=row.corrected_seg_sop_uid,
        amendment_sr_sop_uid=row.amendment_sr_sop_uid,
    )


def record_review(
    db: NodeDatabase,
    study_instance_uid: str,
    review: ReviewInput,
    *,
    actor: str,
    origin: str | None = None,
    correction_path: str | None = None,
) -> ReviewInfo:
    """Record a radiologist's review of the study's newest AI result.

    Parameters
    ----------
    correction_path
        For ``correct``: the stored label map the node turns into a new SEG version (the
        review starts ``pending``).

    Raises
    ------
    LookupError
        If the study has no stored AI result to review.
    ValueError
        If a correction comes without its label map, or a label map without a correction.
    """
    if (review.verdict is ReviewVerdict.CORRECT) != (correction_path is not None):
        raise ValueError("a correction, and only a correction, carries a label map")
    now = utcnow()
    with db.session() as session:
        found = study_job(session, study_instance_uid)
        if found is None:
            raise LookupError("the study has no AI result to review")
        job, result = found
        row = Review(
            study_instance_uid=study_instance_uid,
            job_id=job.id,
            verdict=review.verdict.value,
            ai_category=result.category,
            category=None if review.category is None else review.category.value,
            reason=review.reason,
            reviewer=actor[:128],
            created_at=now,
            correction_path=correction_path,
            correction_state=None if correction_path is None else CorrectionState.PENDING,
        )
        session.add(row)
        session.flush()
        info = _info(row)
        write_audit(
            session, actor=actor, action=f"review.{review.verdict.value}",
            object_type="study", object_id=study_instance_uid, origin=origin,
            detail={
                "review_id": row.id,
                "job_id": job.id,
                "ai_category": result.category,
                "category": row.category,
                "disagrees": info.disagrees,
            },
            now=now,
        )  # fmt: skip
        if info.disagrees:
            notify_disagreement(
                session, review_id=row.id, verdict=row.verdict, ai_category=result.category,
                category=row.category, study_instance_uid=study_instance_uid, now=now,
            )  # fmt: skip
        return info


def get_review(db: NodeDatabase, review_id: int) -> ReviewInfo | None:
    """One review (``None`` if there is none)."""
    with db.session() as session:
        row = session.get(Review, review_id)
        return None if row is None else _info(row)


def list_reviews(db: NodeDatabase, study_instance_uid: str) -> list[ReviewInfo]:
    """A study's reviews, oldest first."""
    stmt = (
        select(Review)
        .where(Review.study_instance_uid == study_instance_uid)
        .order_by(Review.created_at, Review.id)
    )
    with db.session() as session:
        return [_info(r) for r in session.scalars(stmt)]


def latest_review(db: NodeDatabase, study_instance_uid: str) -> ReviewInfo | None:
    """The study's newest review (``None``: not reviewed)."""
    stmt = (
        select(Review)
        .where(Review.study_instance_uid == study_instance_uid)
        .order_by(Review.created_at.desc(), Review.id.desc())
        .limit(1)
    )
    with db.session() as session:
        row = session.scalars(stmt).first()
        return None if row is None else _info(row)


def pending_corrections(db: NodeDatabase, *, limit: int = 20) -> list[ReviewInfo]:
    """Corrections the node has not written yet, oldest first."""
    stmt = (
        select(Review)
        .where(Review.correction_state == CorrectionState.PENDING)
        .order_by(Review.id)
        .limit(limit)
    )
    with db.session() as session:
        return [_info(r) for r in session.scalars(stmt)]


def _finish_correction(
    db: NodeDatabase, review_id: int, *, actor: str, state: str, **values: str | None
) -> ReviewInfo:
    with db.session() as session:
        row = session.get(Review, review_id)
        if row is None:
            raise LookupError(f"no review {review_id}")
        row.correction_state = state
        for key, value in values.items():
            setattr(row, key, value)
        write_audit(
            session, actor=actor, action=f"review.correction.{state}", object_type="study",
            object_id=row.study_instance_uid, detail={"review_id": review_id},
        )  # fmt: skip
        return _info(row)


def mark_correction_written(
    db: NodeDatabase,
    review_id: int,
    *,
    corrected_seg_sop_uid: str,
    amendment_sr_sop_uid: str | None,
    actor: str = "system",
) -> ReviewInfo:
    """Record the SEG version (and SR amendment) the node wrote for a correction.

    Raises
    ------
    LookupError
        If there is no review ``review_id``.
    """
    return _finish_correction(
        db, review_id, actor=actor, state=CorrectionState.WRITTEN, correction_error=None,
        corrected_seg_sop_uid=corrected_seg_sop_uid, amendment_sr_sop_uid=amendment_sr_sop_uid,
    )  # fmt: skip


def mark_correction_failed(
    db: NodeDatabase, review_id: int, error: str, *, actor: str = "system"
) -> ReviewInfo:
    """Record why the node could not write a correction (no identifiers in ``error``).

    Raises
    ------
    LookupError
        If there is no review ``review_id``.
    """
    return _finish_correction(
        db, review_id, actor=actor, state=CorrectionState.FAILED,
        correction_error=error[:_MAX_ERROR],
    )  # fmt: skip


def reviewed_cases(db: NodeDatabase) -> list[ReviewedCase]:
    """Every reviewed study with its newest review, series and newest board decision.

    Ordered by the newest review's id (stable across exports).
    """
    with db.session() as session:
        newest: dict[str, Review] = {}
        for row in session.scalars(select(Review).order_by(Review.id)):
            newest[row.study_instance_uid] = row
        decisions: dict[str, str] = {}
        for case in session.scalars(
            select(BoardCase)
            .where(BoardCase.decided_at.is_not(None))
            .order_by(BoardCase.decided_at, BoardCase.id)
        ):
            if case.decision_category is not None:
                decisions[case.study_instance_uid] = case.decision_category
        out: list[ReviewedCase] = []
        for uid, row in sorted(newest.items(), key=lambda item: item[1].id):
            job = session.get(Job, row.job_id) if row.job_id else None
            category = decisions.get(uid)
            out.append(
                ReviewedCase(
                    review=_info(row),
                    series_instance_uid=None if job is None else job.series_instance_uid,
                    board_category=None if category is None else BoardCategory(category),
                )
            )
        return out
