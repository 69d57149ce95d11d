"""The tumor board's routes without Orthanc: a real SQLite node database, Orthanc's REST API
faked (study lookups only). Every JSON answer is checked against ``openapi.json``."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from db import BoardInfo, NodeDatabase, get_board, list_audit_events, list_reviews
from orthanc_plugin import (
    CSV_COLUMNS,
    OPENAPI_PATH,
    CaseRow,
    case_rows,
    decisions_csv,
    vocabulary,
)
from orthanc_plugin._boards import board_routes
from orthanc_plugin._config import PluginConfig
from orthanc_plugin._node import NodeContext
from orthanc_plugin._orthanc_api import OrthancCallError
from orthanc_plugin._routes import Request, Response, Routes
from orthanc_plugin._store import SubmissionStore
from pancreas_contracts import load_settings
from pancreas_contracts.boards import BOARD_CATEGORY_TEXT, TREATMENT_TEXT, BoardCategory
from tests.orthanc_plugin.board_helpers import analyse, check_answer, openapi

ORTHANC_ID = "0123abcd-0123abcd-0123abcd-0123abcd-0123abcd"


class FakeOrthanc:
    """Orthanc's REST API as the routes use it: ``/tools/lookup`` and ``/studies/{id}``."""

    def __init__(self) -> None:
        self.studies: dict[str, str] = {}  # StudyInstanceUID -> Orthanc id

    def get(self, path: str) -> bytes:
        for uid, ident in self.studies.items():
            if path == f"/studies/{ident}":
                return json.dumps({"MainDicomTags": {"StudyInstanceUID": uid}}).encode()
        raise OrthancCallError(17, "Unknown resource")

    def post(self, path: str, body: bytes) -> bytes:
        assert path == "/tools/lookup"
        ident = self.studies.get(body.decode())
        return json.dumps([] if ident is None else [{"Type": "Study", "ID": ident}]).encode()

    def put(self, path: str, body: bytes) -> bytes:
        raise AssertionError("the board routes never PUT into Orthanc")

    def delete(self, path: str) -> None:
        raise AssertionError("the board routes never DELETE in Orthanc")


@dataclass
class Api:
    """The plugin's router with the board routes, and the node behind it."""

    routes: Routes
    node: NodeContext
    orthanc: FakeOrthanc

    @property
    def db(self) -> NodeDatabase:
        return self.node.database

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str = "admin",
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
    ) -> Response:
        """Send a request as Orthanc ``user``; JSON answers are checked against the document."""
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        token = base64.b64encode(f"{user}:pw".encode()).decode()
        request = Request(
            method, path, query=query or {}, headers={"authorization": f"Basic {token}"}, body=data
        )
        response = self.routes.handle(request)
        if not isinstance(response.body, bytes) and response.status != 405:
            check_answer(method, path, response.status, response.body)
        return response


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = load_settings(data_dir=tmp_path / "data")
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    node = NodeContext(settings, database)
    store = SubmissionStore(tmp_path / "plugin.sqlite")
    orthanc = FakeOrthanc()
    routes = Routes(
        orthanc,
        store,
        node,
        PluginConfig(state_file=tmp_path / "plugin.sqlite", write_users=("admin",)),
        bundle_sha256=lambda: "bundle",
        wake=lambda: None,
        push_series=lambda series: None,
    )
    routes.extend(board_routes(routes, node, store))
    yield Api(routes, node, orthanc)
    database.dispose()


BOARD = {"board_date": "2026-12-10", "title": "HPB board", "members": ["Dr A (surgery)"]}
DECISION = {"category": "borderline", "treatments": ["neoadjuvant-then-surgery", "biopsy"]}


def new_board(api: Api, **values: Any) -> int:
    answer = api.call("POST", "/pancreas-ai/boards", {**BOARD, **values})
    assert answer.status == 201, answer.body
    return int(answer.body["id"])


