"""Helpers of the tumor-board API tests: analysed studies in a node database, and the check of
an answer against ``orthanc_plugin/openapi.json``."""

from __future__ import annotations

import functools
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from db import NewResult, NodeDatabase, claim_next_job, complete_job, enqueue_job, record_instance
from orthanc_plugin import OPENAPI_PATH

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def receive(db: NodeDatabase, study: str) -> str:
    """Record one CT instance of ``study`` (series ``<study>.1``); its SeriesInstanceUID."""
    series = f"{study}.1"
    record_instance(
        db,
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=f"{series}.1",
        sop_class_uid=CT,
        transfer_syntax_uid=EXPLICIT_LE,
        spool_path=f"/spool/{series}.dcm",
        modality="CT",
        accession_number="ACC-SECRET",
        study_date=date(2026, 3, 14),
    )
    return series


def analyse(
    db: NodeDatabase,
    study: str,
    *,
    category: int | None = 1,
    result_json: Path | None = None,
) -> str:
    """Play the worker for ``study``: receive, queue, claim and complete a job; its id."""
    series = receive(db, study)
    job = enqueue_job(db, series, 1, "bundle").job
    claimed = claim_next_job(db, "test-worker", 60)
    assert claimed is not None and claimed.id == job.id
    complete_job(
        db,
        job.id,
        "test-worker",
        NewResult(
            result_json_path=str(result_json or "/nowhere/result.json"),
            bundle_name="phantom-test",
            bundle_version="0.1",
            bundle_sha256="bundle",
            category=category,
            category_label=None,
            probabilities=(0.2, 0.7, 0.1) if category is not None else (),
            outcome="done" if category is not None else "no-tumor",
            pdac_likelihood=0.93,
            n_estimate="N+",
            risk_group="high",
        ),
    )
    return job.id


@functools.cache
def openapi() -> dict[str, Any]:
    """The committed OpenAPI document."""
    return dict(json.loads(OPENAPI_PATH.read_text(encoding="utf-8")))


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def operation_path(path: str) -> str:
    """The document's path template that ``path`` (a concrete path, no query) matches."""
    hits = [t for t in openapi()["paths"] if _template(t).match(path)]
    assert len(hits) == 1, f"{path} matches {hits} in openapi.json"
    return str(hits[0])


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def check_answer(method: str, path: str, status: int, body: Any) -> None:
    """Validate a JSON answer against the document's schema for that route and status.

    Raises
    ------
    AssertionError
        If the document has no JSON answer for ``status`` there.
    jsonschema.ValidationError
        If ``body`` does not match it.
    """
    doc = openapi()
    template = operation_path(path.split("?", 1)[0])
    operation = doc["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not in openapi.json"
    answer = operation["responses"].get(str(status))
    assert answer is not None, f"{method} {template} has no {status} answer in openapi.json"
    assert "application/json" in answer.get("content", {}), f"{status} is not JSON there"
    pointer = "/".join(
        ["", "paths", _escape(template), method.lower(), "responses", str(status), "content",
         _escape("application/json"), "schema"]
    )  # fmt: skip
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    Draft202012Validator({"$ref": "urn:openapi#" + pointer}, registry=registry).validate(body)
