"""What the tumor board's routes answer: the JSON shapes of docs/tumor-board.md, and one case
with its AI result and review (:class:`CaseRow`, also the decision CSV's row).

Shared by :mod:`orthanc_plugin._boards` and :mod:`orthanc_plugin._reviews`; the published
description of these shapes is ``orthanc_plugin/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from db import (
    BoardCaseInfo,
    BoardInfo,
    DecisionInfo,
    NodeDatabase,
    ResultInfo,
    ReviewInfo,
    get_result,
    latest_review,
    list_board_cases,
    list_study_jobs,
)
from orthanc_plugin._routes import Request, Response
from orthanc_plugin._status import StudyLabels, category_name, study_labels
from orthanc_plugin._store import Submission
from pancreas_contracts import JobState
from pancreas_contracts.boards import (
    BOARD_CATEGORY_TEXT,
    TREATMENT_TEXT,
    nccn_board_category,
)
from pancreas_contracts.result import CATEGORY_LABELS

__all__ = [
    "ORIGIN",
    "CaseRow",
    "ai_category",
    "board_json",
    "case_json",
    "case_rows",
    "decision_json",
    "error",
    "iso",
    "parse_body",
    "probabilities_json",
    "review_json",
]

#: The audit events' origin for changes made through the plugin's routes.
ORIGIN = "orthanc-plugin"
_MAX_ERRORS = 5
M = TypeVar("M", bound=BaseModel)


def error(status: int, message: str) -> Response:
    """An error answer ``{"error": message}``."""
    return Response(status, {"error": message})


def iso(value: date | datetime | None) -> str | None:
    """ISO 8601 text of a date or time (``None`` stays ``None``)."""
    return None if value is None else value.isoformat()


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_body(request: Request, model: type[M]) -> M | Response:
    """The request's JSON body as ``model``, or a 400 answer saying what is wrong.

    The message names each invalid field (at most five) with pydantic's words; the input
    values are left out (they may be free clinical text).
    """
    try:
        return model.model_validate_json(request.body or b"null")
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(p["type"] == "json_invalid" for p in problems):
            return error(400, "the body is not valid JSON")
        parts = [f"{_location(p['loc'])}: {p['msg']}" for p in problems[:_MAX_ERRORS]]
        more = len(problems) - _MAX_ERRORS
        if more > 0:
            parts.append(f"and {more} more problem(s)")
        return error(400, "invalid body: " + "; ".join(parts))


def ai_category(category: int | None, label: str | None) -> str | None:
    """The node's NCCN category as a board category word (``locally-advanced``)."""
    name = category_name(category, label)
    return None if name is None else name.removeprefix("nccn-")


def probabilities_json(result: ResultInfo | None) -> dict[str, float] | None:
    """The category probabilities by board category word (``None`` without three)."""
    if result is None or len(result.probabilities) != len(CATEGORY_LABELS):
        return None
    words = [label.replace(" ", "-") for label in CATEGORY_LABELS]
    return dict(zip(words, (float(p) for p in result.probabilities), strict=True))


@dataclass(frozen=True)
class CaseRow:
    """One case of a board with what the board looks at.

    Parameters
    ----------
    case
        The case as stored.
    labels
        The study's AI status (:func:`orthanc_plugin._status.study_labels`).
    result
        The study's newest AI result (``None``: none yet).
    review
        The study's newest radiologist review (``None``: not reviewed).
    orthanc_study_id
        Orthanc's identifier of the study (``None``: Orthanc lacks it, or not looked up).
    """

    case: BoardCaseInfo
    labels: StudyLabels
    result: ResultInfo | None
    review: ReviewInfo | None
    orthanc_study_id: str | None = None


def _newest_result(
    database: NodeDatabase, study_uid: str, actor: str, origin: str | None
) -> tuple[StudyLabels, ResultInfo | None, list[Any]]:
    rows = list_study_jobs(database, study_uid)
    done = [
        r.job
        for r in rows
        if r.job is not None and r.job.state in (JobState.DONE, JobState.DELIVERED)
    ]
    result = None
    if done:
        newest = max(done, key=lambda j: (j.created_at, j.id))
        result = get_result(database, newest.id, actor=actor, origin=origin)
    return study_labels(rows, []), result, rows