def test_boards_are_created_listed_read_and_changed(api: Api) -> None:
    rule = {"outcomes": ["done"], "min_pdac_likelihood": 0.5, "categories": ["borderline"]}
    first = api.call("POST", "/pancreas-ai/boards", {**BOARD, "auto_rule": rule})
    assert first.status == 201
    assert first.body["auto_rule"]["categories"] == ["borderline"]
    assert first.body["created_by"] == "orthanc:admin" and first.body["packet"] is None
    later = new_board(api, board_date="2027-01-05", title="Later board")
    listed = api.call("GET", "/pancreas-ai/boards").body["boards"]
    assert [b["id"] for b in listed] == [first.body["id"], later]
    window = {"from": "2027-01-01", "to": "2027-01-31"}
    assert [
        b["id"] for b in api.call("GET", "/pancreas-ai/boards", query=window).body["boards"]
    ] == [later]
    assert api.call("GET", "/pancreas-ai/boards", query={"from": "12/10/2026"}).status == 400
    changed = api.call("PUT", f"/pancreas-ai/boards/{later}", {**BOARD, "title": "Renamed"})
    assert changed.status == 200 and changed.body["title"] == "Renamed"
    got = api.call("GET", f"/pancreas-ai/boards/{later}")
    assert got.body["board"]["title"] == "Renamed" and got.body["cases"] == []
    for path in ("/pancreas-ai/boards/999", "/pancreas-ai/boards/x"):
        assert api.call("GET", path).status == 404
        assert api.call("PUT", path, BOARD).status == 404
    actions = [(e.action, e.actor) for e in list_audit_events(api.db)]
    assert ("board.create", "orthanc:admin") in actions
    assert ("board.update", "orthanc:admin") in actions


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "invalid body"),
        (b"[]", "invalid body"),
        (json.dumps({**BOARD, "title": "  "}).encode(), "title"),
        (json.dumps({**BOARD, "board_date": "tomorrow"}).encode(), "board_date"),
        (json.dumps({**BOARD, "colour": "red"}).encode(), "colour"),
        (json.dumps({**BOARD, "auto_rule": {"outcomes": ["exploded"]}}).encode(), "outcome"),
    ],
)
def test_bad_board_bodies_answer_400_with_a_readable_message(
    api: Api, raw: bytes, words: str
) -> None:
    answer = api.call("POST", "/pancreas-ai/boards", raw=raw)
    assert answer.status == 400
    assert words in answer.body["error"] and "Traceback" not in answer.body["error"]


