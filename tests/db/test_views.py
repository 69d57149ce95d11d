"""Read views for the Orthanc plugin: a study's jobs and the tumor-board worklist."""

from __future__ import annotations

from datetime import UTC, date, datetime

from db import (
    NewResult,
    NodeDatabase,
    RoutingDecision,
    claim_next_job,
    close_series,
    complete_job,
    enqueue_job,
    get_result,
    list_study_jobs,
    list_worklist,
    record_instance,
)
from db._models import BoardCase, TumorBoard
from pancreas_contracts import JobState

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _receive(db: NodeDatabase, study: str, series: str, sop: str) -> None:
    record_instance(
        db,
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop,
        sop_class_uid=CT,
        transfer_syntax_uid=EXPLICIT_LE,
        spool_path=f"/spool/{study}/{series}/{sop}.dcm",
        modality="CT",
        accession_number="ACC1",
        study_date=date(2025, 3, 14),
    )


def test_study_jobs_list_series_with_and_without_jobs(node_db: NodeDatabase) -> None:
    _receive(node_db, "1.1", "1.1.1", "1.1.1.1")
    _receive(node_db, "1.1", "1.1.2", "1.1.2.1")
    _receive(node_db, "2.1", "2.1.1", "2.1.1.1")
    first = enqueue_job(node_db, "1.1.1", 1, "bundle-a").job
    second = enqueue_job(node_db, "1.1.1", 1, "bundle-b").job
    claimed = claim_next_job(node_db, "w", 60)
    assert claimed is not None and claimed.id == first.id
    complete_job(
        node_db,
        first.id,
        "w",
        NewResult(
            result_json_path="/r.json",
            bundle_name="b",
            bundle_version="1",
            bundle_sha256="bundle-a",
            category=2,
            category_label="locally advanced",
            probabilities=(0.1, 0.2, 0.7),
        ),
    )
    rows = list_study_jobs(node_db, "1.1")
    assert [(r.series.series_instance_uid, r.job.id if r.job else None) for r in rows] == [
        ("1.1.1", second.id),
        ("1.1.1", first.id),
        ("1.1.2", None),
    ]
    assert rows[1].result_category == 2 and rows[1].job is not None
    assert rows[1].job.state is JobState.DONE
    assert rows[0].result_category is None
    assert list_study_jobs(node_db, "9.9") == []


def test_worklist_has_newest_job_result_and_board(node_db: NodeDatabase) -> None:
    _receive(node_db, "1.1", "1.1.1", "1.1.1.1")
    _receive(node_db, "2.1", "2.1.1", "2.1.1.1")
    _receive(node_db, "3.1", "3.1.1", "3.1.1.1")  # no job, no board: skipped by the rules
    close_series(
        node_db, "3.1.1", version=1, decision=RoutingDecision.SKIP, reason="slice thickness 8 mm"
    )
    job = enqueue_job(node_db, "1.1.1", 1, "bundle-a").job
    with node_db.session() as session:
        early = TumorBoard(board_date=date(2025, 4, 1), title="April", created_by="t")
        late = TumorBoard(board_date=date(2025, 5, 1), title="May", created_by="t")
        session.add_all([early, late])
        session.flush()
        session.add_all(
            [
                BoardCase(board_id=early.id, study_instance_uid="2.1"),
                BoardCase(
                    board_id=late.id,
                    study_instance_uid="2.1",
                    decision_category="borderline",
                    decided_by="dr",
                    decided_at=datetime(2025, 5, 1, 12, tzinfo=UTC),
                ),
            ]
        )
    entries = {e.study_instance_uid: e for e in list_worklist(node_db)}
    # Every study the node touched is listed: the skipped one with its rule's reason.
    assert set(entries) == {"1.1", "2.1", "3.1"}
    skipped = entries["3.1"]
    assert skipped.job is None and skipped.board_id is None
    assert skipped.series_routing == ((RoutingDecision.SKIP, "slice thickness 8 mm"),)
    assert entries["1.1"].series_routing == ((RoutingDecision.PENDING, None),)
    assert entries["1.1"].job is not None and entries["1.1"].job.id == job.id
    assert entries["1.1"].board_date is None and entries["1.1"].accession_number == "ACC1"
    on_board = entries["2.1"]
    assert on_board.job is None
    assert on_board.board_title == "May" and on_board.decision_category == "borderline"
    assert on_board.decided_at is not None and on_board.review_verdict is None


