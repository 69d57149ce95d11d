"""AnalysisRunner end to end: storescu -> node -> job -> analysis -> Orthanc (DICOMweb).

A real Node on SQLite with a tiny untrained bundle (training.structure_bundle) and the
real Orthanc of tests/conftest.py as its C-STORE destination. Polls with deadlines.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from db import (
    JobInfo,
    NodeDatabase,
    get_result,
    list_audit_events,
    list_recent_jobs,
)
from dicom_node.node import Node
from dicom_node.worker import JobFailedError
from inference.analysis import AnalysisOutput, Analyzer, LocalisationEstimate
from inference.volume import Volume
from pancreas_contracts import JobState
from pancreas_contracts.lymph_nodes import LymphNodeAssessment
from pancreas_contracts.prognosis import SurvivalPrognosis
from pancreas_contracts.result import AnalysisResult, BundleRef
from pancreas_node.analysis_runner import AnalysisRunner, new_result
from pancreas_node.orthanc_server import OrthancServer
from tests.dicom_node.conftest import make_series, node_settings
from tests.dicom_node.test_scp import storescu, wait_for
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

_OPTIONS = {"fov_mm": (320.0, 320.0, 240.0), "pixel_spacing": 2.0, "slice_thickness": 4.0}


def _modalities(orthanc: OrthancServer, study_uid: str) -> dict[str, str]:
    series = orthanc.get_json(f"/dicom-web/studies/{study_uid}/series")
    return {item["0020000E"]["Value"][0]: item["00080060"]["Value"][0] for item in series}


def test_series_is_analysed_and_delivered_to_orthanc(
    tmp_path: Path, orthanc: OrthancServer
) -> None:
    series = make_series(tmp_path / "phantom", seed=3, **_OPTIONS)
    bundle = build_test_bundle(tmp_path / "bundle", members=1)
    settings = node_settings(
        tmp_path / "node",
        bundle_path=bundle,
        device="cpu",
        destinations=[
            {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.config.dicom_port}
        ],
    )
    runner_db = NodeDatabase(settings.resolved_database_url)
    runner = AnalysisRunner(runner_db, Analyzer(bundle, "cpu"), settings, registry=None)
    try:
        with Node(settings, runner) as node:
            assert storescu(settings.port, *series.files).returncode == 0

            def delivered() -> bool:
                jobs = list_recent_jobs(node.database)
                return any(j.state is JobState.DELIVERED for j in jobs)

            wait_for(delivered, timeout_s=120.0)
            job = list_recent_jobs(node.database)[0]
            stored = get_result(node.database, job.id, actor="test")
            assert stored is not None and stored.clinical_knocked_out
            assert stored.registry_status == "not_configured"
            assert {"read", "inference", "write_seg", "total"} <= set(stored.timings_s)
            result = AnalysisResult.model_validate_json(Path(stored.result_json_path).read_text())
            assert Path(stored.result_json_path).parent == settings.results_dir / job.id
            # The result and its SR say which version of the series they read (issue 22).
            assert result.source is not None
            assert (result.source.series_version, result.source.instance_count) == (
                job.series_version,
                len(series.files),
            )
            events = list_audit_events(node.database, object_id=job.id)
            lookups = [e for e in events if e.action == "registry.lookup"]
            assert lookups and lookups[0].detail == {"status": "not_configured"}
    finally:
        runner_db.dispose()
    modalities = _modalities(orthanc, series.StudyInstanceUID)
    assert sorted(modalities.values()) == ["DOC", "SEG", "SR"]
    for uid in (result.outputs.seg_sop_uid, result.outputs.sr_sop_uid, result.outputs.pdf_sop_uid):
        status, _ = orthanc.request(
            "/tools/lookup", method="POST", data=str(uid).encode(), content_type="text/plain"
        )
        assert status == 200
    seg_series = next(uid for uid, modality in modalities.items() if modality == "SEG")
    status, body = orthanc.request(
        f"/dicom-web/studies/{series.StudyInstanceUID}/series/{seg_series}/instances"
    )
    assert status == 200 and result.outputs.seg_sop_uid is not None
    assert result.outputs.seg_sop_uid.encode() in body


def test_missing_instances_fail_without_retry(tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    database = NodeDatabase(settings.resolved_database_url)
    database.upgrade()
    try:
        runner = AnalysisRunner(database, _NeverCalled(), settings)
        job = _job("no-such-series")
        with pytest.raises(JobFailedError) as info:
            runner(job)
        assert not info.value.retryable and "no stored instances" in info.value.reason
    finally:
        database.dispose()


class _NeverCalled:
    """An analyzer that must not be reached."""

    @property
    def bundle_ref(self) -> BundleRef:
        raise AssertionError("not reached")

    def analyze(self, *args: object, **kwargs: object) -> AnalysisOutput:
        raise AssertionError("not reached")

    def close(self) -> None:
        """Nothing to release."""


def _job(series_uid: str) -> JobInfo:
    now = datetime.now(UTC)
    return JobInfo(
        id="job-x",
        series_instance_uid=series_uid,
        series_version=1,
        bundle_sha256="none",
        state=JobState.RUNNING,
        attempts=1,
        next_attempt_at=None,
        failure_reason=None,
        lease_owner="w",
        lease_expires_at=None,
        heartbeat_at=None,
        created_at=now,
        updated_at=now,
    )


class _NeverFinds:
    """A localiser that never finds the pancreas (forces ``not-localised``)."""

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        box = (-65.0, -30.0, -35.0, 65.0, 30.0, 35.0)
        return LocalisationEstimate((0.0, 0.0, 0.0), box, 0.07, False, "test: never found")


def test_refused_series_delivers_its_refusal_document_to_orthanc(
    tmp_path: Path, orthanc: OrthancServer
) -> None:
    series = make_series(tmp_path / "phantom", seed=4, **_OPTIONS)
    bundle = build_test_bundle(tmp_path / "bundle", members=1)
    settings = node_settings(
        tmp_path / "node",
        bundle_path=bundle,
        device="cpu",
        destinations=[
            {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.config.dicom_port}
        ],
    )
    runner_db = NodeDatabase(settings.resolved_database_url)
    analyzer = Analyzer(bundle, "cpu", localiser=_NeverFinds())
    runner = AnalysisRunner(runner_db, analyzer, settings, registry=None)
    try:
        with Node(settings, runner) as node:
            assert storescu(settings.port, *series.files).returncode == 0

            def delivered() -> bool:
                jobs = list_recent_jobs(node.database)
                return any(j.state is JobState.DELIVERED for j in jobs)

            wait_for(delivered, timeout_s=120.0)
            job = list_recent_jobs(node.database)[0]
            assert get_result(node.database, job.id, actor="test") is None
            assert job.failure_reason == (
                "refused: not-localised: confidence 0.07, min_confidence 0.30, "
                "method test: never found"
            )
    finally:
        runner_db.dispose()
    modalities = _modalities(orthanc, series.StudyInstanceUID)
    assert sorted(modalities.values()) == ["SR"]
    sr_series = next(iter(modalities))
    meta = orthanc.get_json(
        f"/dicom-web/studies/{series.StudyInstanceUID}/series/{sr_series}/metadata"
    )
    assert meta[0]["0008103E"]["Value"][0].startswith("PancreasAI ai-refused: not-localised")


def test_the_job_record_keeps_the_results_outcome(tmp_path: Path) -> None:
    # The status words tell ai-no-tumor from ai-out-of-domain by the stored outcome (issue 21).
    withheld = AnalysisResult.model_validate(
        {
            "study_uid": "1.2.3",
            "series_uid": "1.2.3.4",
            "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
            "outcome": "out-of-domain",
            "category": None,
            "measurements": {"tumor_volume_ml": 3.0, "contact_deg": {"SMA": 90.0}},
            "localisation": {"found": True, "confidence": 0.9},
            "domain": {
                "grade": "out-of-domain",
                "reasons": ("CT intensities 30.0 training IQRs from the cohort",),
                "numbers": {"intensity_distance_iqr": 30.0},
                "source": "seed 11, first 20",
            },
            "warnings": ("CT out of the training domain: NCCN category withheld",),
        }
    )
    record = new_result(withheld, tmp_path / "result.json")
    assert record.outcome == "out-of-domain" and record.category is None
    assert record.category_label is None and record.probabilities == ()
    assert record.n_estimate is None and record.n_positive_probability is None
    # The lymph-node answer is what the worklist's N column and filter read (issue 24).
    nodes = LymphNodeAssessment(
        model_version="ln 0.1.0", n_positive_probability=0.71, threshold=0.5, n_estimate="N+"
    )
    record = new_result(withheld.model_copy(update={"lymph_nodes": nodes}), tmp_path / "r.json")
    assert record.n_estimate == "N+" and record.n_positive_probability == 0.71
    assert record.risk_group is None and record.death_probability_3y is None
    # The survival answer is what the worklist's risk column and filter read (issue 25).
    prognosis = SurvivalPrognosis(
        model_version="survival 0.1.0", death_probability=(0.42, 0.71, 0.86), risk_group="high",
        risk_cutoff=0.8,
    )  # fmt: skip
    record = new_result(withheld.model_copy(update={"prognosis": prognosis}), tmp_path / "p.json")
    assert record.risk_group == "high"
    assert (record.death_probability_1y, record.death_probability_3y) == (0.42, 0.86)