def case_rows(
    database: NodeDatabase,
    board_id: int,
    *,
    actor: str,
    origin: str | None = None,
    lookup: Callable[[str], str | None] = lambda uid: None,
    submissions: Callable[[str], Sequence[Submission]] = lambda orthanc_id: (),
    study: str | None = None,
) -> list[CaseRow]:
    """A board's cases in order, each with its AI status, newest result and newest review.

    Every result read is audited (``result.read`` by ``actor``). Reusable outside Orthanc
    (``pancreas-node board csv``): without ``lookup`` the Orthanc identifiers stay ``None``
    and the status comes from the node database alone.

    Parameters
    ----------
    lookup
        Orthanc's study identifier for a StudyInstanceUID.
    submissions
        The plugin's submissions of an Orthanc study (they decide the status of a study the
        node has no job for yet).
    study
        Only this StudyInstanceUID's case (one case's answer reads one result, not all).
    """
    out: list[CaseRow] = []
    for case in list_board_cases(database, board_id):
        uid = case.study_instance_uid
        if study is not None and uid != study:
            continue
        orthanc_id = lookup(uid)
        labels, result, rows = _newest_result(database, uid, actor, origin)
        if not any(r.job is not None for r in rows) and orthanc_id is not None:
            labels = study_labels(rows, list(submissions(orthanc_id)))
        out.append(CaseRow(case, labels, result, latest_review(database, uid), orthanc_id))
    return out


def board_json(board: BoardInfo, packet: dict[str, str] | None) -> dict[str, Any]:
    """**Board**: the board, its counts and its newest packet."""
    return {
        "id": board.id,
        "board_date": board.board_date.isoformat(),
        "title": board.title,
        "members": list(board.members),
        "auto_rule": None if board.auto_rule is None else board.auto_rule.model_dump(mode="json"),
        "created_by": board.created_by,
        "created_at": iso(board.created_at),
        "case_count": board.case_count,
        "decided_count": board.decided_count,
        "packet": packet,
    }


def decision_json(decision: DecisionInfo | None) -> dict[str, Any] | None:
    """**Decision**: the board's decision with the vocabulary's display texts."""
    if decision is None:
        return None
    return {
        "category": decision.category.value,
        "treatments": [t.value for t in decision.treatments],
        "text": decision.text,
        "category_text": BOARD_CATEGORY_TEXT[decision.category],
        "treatment_texts": [TREATMENT_TEXT[t] for t in decision.treatments],
        "decided_by": decision.decided_by,
        "decided_at": iso(decision.decided_at),
    }


def review_json(review: ReviewInfo | None) -> dict[str, Any] | None:
    """**Review**: one radiologist review, with its correction's progress."""
    if review is None:
        return None
    correction = None
    if review.correction_state is not None:
        correction = {
            "state": review.correction_state,
            "corrected_seg_sop_instance_uid": review.corrected_seg_sop_uid,
            "amendment_sr_sop_instance_uid": review.amendment_sr_sop_uid,
            "error": review.correction_error,
        }
    ai = review.ai_category
    return {
        "id": review.id,
        "study_instance_uid": review.study_instance_uid,
        "verdict": review.verdict.value,
        "ai_category": None if ai is None or ai not in range(3) else nccn_board_category(ai).value,
        "category": None if review.category is None else review.category.value,
        "reason": review.reason,
        "reviewer": review.reviewer,
        "created_at": iso(review.created_at),
        "disagrees": review.disagrees,
        "job_id": review.job_id,
        "correction": correction,
    }


def case_json(row: CaseRow) -> dict[str, Any]:
    """**Case**: a case with its AI summary, the study's newest review and the decision."""
    case, result = row.case, row.result
    category = None if result is None else ai_category(result.category, result.category_label)
    return {
        "board_id": case.board_id,
        "study_instance_uid": case.study_instance_uid,
        "orthanc_study_id": row.orthanc_study_id,
        "position": case.position,
        "added_by": case.added_by,
        "added_reason": case.added_reason,
        "added_at": iso(case.added_at),
        "job_id": case.job_id,
        "ai": {
            "status": row.labels.status.value,
            "status_text": row.labels.text,
            "reason": row.labels.reason,
            "outcome": None if result is None else result.outcome,
            "category": category,
            "probabilities": None if category is None else probabilities_json(result),
            "pdac_likelihood": None if result is None else result.pdac_likelihood,
            "n_estimate": None if result is None else result.n_estimate,
            "risk_group": None if result is None else result.risk_group,
            "model_version": None
            if result is None
            else f"{result.bundle_name} {result.bundle_version}",
        },
        "review": review_json(row.review),
        "decision": decision_json(case.decision),
    }
