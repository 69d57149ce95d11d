"""The tumor-board worklist: filter and sort :class:`db.WorklistEntry` rows for display.

Query parameters of ``GET /pancreas-ai/worklist`` (all optional; lists are comma-separated):

``status``
    Any :class:`pancreas_contracts.status.StudyStatus` word: ``ai-pending``, ``ai-done``,
    ``ai-no-tumor``, ``ai-out-of-domain``, ``ai-no-pdac``, ``ai-refused``, ``ai-failed``,
    ``ai-skipped``, ``none``. Every study the node touched is listed (skipped ones too), each
    with its ``reason``.
``min_pdac``
    The PDAC detector's patient likelihood at least this (0-1); studies without a detector
    result are then left out. Each item carries ``pdac_likelihood`` (``null`` without one).
``n_status``
    ``N0``, ``N+`` (``N%2B``): the lymph-node model's N estimate (``result.json`` 1.6);
    studies without a lymph-node result are then left out. Each item carries ``n_estimate`` and
    ``n_positive_probability`` (``null`` without one).
``risk``
    ``high``, ``low``: the survival model's risk group (``result.json`` 1.7); studies without
    a survival result are then left out. Each item carries ``risk_group``,
    ``death_probability_1y`` and ``death_probability_3y`` (``null`` without one).
``category``
    ``resectable``, ``borderline``, ``locally-advanced``, ``none``.
``board``
    Board ids: the study's latest board (by date) is one of them.
``review``
    ``agree``, ``override``, ``correct`` (the study's newest radiologist review), ``none``
    (not reviewed).
``decision``
    ``pending`` (on a board, not decided), ``decided``, ``none`` (on no board); the study's
    latest board counts.
``board_from`` / ``board_to``
    Board dates (``YYYY-MM-DD``, inclusive); a study on no board is then left out.
``sort``
    ``board_date``, ``board`` (board id), ``study_date``, ``status``, ``category``,
    ``review`` (verdict), ``decision`` (``decided`` before ``pending``), ``pdac``,
    ``n_probability`` (the probability of N+), ``risk`` (the probability of death within
    3 years), ``updated`` (job last changed; the default).
``order``
    ``asc`` or ``desc`` (default ``desc``); empty values always sort last.
``limit`` / ``offset``
    Page size (1-1000, default 100) and start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote_plus

from db import WorklistEntry
from orthanc_plugin._status import category_name, job_reason, job_status, routing_status
from pancreas_contracts.result import CATEGORY_LABELS
from pancreas_contracts.status import STATUS_TEXT, StudyStatus

__all__ = ["WorklistQuery", "parse_worklist_query", "query_date", "worklist_page"]

_STATUSES = tuple(status.value for status in StudyStatus)
_CATEGORIES = ("resectable", "borderline", "locally-advanced", "none")
_DECISIONS = ("pending", "decided", "none")
_REVIEWS = ("agree", "override", "correct", "none")
_N_STATUSES = ("N0", "N+")
_RISK_GROUPS = ("high", "low")
_SORTS = (
    "board_date", "board", "study_date", "status", "category", "review", "decision", "pdac",
    "n_probability", "risk", "updated",
)  # fmt: skip


@dataclass(frozen=True)
class WorklistQuery:
    """A validated worklist query (see the module docstring)."""

    status: frozenset[str] | None = None
    category: frozenset[str] | None = None
    decision: frozenset[str] | None = None
    review: frozenset[str] | None = None
    board: frozenset[int] | None = None
    board_from: date | None = None
    board_to: date | None = None
    min_pdac: float | None = None
    n_status: frozenset[str] | None = None
    risk: frozenset[str] | None = None
    sort: str = "updated"
    descending: bool = True
    limit: int = 100
    offset: int = 0


def _choices(query: Mapping[str, str], key: str, allowed: Sequence[str]) -> frozenset[str] | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    values = frozenset(v.strip().lower() for v in raw.split(",") if v.strip())
    unknown = values - set(allowed)
    if unknown:
        raise ValueError(f"{key}: unknown value(s) {sorted(unknown)}; allowed {list(allowed)}")
    return values


def _n_statuses(query: Mapping[str, str]) -> frozenset[str] | None:
    raw = query.get("n_status")
    if raw is None or raw == "":
        return None
    # Orthanc hands the plugin GET arguments as sent: "N%2B" percent-encoded, or "N+" whose
    # unencoded "+" a query string reads as a space ("N "), stripped to "N": both are N+.
    words = [unquote_plus(v).strip().upper() for v in raw.split(",") if v.strip()]
    values = frozenset("N+" if v == "N" else v for v in words)
    unknown = values - set(_N_STATUSES)
    if unknown:
        allowed = list(_N_STATUSES)
        raise ValueError(f"n_status: unknown value(s) {sorted(unknown)}; allowed {allowed}")
    return values


def _board_ids(query: Mapping[str, str]) -> frozenset[int] | None:
    raw = query.get("board")
    if raw is None or raw == "":
        return None
    words = [v.strip() for v in raw.split(",") if v.strip()]
    if not words or not all(w.isdigit() and len(w) < 10 for w in words):
        raise ValueError(f"board: expected board ids (comma-separated), got {raw!r}")
    return frozenset(int(w) for w in words)


def query_date(query: Mapping[str, str], key: str) -> date | None:
    """The ISO date of query parameter ``key`` (``None`` when absent or empty).

    Raises
    ------
    ValueError
        If the value is not ``YYYY-MM-DD``.
    """
    raw = query.get(key)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"{key}: expected YYYY-MM-DD, got {raw!r}") from exc


def _int(query: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{key}: expected an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise ValueError(f"{key}: must be within {low}-{high}")
    return value


def _likelihood(query: Mapping[str, str], key: str) -> float | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}: expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{key}: expected a number between 0 and 1")
    return value


def parse_worklist_query(query: Mapping[str, str]) -> WorklistQuery:
    """Validate the query parameters.

    Raises
    ------
    ValueError
        One line naming the bad parameter (the route answers HTTP 400 with it).
    """
    sort = query.get("sort") or "updated"
    if sort not in _SORTS:
        raise ValueError(f"sort: unknown key {sort!r}; allowed {list(_SORTS)}")
    order = (query.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise ValueError("order: expected asc or desc")
    return WorklistQuery(
        status=_choices(query, "status", _STATUSES),
        category=_choices(query, "category", _CATEGORIES),
        decision=_choices(query, "decision", _DECISIONS),
        review=_choices(query, "review", _REVIEWS),
        board=_board_ids(query),
        board_from=query_date(query, "board_from"),
        board_to=query_date(query, "board_to"),
        min_pdac=_likelihood(query, "min_pdac"),
        n_status=_n_statuses(query),
        risk=_choices(query, "risk", _RISK_GROUPS),
        sort=sort,
        descending=order == "desc",
        limit=_int(query, "limit", 100, 1, 1000),
        offset=_int(query, "offset", 0, 0, 10**9),
    )


def _status_reason(entry: WorklistEntry) -> tuple[StudyStatus, str | None]:
    job = entry.job
    if job is None:
        return routing_status(entry.series_routing)
    has_category = category_name(entry.category, entry.category_label) is not None
    status = job_status(
        job.state,
        job.next_attempt_at is not None,
        job.failure_reason,
        has_category=has_category,
        outcome=entry.outcome,
    )
    return status, job_reason(job)


def _decision(entry: WorklistEntry) -> str:
    """``none`` (on no board), ``pending`` or ``decided`` (the study's latest board)."""
    if entry.board_id is None:
        return "none"
    return "pending" if entry.decided_at is None else "decided"


def _status(entry: WorklistEntry) -> str:
    return _status_reason(entry)[0].value


def _category(entry: WorklistEntry) -> str | None:
    if entry.job is None or _status(entry) != StudyStatus.DONE.value:
        return None
    name = category_name(entry.category, entry.category_label)
    return None if name is None else name.removeprefix("nccn-")


def _item(entry: WorklistEntry, orthanc_id: str | None) -> dict[str, Any]:
    category = _category(entry)
    probabilities = (
        dict(zip(CATEGORY_LABELS, entry.probabilities, strict=True))
        if category is not None and len(entry.probabilities) == len(CATEGORY_LABELS)
        else None
    )
    uid = entry.study_instance_uid
    status, reason = _status_reason(entry)
    return {
        "study_instance_uid": uid,
        "orthanc_study_id": orthanc_id,
        "accession_number": entry.accession_number,
        "study_date": _iso(entry.study_date),
        "ai_status": status.value,
        "status_text": STATUS_TEXT[status],
        "reason": reason,
        "category": category,
        "probabilities": probabilities,
        "pdac_likelihood": entry.pdac_likelihood,
        "n_estimate": entry.n_estimate,
        "n_positive_probability": entry.n_positive_probability,
        "risk_group": entry.risk_group,
        "death_probability_1y": entry.death_probability_1y,
        "death_probability_3y": entry.death_probability_3y,
        "job": None
        if entry.job is None
        else {
            "id": entry.job.id,
            "state": entry.job.state.value,
            "updated_at": _iso(entry.job.updated_at),
        },
        "board": None
        if entry.board_id is None
        else {"id": entry.board_id, "date": _iso(entry.board_date), "title": entry.board_title},
        "review": None
        if entry.review_verdict is None
        else {
            "verdict": entry.review_verdict,
            "category": entry.review_category,
            "reviewer": entry.reviewer,
        },
        "decision": {
            "state": _decision(entry),
            "category": entry.decision_category,
            "decided_at": _iso(entry.decided_at),
        },
        "links": {
            "results": f"/pancreas-ai/studies/{uid}/results",
            "status": f"/pancreas-ai/studies/{uid}/status",
        },
    }


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _keep(entry: WorklistEntry, query: WorklistQuery) -> bool:
    if query.status is not None and _status(entry) not in query.status:
        return False
    if query.min_pdac is not None and (
        entry.pdac_likelihood is None or entry.pdac_likelihood < query.min_pdac
    ):
        return False
    if query.n_status is not None and entry.n_estimate not in query.n_status:
        return False
    if query.risk is not None and entry.risk_group not in query.risk:
        return False
    if query.category is not None and (_category(entry) or "none") not in query.category:
        return False
    if query.decision is not None and _decision(entry) not in query.decision:
        return False
    if query.review is not None and (entry.review_verdict or "none") not in query.review:
        return False
    if query.board is not None and entry.board_id not in query.board:
        return False
    if query.board_from is not None and (
        entry.board_date is None or entry.board_date < query.board_from
    ):
        return False
    return not (
        query.board_to is not None
        and (entry.board_date is None or entry.board_date > query.board_to)
    )


_SORT_KEYS: Mapping[str, Callable[[WorklistEntry], Any]] = MappingProxyType(
    {
        "board_date": lambda e: e.board_date,
        "study_date": lambda e: e.study_date,
        "status": _status,
        "category": _category,
        "board": lambda e: e.board_id,
        "review": lambda e: e.review_verdict,
        "decision": lambda e: None if e.board_id is None else _decision(e),
        "pdac": lambda e: e.pdac_likelihood,
        "n_probability": lambda e: e.n_positive_probability,
        "risk": lambda e: e.death_probability_3y,
        "updated": lambda e: None if e.job is None else e.job.updated_at,
    }
)


def worklist_page(
    entries: Sequence[WorklistEntry],
    query: WorklistQuery,
    lookup: Callable[[str], str | None] = lambda uid: None,
) -> dict[str, Any]:
    """Filter, sort and page the worklist; empty sort values come last in either order.

    Parameters
    ----------
    entries
        The rows from :func:`db.list_worklist`.
    query
        The validated query.
    lookup
        Orthanc's study identifier for a StudyInstanceUID (``None`` if Orthanc lacks the
        study); called for the returned page only.
    """
    kept = [e for e in entries if _keep(e, query)]
    key = _SORT_KEYS[query.sort]
    present = [e for e in kept if key(e) is not None]
    missing = [e for e in kept if key(e) is None]
    present.sort(key=key, reverse=query.descending)
    ordered = present + missing
    page = ordered[query.offset : query.offset + query.limit]
    return {
        "total": len(ordered),
        "offset": query.offset,
        "limit": query.limit,
        "items": [_item(e, lookup(e.study_instance_uid)) for e in page],
    }