def test_cases_carry_the_ai_result_review_and_decision(api: Api) -> None:
    analyse(api.db, "1.2.10")
    api.orthanc.studies["1.2.10"] = ORTHANC_ID
    board = new_board(api)
    cases = f"/pancreas-ai/boards/{board}/cases"
    added = api.call("POST", cases, {"study_instance_uid": "1.2.10"})
    assert added.status == 201
    case = added.body
    assert case["orthanc_study_id"] == ORTHANC_ID and case["added_reason"] == "manual"
    assert case["ai"]["status"] == "ai-done" and case["ai"]["category"] == "borderline"
    assert case["ai"]["probabilities"] == {
        "resectable": 0.2,
        "borderline": 0.7,
        "locally-advanced": 0.1,
    }
    assert (case["ai"]["pdac_likelihood"], case["ai"]["n_estimate"]) == (0.93, "N+")
    assert case["review"] is None and case["decision"] is None
    assert api.call("POST", cases, {"study_instance_uid": "1.2.10"}).status == 200
    reads = len([e for e in list_audit_events(api.db) if e.action == "result.read"])
    unanalysed = api.call("POST", cases, {"study_instance_uid": "1.2.11"})
    assert unanalysed.status == 201 and unanalysed.body["ai"]["status"] == "none"
    # the answer reads that case's result only (each read is audited)
    assert len([e for e in list_audit_events(api.db) if e.action == "result.read"]) == reads
    assert api.call("POST", cases, {"study_instance_uid": "1.2.abc"}).status == 400
    assert (
        api.call("POST", "/pancreas-ai/boards/77/cases", {"study_instance_uid": "1.2"}).status
        == 404
    )

    decision = f"{cases}/1.2.10/decision"
    decided = api.call("PUT", decision, {**DECISION, "text": "  re-stage after 4 cycles "})
    assert decided.status == 200
    assert decided.body["decision"] == {
        "category": "borderline",
        "treatments": ["neoadjuvant-then-surgery", "biopsy"],
        "text": "re-stage after 4 cycles",
        "category_text": "Borderline resectable",
        "treatment_texts": [
            "Neoadjuvant therapy, then re-staging for surgery",
            "Biopsy / tissue diagnosis",
        ],
        "decided_by": "orthanc:admin",
        "decided_at": decided.body["decision"]["decided_at"],
    }
    # the Orthanc id names the study as well as its UID
    assert api.call("PUT", f"{cases}/{ORTHANC_ID}/decision", DECISION).status == 200
    assert api.call("PUT", f"{cases}/1.2.99/decision", DECISION).status == 404
    assert api.call("PUT", "/pancreas-ai/boards/77/cases/1.2.10/decision", DECISION).status == 404
    assert api.call("PUT", decision, {"category": "stage-iv"}).status == 400
    board_json = api.call("GET", f"/pancreas-ai/boards/{board}").body
    assert [c["study_instance_uid"] for c in board_json["cases"]] == ["1.2.10", "1.2.11"]
    assert (board_json["board"]["case_count"], board_json["board"]["decided_count"]) == (2, 1)

    removed = api.call("DELETE", f"{cases}/1.2.11")
    assert removed.status == 200 and removed.body == {"removed": True}
    assert api.call("DELETE", f"{cases}/1.2.11").status == 404
    assert api.call("DELETE", "/pancreas-ai/boards/77/cases/1.2.10").status == 404
    audit = {e.action for e in list_audit_events(api.db) if e.actor == "orthanc:admin"}
    assert {"board.case.add", "board.decision", "board.case.remove"} <= audit


def test_decision_csv_has_one_quoted_row_per_case(api: Api) -> None:
    analyse(api.db, "1.2.20")
    analyse(api.db, "1.2.21", category=None)
    board = new_board(api)
    for uid in ("1.2.20", "1.2.21"):
        api.call("POST", f"/pancreas-ai/boards/{board}/cases", {"study_instance_uid": uid})
    api.call("POST", "/pancreas-ai/studies/1.2.20/reviews", {"verdict": "agree"})
    tricky = 'surgery, then "FOLFIRINOX"\nsecond line'
    api.call(
        "PUT",
        f"/pancreas-ai/boards/{board}/cases/1.2.20/decision",
        {**DECISION, "text": tricky},
    )
    api.call(
        "PUT",
        f"/pancreas-ai/boards/{board}/cases/1.2.21/decision",
        {"category": "metastatic", "text": '=HYPERLINK("x")'},
    )
    answer = api.call("GET", f"/pancreas-ai/boards/{board}/decisions.csv")
    assert answer.status == 200 and answer.content_type.startswith("text/csv")
    text = answer.body.decode("utf-8")
    assert "ACC-SECRET" not in text and "clinical use" not in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    first, second = rows
    assert first["position"] == "1" and first["study_instance_uid"] == "1.2.20"
    assert first["ai_category"] == "borderline" and first["model_version"] == "phantom-test 0.1"
    assert first["ai_probabilities"] == "resectable=0.200;borderline=0.700;locally-advanced=0.100"
    assert (first["pdac_likelihood"], first["n_estimate"], first["risk_group"]) == (
        "0.93",
        "N+",
        "high",
    )
    assert (first["review_verdict"], first["reviewer"]) == ("agree", "orthanc:admin")
    assert first["board_category"] == "borderline"
    assert first["treatments"] == "neoadjuvant-then-surgery;biopsy"
    assert first["decision_text"] == tricky and first["decided_by"] == "orthanc:admin"
    assert second["ai_category"] == "" and second["review_verdict"] == ""
    assert second["decision_text"] == '\'=HYPERLINK("x")'  # no formula for a spreadsheet
    assert api.call("GET", "/pancreas-ai/boards/77/decisions.csv").status == 404


