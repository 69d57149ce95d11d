"""A refused series end to end: real Orthanc + plugin, real node, real runner and dispatch.

The plugin forwards the CT to the node, whose series assembly queues a job; the real
:class:`pancreas_node.analysis_runner.AnalysisRunner` runs the real pipeline with a localiser
that never finds the pancreas (``not-localised``), the worker stores the refusal and the
dispatcher sends the refusal document to the same Orthanc. The plugin then reports
``ai-refused`` with what was measured, on its routes, its label and its worklist.
"""

from __future__ import annotations

from pathlib import Path

import torch

from db import list_study_jobs
from dicom_node.dispatch import Dispatcher
from dicom_node.worker import Worker
from inference.analysis import Analyzer, LocalisationEstimate
from inference.volume import Volume
from pancreas_contracts import JobState, load_settings
from pancreas_node.analysis_runner import AnalysisRunner
from tests.orthanc_plugin.conftest import PluginSite, poll
from tests.orthanc_plugin.test_plugin import Phantoms, wait_for_job, wait_for_status
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

REFUSAL = "not-localised: confidence 0.07, min_confidence 0.30, method test: never found"


class _NeverFinds:
    """A localiser that never finds the pancreas."""

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        box = (-65.0, -30.0, -35.0, 65.0, 30.0, 35.0)
        return LocalisationEstimate((0.0, 0.0, 0.0), box, 0.07, False, "test: never found")


def test_refused_series_reaches_orthanc_and_the_routes_say_why(
    site: PluginSite, phantoms: Phantoms, tmp_path: Path
) -> None:
    series = phantoms(41)
    site.upload_rest(series)
    job = wait_for_job(site, series)
    study_id = site.study_id(series.StudyInstanceUID)
    wait_for_status(site, study_id, "ai-pending")

    bundle = build_test_bundle(tmp_path / "bundle", members=1)
    settings = load_settings(
        data_dir=site.settings.data_dir,
        port=site.settings.port,
        routing_rules=site.settings.routing_rules,
        bundle_path=bundle,
        device="cpu",
        destinations=[
            {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": site.orthanc.config.dicom_port}
        ],
    )
    runner = AnalysisRunner(
        site.database, Analyzer(bundle, "cpu", localiser=_NeverFinds()), settings
    )
    dispatcher = Dispatcher(settings, site.database)
    worker = Worker(
        site.database, runner, on_done=lambda done, out: dispatcher.deliver(done.id, out.files)
    )
    ran = worker.run_once()
    assert ran is not None and ran.id == job.id and ran.state is JobState.DONE
    (delivered,) = [r.job for r in list_study_jobs(site.database, series.StudyInstanceUID) if r.job]
    assert delivered.state is JobState.DELIVERED
    assert delivered.failure_reason == "refused: " + REFUSAL

    metadata = wait_for_status(site, study_id, "ai-refused")
    assert "PancreasAiCategory" not in metadata
    status, body = site.get(f"/pancreas-ai/studies/{series.StudyInstanceUID}/results")
    assert status == 200
    assert body["status"] == "ai-refused" and body["status_text"] == "AI refused"
    assert body["reason"] == REFUSAL and body["result"] is None
    status, page = site.get("/pancreas-ai/worklist?status=ai-refused")
    assert status == 200
    (row,) = page["items"]
    assert row["study_instance_uid"] == series.StudyInstanceUID and row["reason"] == REFUSAL

    # The refusal document is in Orthanc, in the study, named for the viewer.
    def refusal_series() -> list[str] | None:
        study = site.get(f"/studies/{study_id}?expand")[1]
        found = []
        for series_id in study["Series"]:
            tags = site.get(f"/series/{series_id}")[1]["MainDicomTags"]
            if tags.get("Modality") == "SR":
                found.append(tags.get("SeriesDescription", ""))
        return found or None

    (description,) = poll(refusal_series, 30, "the refusal document in Orthanc")
    assert description.startswith("PancreasAI ai-refused: not-localised")
