"""The board's decision CSV (``GET /pancreas-ai/boards/{id}/decisions.csv``, and the CLI's
``pancreas-node board csv``): one row per case, in the board's order.

Identifiers stay out: the StudyInstanceUID names the study, and neither the accession number
nor patient data are written. Free texts (decision, names) are kept as written, except that a
cell a spreadsheet would read as a formula gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from db import BoardInfo
from orthanc_plugin._board_json import CaseRow, ai_category, iso, probabilities_json

__all__ = ["CSV_COLUMNS", "decisions_csv"]

#: The header row, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "position",
    "study_instance_uid",
    "ai_category",
    "ai_probabilities",
    "pdac_likelihood",
    "n_estimate",
    "risk_group",
    "model_version",
    "review_verdict",
    "reviewer_category",
    "reviewer",
    "board_category",
    "treatments",
    "decision_text",
    "decided_by",
    "decided_at",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    # A spreadsheet would evaluate "=..." from free text (CSV injection); numbers are ours.
    if text.startswith(_FORMULA_START) and not isinstance(value, int | float):
        return "'" + text
    return text


def _row(row: CaseRow) -> list[str]:
    case, result, review, decision = row.case, row.result, row.review, row.case.decision
    probabilities = probabilities_json(result)
    return [
        _cell(v)
        for v in (
            case.position,
            case.study_instance_uid,
            None if result is None else ai_category(result.category, result.category_label),
            None
            if probabilities is None
            else ";".join(f"{k}={p:.3f}" for k, p in probabilities.items()),
            None if result is None else result.pdac_likelihood,
            None if result is None else result.n_estimate,
            None if result is None else result.risk_group,
            None if result is None else f"{result.bundle_name} {result.bundle_version}",
            None if review is None else review.verdict.value,
            None if review is None or review.category is None else review.category.value,
            None if review is None else review.reviewer,
            None if decision is None else decision.category.value,
            None if decision is None else ";".join(t.value for t in decision.treatments),
            None if decision is None else decision.text,
            None if decision is None else decision.decided_by,
            None if decision is None else iso(decision.decided_at),
        )
    ]


def decisions_csv(board: BoardInfo, cases: Sequence[CaseRow]) -> str:
    """The decision CSV of ``board``: a header row, then one row per case in board order.

    Parameters
    ----------
    board
        The board (its id must be the cases' board).
    cases
        Its cases (:func:`orthanc_plugin.case_rows`).

    Returns
    -------
    str
        RFC 4180 CSV (``\\r\\n`` line ends, fields quoted where needed) with the columns of
        :data:`CSV_COLUMNS`.

    Raises
    ------
    ValueError
        If a case belongs to another board.
    """
    foreign = [c for c in cases if c.case.board_id != board.id]
    if foreign:
        raise ValueError(f"{len(foreign)} case(s) are not on board {board.id}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in sorted(cases, key=lambda c: c.case.position):
        writer.writerow(_row(row))
    return buffer.getvalue()
