"""The tumor-board API against the real Orthanc with the real plugin (the contract test).

One Orthanc with the PancreasAI plugin for the whole module (its node database migrated by the
test, no node running: the plugin only reads and writes the database here, and submission is
off). Every route of docs/tumor-board.md is called over HTTP with basic auth as Orthanc's
``admin`` (a write user) and ``viewer``; every JSON answer is validated against the schema of
that route and status in ``orthanc_plugin/openapi.json`` (JSON Schema 2020-12), the document
itself with openapi-spec-validator, and the documented routes against the served ones.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from db import NodeDatabase, list_audit_events, list_reviews
from orthanc_plugin import CSV_COLUMNS, OPENAPI_PATH
from pancreas_contracts import Settings
from pancreas_node.orthanc_server import (
    ORTHANC_BINARY,
    PYTHON_PLUGIN,
    OrthancConfig,
    OrthancError,
    OrthancServer,
    PythonPluginConfig,
)
from tests.conftest import free_port, require_executable, unavailable
from tests.dicom_node.conftest import node_settings
from tests.orthanc_plugin.board_helpers import analyse, check_answer, openapi
from tests.orthanc_plugin.conftest import write_node_toml
from tests.orthanc_plugin.test_plugin import seg_instance

pytestmark = pytest.mark.integration

STUDY = "1.2.826.0.1.3680043.8.498.26001"  # analysed, and in Orthanc
OTHER = "1.2.826.0.1.3680043.8.498.26002"  # analysed, not in Orthanc
BARE = "1.2.826.0.1.3680043.8.498.26003"  # neither


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Server:
    """The module's Orthanc with the plugin, and the test's handle on the node database."""

    orthanc: OrthancServer
    settings: Settings
    database: NodeDatabase

    def call(
        self, method: str, path: str, body: Any = None, *, user: str | None = "admin"
    ) -> Answer:
        """An HTTP request as Orthanc ``user`` (``None``: no credentials); a JSON answer is
        validated against the document's schema for the route and status."""
        data = None if body is None else json.dumps(body).encode()
        if data is None and method in ("POST", "PUT"):
            data = b""
        request = urllib.request.Request(self.orthanc.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if user is not None:
            config = self.orthanc.config
            password = config.admin_password if user == "admin" else config.viewer_password
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = Answer(
                    int(response.status), response.headers.get("Content-Type", ""), response.read()
                )
        except urllib.error.HTTPError as exc:
            answer = Answer(int(exc.code), exc.headers.get("Content-Type", ""), exc.read())
        if answer.content_type.startswith("application/json") and answer.status not in (401, 405):
            check_answer(method, path, answer.status, answer.json)
        return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_executable(ORTHANC_BINARY)
    if not PYTHON_PLUGIN.exists():
        unavailable(f"{PYTHON_PLUGIN} is absent (install the Debian package orthanc-python)")
    tmp_path = tmp_path_factory.mktemp("board-api")
    settings = node_settings(tmp_path / "node")
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()  # the node would; the plugin never migrates
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=free_port(),
        node_port=settings.port,
        python_plugin=PythonPluginConfig(
            node_config=write_node_toml(settings, tmp_path / "node.toml"), submit=False
        ),
    )
    orthanc = OrthancServer(config)
    try:
        orthanc.start()
    except OrthancError as exc:
        database.dispose()
        unavailable(f"Orthanc with the Python plugin did not start: {exc}")
    running = Server(orthanc, settings, database)
    try:
        if running.call("GET", "/pancreas-ai/queue").status != 200:
            log = orthanc.log_path.read_text(errors="replace")[-4000:]
            pytest.fail(f"the PancreasAI plugin did not load:\n{log}")
        analyse(database, STUDY)
        analyse(database, OTHER, category=2)
        _, seg = seg_instance(STUDY)
        status, _ = orthanc.request(
            "/instances", method="POST", data=seg, content_type="application/dicom"
        )
        assert status == 200
        yield running
    finally:
        orthanc.stop()
        database.dispose()


