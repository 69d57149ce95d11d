"""One stored object per SOPInstanceUID and content; reconciliation flags (both backends)."""

from __future__ import annotations

from db import (
    IngestOutcome,
    NodeDatabase,
    flag_missing_files,
    get_series,
    list_audit_events,
    store_instance,
    stored_spool_paths,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PATH = "/spool/1.2.3.1/1.2.3.2/1.2.3.4.1.dcm"


def _store(db: NodeDatabase, sha: str, placed: list[str]) -> IngestOutcome:
    return store_instance(
        db,
        study_instance_uid="1.2.3.1",
        series_instance_uid="1.2.3.2",
        sop_instance_uid="1.2.3.4.1",
        sop_class_uid=CT,
        transfer_syntax_uid=EXPLICIT_LE,
        spool_path=PATH,
        calling_ae="SCANNER",
        content_sha256=sha,
        place_file=lambda: placed.append(sha),
    )


def test_same_content_is_a_duplicate_other_content_a_conflict(node_db: NodeDatabase) -> None:
    placed: list[str] = []
    assert _store(node_db, "a" * 64, placed) is IngestOutcome.STORED
    assert _store(node_db, "a" * 64, placed) is IngestOutcome.DUPLICATE
    assert _store(node_db, "b" * 64, placed) is IngestOutcome.CONFLICT
    # The file is moved into place once, for the first content only.
    assert placed == ["a" * 64]
    series = get_series(node_db, "1.2.3.2")
    assert series is not None and series.instance_count == 1
    conflicts = list_audit_events(node_db, object_type="instance")
    assert [e.action for e in conflicts] == ["instance.conflict"]
    assert conflicts[0].detail is not None
    assert conflicts[0].detail["stored_sha256"] == "a" * 64
    assert conflicts[0].detail["received_sha256"] == "b" * 64


def test_missing_files_are_flagged_once(node_db: NodeDatabase) -> None:
    _store(node_db, "a" * 64, [])
    assert stored_spool_paths(node_db) == {PATH}
    assert flag_missing_files(node_db, [PATH, "/spool/unknown.dcm"]) == 1
    assert flag_missing_files(node_db, [PATH]) == 0
    events = list_audit_events(node_db, object_type="instance")
    assert [e.action for e in events] == ["instance.file_missing"]