def test_decisions_csv_refuses_cases_of_another_board(api: Api) -> None:
    board = new_board(api)
    other = new_board(api, title="Other")
    api.call("POST", f"/pancreas-ai/boards/{other}/cases", {"study_instance_uid": "1.2.30"})
    rows: list[CaseRow] = case_rows(api.db, other, actor="cli:test")
    info = get_board(api.db, board)
    assert isinstance(info, BoardInfo)
    with pytest.raises(ValueError, match="not on board"):
        decisions_csv(info, rows)
    header = decisions_csv(info, []).splitlines()
    assert header == [",".join(CSV_COLUMNS)]


def test_packet_is_served_once_the_node_built_it(api: Api) -> None:
    board = new_board(api)
    path = f"/pancreas-ai/boards/{board}/packet.pdf"
    missing = api.call("GET", path)
    assert missing.status == 404 and "no packet" in missing.body["error"]
    packet = api.node.settings.data_dir / "boards" / str(board) / "packet.pdf"
    packet.parent.mkdir(parents=True)
    packet.write_bytes(b"%PDF-1.4\n%%EOF\n")
    answer = api.call("GET", path)
    assert (answer.status, answer.content_type, answer.body) == (
        200,
        "application/pdf",
        b"%PDF-1.4\n%%EOF\n",
    )
    listed = api.call("GET", f"/pancreas-ai/boards/{board}").body["board"]["packet"]
    assert listed["url"] == path and listed["built_at"].startswith(str(date.today().year))
    assert api.call("GET", "/pancreas-ai/boards/77/packet.pdf").status == 404


def test_reviews_agree_override_and_refusals(api: Api) -> None:
    reviews = "/pancreas-ai/studies/1.2.40/reviews"
    assert api.call("POST", reviews, {"verdict": "agree"}).status == 409  # no AI result
    analyse(api.db, "1.2.40")
    board = new_board(api)
    api.call("POST", f"/pancreas-ai/boards/{board}/cases", {"study_instance_uid": "1.2.40"})
    agreed = api.call("POST", reviews, {"verdict": "agree"})
    assert agreed.status == 201 and agreed.body["disagrees"] is False
    assert agreed.body["ai_category"] == "borderline" and agreed.body["reviewer"] == "orthanc:admin"
    override = {"verdict": "override", "category": "locally-advanced", "reason": "SMA 200 deg"}
    overridden = api.call("POST", reviews, override)
    assert overridden.status == 201 and overridden.body["disagrees"] is True
    for bad in (
        {"verdict": "override", "category": "resectable"},  # no reason
        {"verdict": "agree", "category": "resectable"},
        {"verdict": "maybe"},
    ):
        assert api.call("POST", reviews, bad).status == 400
    correct = api.call("POST", reviews, {"verdict": "correct", "reason": "uncinate"})
    assert correct.status == 400 and "/corrections" in correct.body["error"]
    listed = api.call("GET", reviews).body
    assert [r["verdict"] for r in listed["reviews"]] == ["agree", "override"]
    assert [b["board_id"] for b in listed["boards"]] == [board]
    assert listed["boards"][0]["decision"] is None
    case = api.call("GET", f"/pancreas-ai/boards/{board}").body["cases"][0]
    assert case["review"]["verdict"] == "override"
    assert api.call("GET", f"/pancreas-ai/studies/{ORTHANC_ID}/reviews").status == 404


