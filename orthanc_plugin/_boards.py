"""The tumor board's routes (issue 26; the contract is docs/tumor-board.md).

``GET|POST /pancreas-ai/boards``, ``GET|PUT /pancreas-ai/boards/{id}``,
``POST /pancreas-ai/boards/{id}/cases``, ``DELETE /pancreas-ai/boards/{id}/cases/{study}``,
``PUT /pancreas-ai/boards/{id}/cases/{study}/decision``,
``GET /pancreas-ai/boards/{id}/decisions.csv``, ``GET /pancreas-ai/boards/{id}/packet.pdf``,
and the two documents the viewer builds on: ``GET /pancreas-ai/vocabulary`` and
``GET /pancreas-ai/openapi.json``.

Writes go through :mod:`db` (each audited with the acting Orthanc user as
``orthanc:<user>``); :class:`orthanc_plugin._routes.Routes` has already refused non-GET
methods to users outside ``PancreasAI.WriteUsers``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from db import (
    add_case,
    create_board,
    get_board,
    list_boards,
    record_decision,
    remove_case,
    update_board,
)
from orthanc_plugin._board_csv import decisions_csv
from orthanc_plugin._board_json import (
    ORIGIN,
    CaseRow,
    board_json,
    case_json,
    case_rows,
    error,
    parse_body,
)
from orthanc_plugin._node import NodeContext
from orthanc_plugin._reviews import ReviewRoutes
from orthanc_plugin._routes import Request, Response, Routes, RouteTable
from orthanc_plugin._store import Submission, SubmissionStore
from orthanc_plugin._worklist import query_date
from pancreas_contracts.boards import (
    BOARD_CATEGORY_TEXT,
    TREATMENT_TEXT,
    BoardInput,
    CaseInput,
    DecisionInput,
    NotificationEvent,
    ReviewVerdict,
)

__all__ = [
    "EVENT_TEXT",
    "OPENAPI_PATH",
    "VERDICT_TEXT",
    "BoardRoutes",
    "board_routes",
    "vocabulary",
]

#: The committed OpenAPI 3.1 description of every ``/pancreas-ai/`` route.
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ID = r"([^/]+)"

#: Display texts of the review verdicts (the viewer's buttons).
VERDICT_TEXT: Mapping[ReviewVerdict, str] = MappingProxyType(
    {
        ReviewVerdict.AGREE: "Agree with the AI result",
        ReviewVerdict.OVERRIDE: "Override the NCCN category",
        ReviewVerdict.CORRECT: "Correct the segmentation",
    }
)
#: Display texts of the notification events.
EVENT_TEXT: Mapping[NotificationEvent, str] = MappingProxyType(
    {
        NotificationEvent.RESULT_READY: "AI result ready",
        NotificationEvent.RESULT_FAILED: "AI analysis failed",
        NotificationEvent.DISAGREEMENT: "Radiologist disagrees with the AI",
        NotificationEvent.PACKET_READY: "Board packet ready",
    }
)


def vocabulary() -> dict[str, list[dict[str, str]]]:
    """``GET /pancreas-ai/vocabulary``: every coded value with its display text."""

    def pairs(texts: Mapping[Any, str]) -> list[dict[str, str]]:
        return [{"value": key.value, "text": text} for key, text in texts.items()]

    return {
        "board_categories": pairs(BOARD_CATEGORY_TEXT),
        "treatments": pairs(TREATMENT_TEXT),
        "review_verdicts": pairs(VERDICT_TEXT),
        "notification_events": pairs(EVENT_TEXT),
    }


@functools.cache
def _openapi_bytes() -> bytes:
    return OPENAPI_PATH.read_bytes()


def _board_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


@dataclass(frozen=True)
class BoardRoutes:
    """The board routes, built once by the plugin and added with ``Routes.extend``.

    Parameters
    ----------
    node
        The node's settings (``data_dir``: the packets) and database.
    resolve_study
        ``(Orthanc id, StudyInstanceUID)`` of a study named either way
        (:meth:`orthanc_plugin._routes.Routes.resolve_study`).
    lookup_study
        Orthanc's identifier of a StudyInstanceUID (``None``: Orthanc lacks it).
    submissions
        The plugin's submissions of an Orthanc study.
    """

    node: NodeContext
    resolve_study: Callable[[str], tuple[str | None, str | None]]
    lookup_study: Callable[[str], str | None]
    submissions: Callable[[str], list[Submission]]

    def table(self) -> RouteTable:
        """The routes, for :meth:`orthanc_plugin._routes.Routes.extend`."""
        base = "^/pancreas-ai/boards"
        return [
            (re.compile(r"^/pancreas-ai/openapi\.json$"), {"GET": self.openapi}),
            (re.compile(r"^/pancreas-ai/vocabulary$"), {"GET": self.vocabulary}),
            (re.compile(base + "$"), {"GET": self.boards, "POST": self.create}),
            (re.compile(base + f"/{_ID}$"), {"GET": self.get, "PUT": self.update}),
            (re.compile(base + f"/{_ID}/cases$"), {"POST": self.add_case}),
            (re.compile(base + f"/{_ID}/cases/{_ID}$"), {"DELETE": self.remove_case}),
            (re.compile(base + f"/{_ID}/cases/{_ID}/decision$"), {"PUT": self.decide}),
            (re.compile(base + rf"/{_ID}/decisions\.csv$"), {"GET": self.decision_csv}),
            (re.compile(base + rf"/{_ID}/packet\.pdf$"), {"GET": self.packet}),
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _packet_path(self, board_id: int) -> Path:
        return self.node.settings.data_dir / "boards" / str(board_id) / "packet.pdf"

    def _packet(self, board_id: int) -> dict[str, str] | None:
        try:
            mtime = self._packet_path(board_id).stat().st_mtime
        except FileNotFoundError:
            return None
        return {
            "built_at": datetime.fromtimestamp(mtime, UTC).isoformat(),
            "url": f"/pancreas-ai/boards/{board_id}/packet.pdf",
        }

    def _study_uid(self, ident: str) -> str | None:
        if _UID.match(ident):
            return ident
        return self.resolve_study(ident)[1]

    def _rows(self, board_id: int, request: Request, study: str | None = None) -> list[CaseRow]:
        return case_rows(
            self.node.database, board_id, actor=f"orthanc:{request.user}", origin=ORIGIN,
            lookup=self.lookup_study, submissions=self.submissions, study=study,
        )  # fmt: skip

    def _case(self, board_id: int, study_uid: str, request: Request) -> dict[str, Any] | None:
        rows = self._rows(board_id, request, study_uid)
        return case_json(rows[0]) if rows else None

    # -- routes ----------------------------------------------------------------------------

    def openapi(self, request: Request) -> Response:
        """``GET /pancreas-ai/openapi.json``: the committed OpenAPI document."""
        return Response(200, _openapi_bytes(), content_type="application/json")

    def vocabulary(self, request: Request) -> Response:
        """``GET /pancreas-ai/vocabulary``."""
        return Response(200, vocabulary())

    def boards(self, request: Request) -> Response:
        """``GET /pancreas-ai/boards?from=&to=``: boards by date."""
        try:
            start, end = query_date(request.query, "from"), query_date(request.query, "to")
        except ValueError as exc:
            return error(400, str(exc))
        boards = list_boards(self.node.database, date_from=start, date_to=end)
        return Response(200, {"boards": [board_json(b, self._packet(b.id)) for b in boards]})

    def create(self, request: Request) -> Response:
        """``POST /pancreas-ai/boards``: 201 with the new board."""
        body = parse_body(request, BoardInput)
        if isinstance(body, Response):
            return body
        board = create_board(
            self.node.database, body, actor=f"orthanc:{request.user}", origin=ORIGIN
        )
        return Response(201, board_json(board, self._packet(board.id)))

    def get(self, request: Request, raw_id: str) -> Response:
        """``GET /pancreas-ai/boards/{id}``: the board and its cases in order."""
        board_id = _board_id(raw_id)
        board = None if board_id is None else get_board(self.node.database, board_id)
        if board is None:
            return error(404, f"no board {raw_id}")
        cases = [case_json(r) for r in self._rows(board.id, request)]
        return Response(200, {"board": board_json(board, self._packet(board.id)), "cases": cases})

    def update(self, request: Request, raw_id: str) -> Response:
        """``PUT /pancreas-ai/boards/{id}``."""
        board_id = _board_id(raw_id)
        if board_id is None:
            return error(404, f"no board {raw_id}")
        body = parse_body(request, BoardInput)
        if isinstance(body, Response):
            return body
        try:
            board = update_board(
                self.node.database, board_id, body, actor=f"orthanc:{request.user}", origin=ORIGIN
            )
        except LookupError:
            return error(404, f"no board {raw_id}")
        return Response(200, board_json(board, self._packet(board.id)))

    def add_case(self, request: Request, raw_id: str) -> Response:
        """``POST /pancreas-ai/boards/{id}/cases``: 201, or 200 if it was on the board."""
        board_id = _board_id(raw_id)
        if board_id is None:
            return error(404, f"no board {raw_id}")
        body = parse_body(request, CaseInput)
        if isinstance(body, Response):
            return body
        try:
            case, created = add_case(
                self.node.database, board_id, body, actor=f"orthanc:{request.user}", origin=ORIGIN
            )
        except LookupError:
            return error(404, f"no board {raw_id}")
        found = self._case(board_id, case.study_instance_uid, request)
        return Response(201 if created else 200, found)

    def remove_case(self, request: Request, raw_id: str, study: str) -> Response:
        """``DELETE /pancreas-ai/boards/{id}/cases/{study}``."""
        board_id = _board_id(raw_id)
        if board_id is None or get_board(self.node.database, board_id) is None:
            return error(404, f"no board {raw_id}")
        uid = self._study_uid(study)
        removed = uid is not None and remove_case(
            self.node.database, board_id, uid, actor=f"orthanc:{request.user}", origin=ORIGIN
        )
        if not removed:
            return error(404, f"the study is not on board {board_id}")
        return Response(200, {"removed": True})

    def decide(self, request: Request, raw_id: str, study: str) -> Response:
        """``PUT /pancreas-ai/boards/{id}/cases/{study}/decision``: 200 with the case."""
        board_id = _board_id(raw_id)
        if board_id is None or get_board(self.node.database, board_id) is None:
            return error(404, f"no board {raw_id}")
        body = parse_body(request, DecisionInput)
        if isinstance(body, Response):
            return body
        uid = self._study_uid(study)
        if uid is None:
            return error(404, f"the study is not on board {board_id}")
        try:
            record_decision(
                self.node.database, board_id, uid, body,
                actor=f"orthanc:{request.user}", origin=ORIGIN,
            )  # fmt: skip
        except LookupError:
            return error(404, f"the study is not on board {board_id}")
        return Response(200, self._case(board_id, uid, request))

    def decision_csv(self, request: Request, raw_id: str) -> Response:
        """``GET /pancreas-ai/boards/{id}/decisions.csv``."""
        board_id = _board_id(raw_id)
        board = None if board_id is None else get_board(self.node.database, board_id)
        if board is None:
            return error(404, f"no board {raw_id}")
        text = decisions_csv(board, self._rows(board.id, request))
        return Response(200, text.encode("utf-8"), content_type="text/csv; charset=utf-8")

    def packet(self, request: Request, raw_id: str) -> Response:
        """``GET /pancreas-ai/boards/{id}/packet.pdf``: the newest packet the node built."""
        board_id = _board_id(raw_id)
        if board_id is None or get_board(self.node.database, board_id) is None:
            return error(404, f"no board {raw_id}")
        try:
            data = self._packet_path(board_id).read_bytes()
        except FileNotFoundError:
            return error(404, f"board {board_id} has no packet yet")
        return Response(200, data, content_type="application/pdf")


def board_routes(routes: Routes, node: NodeContext, store: SubmissionStore) -> RouteTable:
    """The board, review, vocabulary and OpenAPI routes (issue 26), finding studies in
    Orthanc the way ``routes`` does."""
    boards = BoardRoutes(
        node,
        resolve_study=routes.resolve_study,
        lookup_study=routes.orthanc_study_id,
        submissions=store.study_submissions,
    )
    return boards.table() + ReviewRoutes(node, resolve_study=routes.resolve_study).table()