def test_a_result_keeps_its_outcome_for_the_status_words(node_db: NodeDatabase) -> None:
    # An out-of-domain result has no category like a no-tumor one; the outcome tells them
    # apart (ai-out-of-domain vs ai-no-tumor) without reading result.json (issue 21).
    _receive(node_db, "4.1", "4.1.1", "4.1.1.1")
    job = enqueue_job(node_db, "4.1.1", 1, "bundle-a").job
    claimed = claim_next_job(node_db, "w", 60)
    assert claimed is not None and claimed.id == job.id
    withheld = NewResult(
        result_json_path="/r.json", bundle_name="b", bundle_version="1",
        bundle_sha256="bundle-a", outcome="out-of-domain",
    )  # fmt: skip
    complete_job(node_db, job.id, "w", withheld)
    (row,) = [r for r in list_study_jobs(node_db, "4.1") if r.job is not None]
    assert row.result_category is None and row.result_outcome == "out-of-domain"
    (entry,) = [e for e in list_worklist(node_db) if e.study_instance_uid == "4.1"]
    assert entry.category is None and entry.outcome == "out-of-domain"
    stored = get_result(node_db, job.id, actor="test")
    assert stored is not None and stored.outcome == "out-of-domain"


def test_a_result_keeps_its_n_estimate_for_the_worklist(node_db: NodeDatabase) -> None:
    # The lymph-node model's answer (result.json 1.6, issue 24) is stored with the result, so
    # the worklist shows, filters and sorts by it without reading result.json (revision r0008).
    _receive(node_db, "5.1", "5.1.1", "5.1.1.1")
    _receive(node_db, "6.1", "6.1.1", "6.1.1.1")
    for series in ("5.1.1", "6.1.1"):
        enqueue_job(node_db, series, 1, "bundle-a")
    first = claim_next_job(node_db, "w", 60)
    second = claim_next_job(node_db, "w", 60)
    assert first is not None and second is not None
    staged = NewResult(
        result_json_path="/r.json", bundle_name="b", bundle_version="1",
        bundle_sha256="bundle-a", n_estimate="N+", n_positive_probability=0.71,
    )  # fmt: skip
    complete_job(node_db, first.id, "w", staged)
    without = NewResult(
        result_json_path="/r2.json", bundle_name="b", bundle_version="1",
        bundle_sha256="bundle-a",
    )  # fmt: skip
    complete_job(node_db, second.id, "w", without)
    entries = {e.study_instance_uid: e for e in list_worklist(node_db)}
    by_series = {first.series_instance_uid: first.id, second.series_instance_uid: second.id}
    staged_study = "5.1" if by_series["5.1.1"] == first.id else "6.1"
    other_study = "6.1" if staged_study == "5.1" else "5.1"
    assert entries[staged_study].n_estimate == "N+"
    assert entries[staged_study].n_positive_probability == 0.71
    assert entries[other_study].n_estimate is None
    assert entries[other_study].n_positive_probability is None
    stored = get_result(node_db, first.id, actor="test")
    assert stored is not None and stored.n_estimate == "N+"
    assert stored.n_positive_probability == 0.71


def test_a_result_keeps_its_prognosis_for_the_worklist(node_db: NodeDatabase) -> None:
    # The survival model's answer (result.json 1.7, issue 25) is stored with the result, so the
    # worklist shows, filters and sorts by risk without reading result.json (revision r0009).
    _receive(node_db, "7.1", "7.1.1", "7.1.1.1")
    _receive(node_db, "8.1", "8.1.1", "8.1.1.1")
    for series in ("7.1.1", "8.1.1"):
        enqueue_job(node_db, series, 1, "bundle-a")
    first = claim_next_job(node_db, "w", 60)
    second = claim_next_job(node_db, "w", 60)
    assert first is not None and second is not None
    staged = NewResult(
        result_json_path="/r.json", bundle_name="b", bundle_version="1",
        bundle_sha256="bundle-a", risk_group="high", death_probability_1y=0.42,
        death_probability_3y=0.86,
    )  # fmt: skip
    complete_job(node_db, first.id, "w", staged)
    without = NewResult(
        result_json_path="/r2.json", bundle_name="b", bundle_version="1",
        bundle_sha256="bundle-a",
    )  # fmt: skip
    complete_job(node_db, second.id, "w", without)
    entries = {e.study_instance_uid: e for e in list_worklist(node_db)}
    staged_study = first.series_instance_uid.removesuffix(".1")
    other_study = second.series_instance_uid.removesuffix(".1")
    assert entries[staged_study].risk_group == "high"
    assert entries[staged_study].death_probability_1y == 0.42
    assert entries[staged_study].death_probability_3y == 0.86
    assert entries[other_study].risk_group is None
    assert entries[other_study].death_probability_3y is None
    stored = get_result(node_db, first.id, actor="test")
    assert stored is not None and stored.risk_group == "high"
    assert (stored.death_probability_1y, stored.death_probability_3y) == (0.42, 0.86)