def correction(count: int = 2, rows: Any = 4, columns: Any = 4, **values: Any) -> dict[str, Any]:
    pixels = rows * columns if isinstance(rows, int) and isinstance(columns, int) else 16
    body: dict[str, Any] = {
        "reason": "tumor extends into the uncinate process",
        "category": None,
        "based_on_seg_sop_instance_uid": "1.2.50.9.1",
        "referenced_series_instance_uid": "1.2.50.1",
        "rows": rows,
        "columns": columns,
        "frames": [
            {"sop_instance_uid": f"1.2.50.1.{n}", "rle": [[0, pixels - 3], [3, 3]]}
            for n in range(count)
        ],
    }
    body.update(values)
    return body


def test_a_correction_is_stored_and_recorded_pending(api: Api) -> None:
    path = "/pancreas-ai/studies/1.2.50/corrections"
    assert api.call("POST", path, correction()).status == 409  # no AI result yet
    corrections = api.node.settings.data_dir / "corrections"
    assert list(corrections.glob("*")) == []  # the refused one left nothing behind
    analyse(api.db, "1.2.50")
    answer = api.call("POST", path, correction(category="locally-advanced"))
    assert answer.status == 202
    review = answer.body
    assert review["verdict"] == "correct" and review["disagrees"] is True
    assert review["correction"] == {
        "state": "pending",
        "corrected_seg_sop_instance_uid": None,
        "amendment_sr_sop_instance_uid": None,
        "error": None,
    }
    (stored,) = list_reviews(api.db, "1.2.50")
    assert stored.correction_path is not None
    saved = Path(stored.correction_path)
    assert saved.parent == corrections.resolve() and re.fullmatch(r"[0-9a-f]{32}\.json", saved.name)
    content = json.loads(saved.read_text(encoding="utf-8"))
    assert content["rows"] == 4 and content["frames"][1]["rle"] == [[0, 13], [3, 3]]
    assert [p.name for p in corrections.iterdir()] == [saved.name]  # no temporary file left


def _frames(rle: list[list[Any]], uid: str = "1.2.50.1.1") -> dict[str, Any]:
    return {"frames": [{"sop_instance_uid": uid, "rle": rle}]}


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"rows": 0}, "rows"),
        ({"columns": 4097}, "columns"),
        ({"rows": "4"}, "rows"),
        (_frames([[0, 15]]), "sum to 15, not rows x columns = 16"),
        (_frames([[0, 17], [1, -1]]), "rle"),
        (_frames([[256, 16]]), "rle"),
        (_frames([[0, 16.0]]), "rle"),
        (_frames([[0, 8, 1], [0, 8]]), "rle"),
        (_frames([[0, 16]], uid="1.2.x"), "sop_instance_uid"),
        ({"frames": []}, "frames"),
        ({"based_on_seg_sop_instance_uid": "seg"}, "based_on_seg_sop_instance_uid"),
        ({"referenced_series_instance_uid": "1." + "2" * 70}, "referenced_series"),
        ({"reason": "   "}, "reason"),
        ({"reason": None}, "reason"),
        ({"category": "stage-iv"}, "category"),
        ({"segments": [1]}, "segments"),
    ],
)
def test_bad_corrections_answer_400(api: Api, values: dict[str, Any], words: str) -> None:
    analyse(api.db, "1.2.50")
    answer = api.call("POST", "/pancreas-ai/studies/1.2.50/corrections", correction(**values))
    assert answer.status == 400, answer.body
    assert words in answer.body["error"]
    assert list_reviews(api.db, "1.2.50") == []


def test_corrections_are_bounded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    analyse(api.db, "1.2.50")
    path = "/pancreas-ai/studies/1.2.50/corrections"
    duplicate = correction(count=1)
    duplicate["frames"] *= 2
    assert "listed twice" in api.call("POST", path, duplicate).body["error"]
    many = api.call("POST", path, correction(count=2001, rows=1, columns=4))
    assert many.status == 400 and "frames" in many.body["error"]
    assert api.call("POST", path, correction(count=2000, rows=1, columns=4)).status == 202
    monkeypatch.setattr("orthanc_plugin._reviews.MAX_CORRECTION_BYTES", 100)
    assert api.call("POST", path, correction()).status == 413


