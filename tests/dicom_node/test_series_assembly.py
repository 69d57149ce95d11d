"""Series assembly: quiet period, routing decision, versioned re-analysis of late instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy.exc import SQLAlchemyError

from db import NodeDatabase, SeriesStatus, get_series, list_recent_jobs, record_instance
from dicom_node.routing import load_rules
from dicom_node.series_assembly import SeriesAssembler, gather_facts
from pancreas_contracts.job_states import JobState
from tests.dicom_node.conftest import TEST_RULES, PhantomSeries


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def record(database: NodeDatabase, path: Path, at: datetime, calling_ae: str = "CT01") -> bool:
    ds = dcmread(path, stop_before_pixels=True)
    return record_instance(
        database,
        study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
        sop_instance_uid=ds.SOPInstanceUID,
        sop_class_uid=ds.SOPClassUID,
        transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
        spool_path=str(path),
        modality="CT",
        calling_ae=calling_ae,
        received_at=at,
    )


@pytest.fixture
def database(tmp_path: Path) -> NodeDatabase:
    db = NodeDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    db.upgrade()
    return db


def test_quiet_series_is_routed_and_queued_once(
    tmp_path: Path, database: NodeDatabase, ct_series: PhantomSeries
) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(TEST_RULES)
    clock = Clock()
    assembler = SeriesAssembler(database, load_rules(rules_file), 10.0, "bundle-a", clock=clock)
    for path in ct_series.files[:-1]:
        record(database, path, clock.now)
    clock.now += timedelta(seconds=5)
    assert assembler.poll_once() == []  # not quiet yet
    clock.now += timedelta(seconds=6)
    (outcome,) = assembler.poll_once()
    assert outcome.version == 1 and outcome.job_id is not None
    assert assembler.poll_once() == []
    info = get_series(database, ct_series.SeriesInstanceUID)
    assert info is not None and info.status is SeriesStatus.COMPLETE

    # A late instance re-opens the series: a new version and a new job over the whole series.
    record(database, ct_series.files[-1], clock.now)
    info = get_series(database, ct_series.SeriesInstanceUID)
    assert info is not None and info.status is SeriesStatus.RECEIVING and info.version == 2
    clock.now += timedelta(seconds=11)
    (late,) = assembler.poll_once()
    assert late.version == 2 and late.job_id not in (None, outcome.job_id)
    versions = sorted(job.series_version for job in list_recent_jobs(database))
    assert versions == [1, 2]
    # The first job had not run: the grown series cancelled it (issue 22, item 4).
    jobs = {job.series_version: job for job in list_recent_jobs(database)}
    assert jobs[1].state is JobState.CANCELLED and jobs[1].superseded_by == late.job_id
    assert (jobs[1].instance_count, jobs[2].instance_count) == (
        len(ct_series.files) - 1,
        len(ct_series.files),
    )


def test_series_not_matching_rules_is_skipped_with_reason(
    database: NodeDatabase, ct_series: PhantomSeries
) -> None:
    clock = Clock()
    assembler = SeriesAssembler(database, load_rules(), 1.0, "bundle-a", clock=clock)
    for path in ct_series.files:
        record(database, path, clock.now)
    clock.now += timedelta(seconds=2)
    (outcome,) = assembler.poll_once()
    assert outcome.job_id is None
    info = get_series(database, ct_series.SeriesInstanceUID)
    assert info is not None and info.routing_decision.value == "skip"
    assert info.routing_reason is not None and "slices < 40" in info.routing_reason
    assert list_recent_jobs(database) == []


@pytest.mark.parametrize(("sender", "decision"), [("CT01", "analyze"), ("OTHER_PACS", "skip")])
def test_calling_ae_condition_uses_the_sender(
    tmp_path: Path, database: NodeDatabase, ct_series: PhantomSeries, sender: str, decision: str
) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        TEST_RULES.replace('modality = ["CT"]', 'modality = ["CT"]\ncalling_ae = ["CT01"]')
    )
    clock = Clock()
    assembler = SeriesAssembler(database, load_rules(rules_file), 1.0, "bundle-a", clock=clock)
    for path in ct_series.files:
        record(database, path, clock.now, calling_ae=sender)
    clock.now += timedelta(seconds=2)
    (outcome,) = assembler.poll_once()
    info = get_series(database, ct_series.SeriesInstanceUID)
    assert info is not None and info.routing_decision.value == decision
    assert f"calling AE '{sender}'" in outcome.decision.summary


def test_a_malformed_number_of_frames_counts_as_one_frame(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    """NumberOfFrames is IS, VM 1 (PS3.3 C.7.6.6): ``int(MultiValue)`` raised a TypeError."""
    paths = []
    for n, (path, value) in enumerate(zip(ct_series.files, (["1", "2"], "0"), strict=False)):
        ds = dcmread(path)
        ds.NumberOfFrames = value
        paths.append(tmp_path / f"{n}.dcm")
        ds.save_as(paths[-1])
    assert gather_facts(paths).num_slices == 2


def test_a_series_is_never_complete_without_its_job(
    database: NodeDatabase, ct_series: PhantomSeries, tmp_path: Path
) -> None:
    """Closing a series and queueing its job is one transaction: a crash between them lost it.

    The job's INSERT fails here (a real SQLite trigger, as a full disk or a dropped connection
    would): the series must stay *receiving*, so that the next poll closes it and queues the
    job. Before, the series was committed *complete* first, and no poll ever looked at it again.
    """
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(TEST_RULES)
    clock = Clock()
    assembler = SeriesAssembler(database, load_rules(rules_file), 1.0, "bundle-a", clock=clock)
    for path in ct_series.files:
        record(database, path, clock.now)
    clock.now += timedelta(seconds=2)
    with database.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER no_jobs BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    with pytest.raises(SQLAlchemyError):
        assembler.poll_once()
    info = get_series(database, ct_series.SeriesInstanceUID)
    assert info is not None and info.status is SeriesStatus.RECEIVING
    assert list_recent_jobs(database) == []

    with database.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER no_jobs")
    (outcome,) = assembler.poll_once()
    assert outcome.job_id is not None
    (job,) = list_recent_jobs(database)
    assert job.id == outcome.job_id and job.state is JobState.QUEUED
    info = get_series(database, ct_series.SeriesInstanceUID)
    assert info is not None and info.status is SeriesStatus.COMPLETE