def orthanc_study_id(server: Server, uid: str) -> str:
    status, body = server.orthanc.request(
        "/tools/lookup", method="POST", data=uid.encode(), content_type="text/plain"
    )
    assert status == 200
    return str(next(h["ID"] for h in json.loads(body) if h["Type"] == "Study"))


BOARD = {
    "board_date": "2026-12-10",
    "title": "HPB board",
    "members": ["Dr A (surgery)", "Dr B (oncology)"],
    "auto_rule": {"outcomes": ["done"], "min_pdac_likelihood": 0.5, "categories": ["borderline"]},
}


def test_the_document_is_served_and_valid(server: Server) -> None:
    answer = server.call("GET", "/pancreas-ai/openapi.json")
    assert answer.status == 200 and answer.content_type.startswith("application/json")
    assert answer.raw == OPENAPI_PATH.read_bytes()
    validate(answer.json)
    vocabulary = server.call("GET", "/pancreas-ai/vocabulary", user="viewer")
    assert vocabulary.status == 200
    assert "metastatic" in {c["value"] for c in vocabulary.json["board_categories"]}


def test_a_board_from_creation_to_its_csv(server: Server) -> None:
    assert server.call("POST", "/pancreas-ai/boards", BOARD, user=None).status == 401
    assert server.call("POST", "/pancreas-ai/boards", BOARD, user="viewer").status == 403
    created = server.call("POST", "/pancreas-ai/boards", BOARD)
    assert created.status == 201, created.raw
    board = created.json["id"]
    base = f"/pancreas-ai/boards/{board}"
    listed = server.call("GET", "/pancreas-ai/boards?from=2026-12-01&to=2026-12-31", user="viewer")
    assert board in [b["id"] for b in listed.json["boards"]]
    assert server.call("GET", "/pancreas-ai/boards?from=2027-01-01").json["boards"] == []
    assert server.call("GET", "/pancreas-ai/boards?from=soon").status == 400
    renamed = server.call("PUT", base, {**BOARD, "title": "HPB board (Thursday)"})
    assert renamed.status == 200 and renamed.json["title"] == "HPB board (Thursday)"
    assert server.call("PUT", base, {**BOARD, "title": ""}).status == 400
    assert server.call("PUT", base, BOARD, user="viewer").status == 403

    added = server.call("POST", f"{base}/cases", {"study_instance_uid": STUDY})
    assert added.status == 201
    assert added.json["orthanc_study_id"] == orthanc_study_id(server, STUDY)
    assert added.json["ai"]["category"] == "borderline" and added.json["job_id"]
    assert server.call("POST", f"{base}/cases", {"study_instance_uid": STUDY}).status == 200
    assert server.call("POST", f"{base}/cases", {"study_instance_uid": BARE}).status == 201
    assert (
        server.call(
            "POST", "/pancreas-ai/boards/999999/cases", {"study_instance_uid": STUDY}
        ).status
        == 404
    )
    assert server.call("POST", f"{base}/cases", {"study_instance_uid": "x"}).status == 400

    decision = {
        "category": "borderline",
        "treatments": ["neoadjuvant-then-surgery"],
        "text": "4 cycles, then re-stage",
    }
    decided = server.call("PUT", f"{base}/cases/{STUDY}/decision", decision)
    assert decided.status == 200 and decided.json["decision"]["decided_by"] == "orthanc:admin"
    assert server.call("PUT", f"{base}/cases/{OTHER}/decision", decision).status == 404
    assert server.call("PUT", f"{base}/cases/{STUDY}/decision", {"category": "?"}).status == 400

    got = server.call("GET", base, user="viewer")
    assert got.status == 200
    assert [c["study_instance_uid"] for c in got.json["cases"]] == [STUDY, BARE]
    assert got.json["board"]["decided_count"] == 1

    table = server.call("GET", f"{base}/decisions.csv", user="viewer")
    assert table.status == 200 and table.content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(table.raw.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    assert rows[1][:3] == ["1", STUDY, "borderline"] and rows[1][-3] == "4 cycles, then re-stage"

    packet = f"{base}/packet.pdf"
    assert server.call("GET", packet).status == 404
    path = server.settings.data_dir / "boards" / str(board) / "packet.pdf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"%PDF-1.4\n%%EOF\n")
    pdf = server.call("GET", packet, user="viewer")
    assert (pdf.status, pdf.content_type, pdf.raw) == (200, "application/pdf", b"%PDF-1.4\n%%EOF\n")
    assert server.call("GET", base).json["board"]["packet"]["url"] == packet

    assert server.call("DELETE", f"{base}/cases/{BARE}", user="viewer").status == 403
    removed = server.call("DELETE", f"{base}/cases/{BARE}")
    assert removed.status == 200 and removed.json == {"removed": True}
    assert server.call("DELETE", f"{base}/cases/{BARE}").status == 404
    assert server.call("DELETE", base).status == 405
    actors = {(e.action, e.actor) for e in list_audit_events(server.database)}
    assert {("board.create", "orthanc:admin"), ("board.case.remove", "orthanc:admin")} <= actors


def test_reviews_and_a_correction(server: Server) -> None:
    reviews = f"/pancreas-ai/studies/{OTHER}/reviews"
    assert (
        server.call("POST", f"/pancreas-ai/studies/{BARE}/reviews", {"verdict": "agree"}).status
        == 409
    )
    assert server.call("POST", reviews, {"verdict": "agree"}, user="viewer").status == 403
    override = {"verdict": "override", "category": "metastatic", "reason": "liver lesions"}
    made = server.call("POST", reviews, override)
    assert made.status == 201 and made.json["disagrees"] is True
    assert made.json["ai_category"] == "locally-advanced"
    assert server.call("POST", reviews, {"verdict": "override"}).status == 400
    listed = server.call("GET", reviews, user="viewer")
    assert listed.status == 200 and [r["id"] for r in listed.json["reviews"]] == [made.json["id"]]

    corrections = f"/pancreas-ai/studies/{orthanc_study_id(server, STUDY)}/corrections"
    body = {
        "reason": "tumor extends into the uncinate process",
        "category": None,
        "based_on_seg_sop_instance_uid": "1.2.826.0.1.3680043.8.498.26001.9",
        "referenced_series_instance_uid": f"{STUDY}.1",
        "rows": 2,
        "columns": 3,
        "frames": [{"sop_instance_uid": f"{STUDY}.1.1", "rle": [[0, 4], [3, 2]]}],
    }
    assert server.call("POST", corrections, body, user="viewer").status == 403
    bad = server.call("POST", corrections, {**body, "rows": 3})
    assert bad.status == 400 and "rows x columns" in bad.json["error"]
    accepted = server.call("POST", corrections, body)
    assert accepted.status == 202, accepted.raw
    assert accepted.json["correction"]["state"] == "pending"
    (review,) = list_reviews(server.database, STUDY)
    assert review.correction_path is not None
    assert json.loads(Path(review.correction_path).read_text())["frames"] == body["frames"]


def _documented() -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for path, item in openapi()["paths"].items():
        pairs |= {(m.upper(), path) for m in item if m in ("get", "post", "put", "delete")}
    return pairs


def test_every_documented_route_is_served(server: Server) -> None:
    """Each documented method and path reaches a handler (no 'no route' 404, no 405)."""
    for method, template in sorted(_documented()):
        path = re.sub(r"\{[^}]+\}", "999999", template)
        answer = server.call(
            method, path, None if method in ("GET", "DELETE") else {}, user="viewer"
        )
        assert answer.status != 405, (method, template)
        if answer.status == 404:
            assert not answer.json["error"].startswith("no route"), (method, template)