WRITES = [
    ("POST", "/pancreas-ai/boards"),
    ("PUT", "/pancreas-ai/boards/1"),
    ("POST", "/pancreas-ai/boards/1/cases"),
    ("DELETE", "/pancreas-ai/boards/1/cases/1.2.10"),
    ("PUT", "/pancreas-ai/boards/1/cases/1.2.10/decision"),
    ("POST", "/pancreas-ai/studies/1.2.10/reviews"),
    ("POST", "/pancreas-ai/studies/1.2.10/corrections"),
    ("POST", "/pancreas-ai/studies/1.2.10/reanalyse"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_every_write_route_is_for_write_users_only(api: Api, method: str, path: str) -> None:
    new_board(api)
    body = {"verdict": "agree"}
    answer = api.call(method, path, body, user="viewer")
    assert answer.status == 403 and "viewer" in answer.body["error"]
    assert not any(e.actor == "orthanc:viewer" for e in list_audit_events(api.db))


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/pancreas-ai/boards", "GET,POST"),
        ("POST", "/pancreas-ai/boards/1", "GET,PUT"),
        ("GET", "/pancreas-ai/boards/1/cases", "POST"),
        ("PUT", "/pancreas-ai/boards/1/cases/1.2.3", "DELETE"),
        ("GET", "/pancreas-ai/boards/1/cases/1.2.3/decision", "PUT"),
        ("POST", "/pancreas-ai/boards/1/decisions.csv", "GET"),
        ("DELETE", "/pancreas-ai/boards/1/packet.pdf", "GET"),
        ("DELETE", "/pancreas-ai/studies/1.2.3/reviews", "GET,POST"),
        ("GET", "/pancreas-ai/studies/1.2.3/corrections", "POST"),
        ("POST", "/pancreas-ai/vocabulary", "GET"),
        ("PUT", "/pancreas-ai/openapi.json", "GET"),
    ],
)
def test_other_methods_answer_405(api: Api, method: str, path: str, allowed: str) -> None:
    answer = api.call(method, path, {})
    assert (answer.status, answer.allowed) == (405, allowed)


def test_vocabulary_and_openapi_routes(api: Api) -> None:
    words = api.call("GET", "/pancreas-ai/vocabulary").body
    assert words == vocabulary()
    assert [c["value"] for c in words["board_categories"]] == [c.value for c in BoardCategory]
    assert {c["text"] for c in words["board_categories"]} == set(BOARD_CATEGORY_TEXT.values())
    assert {t["text"] for t in words["treatments"]} == set(TREATMENT_TEXT.values())
    assert [v["value"] for v in words["review_verdicts"]] == ["agree", "override", "correct"]
    document = api.call("GET", "/pancreas-ai/openapi.json")
    assert (document.status, document.content_type) == (200, "application/json")
    assert document.body == OPENAPI_PATH.read_bytes()


def _route_templates(routes: Routes) -> set[tuple[str, str]]:
    """``(method, path template)`` of every route the router serves (groups as ``{}``)."""
    served: set[tuple[str, str]] = set()
    for pattern, handlers in routes._table:
        template = pattern.pattern.strip("^$").replace("([^/]+)", "{}").replace("\\", "")
        served |= {(method, template) for method in handlers}
    return served


def test_the_document_lists_exactly_the_routes_the_plugin_serves(api: Api) -> None:
    documented: set[tuple[str, str]] = set()
    for path, item in openapi()["paths"].items():
        template = re.sub(r"\{[^}]+\}", "{}", path)
        methods = {m.upper() for m in item if m in ("get", "post", "put", "delete", "patch")}
        documented |= {(m, template) for m in methods}
    assert _route_templates(api.routes) == documented


def test_the_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    validate(openapi())
    assert openapi()["openapi"].startswith("3.1")
