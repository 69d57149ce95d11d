"""The PancreasAI plugin inside a real Orthanc, submitting to a real node.

Series reach Orthanc over DICOM (DCMTK ``storescu``) and over REST (``POST /instances``); the
plugin forwards the CT series to the node by C-STORE without routing them (other modalities
are recorded as not forwarded), and the node's series assembly alone routes them: the study
status read through the plugin shows the node's decision and reason. The analysis
pipeline does not run in these tests (the node has no model bundle, so jobs stay queued):
where a test needs a finished analysis it plays the worker itself, claiming the job, writing
the job's ``result.json`` into the node's results folder and storing the result with
``db.complete_job`` — exactly what the worker does after ``inference.analyze``.
"""

from __future__ import annotations

import base64
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    SegmentationStorage,
    generate_uid,
)

from db import (
    JobInfo,
    NewResult,
    claim_next_job,
    complete_job,
    fail_job,
    get_series,
    list_audit_events,
    list_study_jobs,
    series_calling_ae,
)
from pancreas_contracts import JobState
from pancreas_contracts.lymph_nodes import LymphNodeAssessment, LymphNodeFinding
from pancreas_contracts.result import (
    AnalysisResult,
    BundleRef,
    Category,
    ClinicalUse,
    Localisation,
    Measurements,
    Outputs,
)
from pancreas_contracts.status import StudyStatus
from tests.conftest import require_executable
from tests.dicom_node.conftest import PhantomSeries
from tests.orthanc_plugin.conftest import PluginSite, poll
from tests.orthanc_plugin.test_prognosis import PROGNOSIS

pytestmark = pytest.mark.integration

Phantoms = Callable[[int], PhantomSeries]
STATUS = "PancreasAiStatus"
CATEGORY = "PancreasAiCategory"


def node_jobs(site: PluginSite, series: PhantomSeries) -> list[JobInfo]:
    """Jobs the node holds for ``series``."""
    rows = list_study_jobs(site.database, series.StudyInstanceUID)
    return [r.job for r in rows if r.job is not None]


def wait_for_job(site: PluginSite, series: PhantomSeries, timeout_s: float = 60.0) -> JobInfo:
    """The node's one job for ``series``, once the node has received and routed it."""
    jobs = poll(lambda: node_jobs(site, series) or None, timeout_s, "job in the node")
    assert len(jobs) == 1
    return jobs[0]


def wait_for_status(site: PluginSite, study_id: str, status: str) -> dict[str, str]:
    """The study's metadata once the plugin has set ``PancreasAiStatus`` to ``status``."""

    def probe() -> dict[str, str] | None:
        metadata = site.metadata(study_id)
        return metadata if metadata.get(STATUS) == status else None

    return poll(probe, 30, f"{STATUS} == {status}")


def storescu_to_orthanc(
    site: PluginSite, series: PhantomSeries, calling_ae: str = "CT_SCANNER"
) -> None:
    exe = require_executable("storescu")
    port = str(site.orthanc.config.dicom_port)
    cmd = [exe, "-aet", calling_ae, "-aec", "ORTHANC", "127.0.0.1", port]
    done = subprocess.run(
        [*cmd, *map(str, series.files)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def study_status(site: PluginSite, study_id: str) -> dict[str, Any]:
    """The plugin's ``/status`` answer for a study."""
    status, body = site.get(f"/pancreas-ai/studies/{study_id}/status")
    assert status == 200, body
    return dict(body)


def submission_of(site: PluginSite, study_id: str, series_uid: str) -> dict[str, Any] | None:
    """The newest submission of a series in the study's ``/status``, if recorded yet."""
    subs = study_status(site, study_id)["submissions"]
    found = [s for s in subs if s["series_instance_uid"] == series_uid]
    return found[-1] if found else None


def pdf_instance(series: PhantomSeries) -> tuple[str, bytes]:
    """A minimal Encapsulated PDF in the phantom's study (stands in for the PDF report)."""
    ds = Dataset()
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    data = _instance(ds, series.StudyInstanceUID, 900)
    return str(ds.SOPInstanceUID), data


def seg_instance(study_uid: str) -> tuple[str, bytes]:
    """A header-only SEG instance (stands in for the node's segmentation output).

    Orthanc indexes it by its main tags and never checks the SEG module, and the plugin must
    not send it anywhere, so no segment data is needed. Returns its SeriesInstanceUID and
    its file.
    """
    ds = Dataset()
    ds.SOPClassUID = SegmentationStorage
    ds.Modality = "SEG"
    data = _instance(ds, study_uid, 901)
    return str(ds.SeriesInstanceUID), data


def node_seg_instance(series: PhantomSeries) -> tuple[str, bytes]:
    """A header-only node SEG (series 9005) in the phantom's study: its SOPInstanceUID, file."""
    ds = Dataset()
    ds.SOPClassUID = SegmentationStorage
    ds.Modality = "SEG"
    data = _instance(ds, series.StudyInstanceUID, 9005)
    return str(ds.SOPInstanceUID), data


#: The lymph-node model's answer of the finished job (result.json 1.6).
LYMPH_NODES = LymphNodeAssessment(
    model_version="lymph-nodes-phantom 0.1.0", n_positive_probability=0.71, threshold=0.5,
    n_estimate="N+",
    nodes=(
        LymphNodeFinding(node_id=1, station="8a", centre_lps_mm=(10.0, 20.0, -30.0),
                         short_axis_mm=12.5, long_axis_mm=16.0, volume_ml=1.1,
                         probability=0.81, suspicious=True),
        LymphNodeFinding(node_id=2, station="14p", centre_lps_mm=(-5.0, 25.0, -40.0),
                         short_axis_mm=6.0, long_axis_mm=9.0, volume_ml=0.2,
                         probability=0.12, suspicious=False),
    ),
)  # fmt: skip


def _instance(ds: Dataset, study_uid: str, series_number: int) -> bytes:
    """Complete ``ds`` as the one instance of a new series in ``study_uid``; its file."""
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "PHANTOM-0001"
    ds.PatientName = "PHANTOM^0001"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def finish_job(
    site: PluginSite,
    series: PhantomSeries,
    job: JobInfo,
    pdf_uid: str,
    node_seg_uid: str | None = None,
) -> None:
    """Play the worker: claim the job, write ``result.json``, store the result.

    With ``node_seg_uid`` the result carries the lymph-node model's answer and its node SEG,
    and the survival model's prognosis.
    """
    lymph_nodes = None if node_seg_uid is None else LYMPH_NODES
    prognosis = None if node_seg_uid is None else PROGNOSIS
    claimed = claim_next_job(site.database, "test-worker", lease_s=120)
    assert claimed is not None and claimed.id == job.id
    folder = site.settings.results_dir / job.id
    folder.mkdir(parents=True)
    analysis = AnalysisResult(
        study_uid=series.StudyInstanceUID,
        series_uid=series.SeriesInstanceUID,
        job_id=job.id,
        bundle=BundleRef(name="phantom-test", version="0.1", sha256="ab" * 32),
        category=Category(label="borderline", probabilities=(0.2, 0.7, 0.1), uncertainty=0.3),
        rule_category="borderline",
        measurements=Measurements(
            tumor_volume_ml=4.2,
            tumor_max_diameter_mm=21.0,
            contact_deg={"SMA": 120.0, "SMV": 200.0},
        ),
        clinical=ClinicalUse(used=("age", "ca19_9"), missing=("cea",), registry_status="ok"),
        localisation=Localisation(found=True, confidence=0.9),
        outputs=Outputs(
            seg_sop_uid=generate_uid(), pdf_sop_uid=pdf_uid, lymph_node_seg_sop_uid=node_seg_uid
        ),
        lymph_nodes=lymph_nodes,
        prognosis=prognosis,
    )
    path = folder / "result.json"
    path.write_text(analysis.to_json(), encoding="utf-8")
    complete_job(
        site.database,
        job.id,
        "test-worker",
        NewResult(
            result_json_path=str(path),
            bundle_name="phantom-test",
            bundle_version="0.1",
            bundle_sha256="ab" * 32,
            category=1,
            category_label="borderline",
            probabilities=(0.2, 0.7, 0.1),
            measurements=analysis.measurements.model_dump(),
            clinical_used=("age", "ca19_9"),
            clinical_missing=("cea",),
            registry_status="ok",
            n_estimate=None if lymph_nodes is None else lymph_nodes.n_estimate,
            n_positive_probability=None
            if lymph_nodes is None
            else lymph_nodes.n_positive_probability,
            risk_group=None if prognosis is None else prognosis.risk_group,
            death_probability_3y=None if prognosis is None else prognosis.death_probability[2],
        ),
    )


def test_series_over_dicom_is_submitted_once(site: PluginSite, phantoms: Phantoms) -> None:
    series = phantoms(31)
    storescu_to_orthanc(site, series)
    job = wait_for_job(site, series)
    assert job.state is JobState.QUEUED
    rows = list_study_jobs(site.database, series.StudyInstanceUID)
    assert len(rows) == 1 and rows[0].series.instance_count == len(series.files)
    study_id = site.study_id(series.StudyInstanceUID)
    metadata = wait_for_status(site, study_id, "ai-pending")
    assert CATEGORY not in metadata

    # The same instances again: Orthanc keeps its copies, nothing is submitted twice.
    storescu_to_orthanc(site, series)
    body = study_status(site, study_id)
    assert body["status"] == "ai-pending"
    (submission,) = body["submissions"]
    assert submission["state"] == "submitted" and submission["attempts"] == 1
    assert submission["instance_count"] == len(series.files)
    # The plugin forwarded it; the node's series assembly routed it.
    assert submission["forwarding"] == "forwarded" and submission["progress"] == "analyse"
    (node_series,) = body["series"]
    assert node_series["routing_decision"] == "analyze"
    assert "analyze by rule 'small CT'" in node_series["routing_reason"]
    assert submission["reason"] == node_series["routing_reason"]
    assert len(node_jobs(site, series)) == 1


def test_series_over_rest_gets_results_and_labels(site: PluginSite, phantoms: Phantoms) -> None:
    series = phantoms(32)
    site.upload_rest(series)
    job = wait_for_job(site, series)
    study_id = site.study_id(series.StudyInstanceUID)
    wait_for_status(site, study_id, "ai-pending")
    status, body = site.get(f"/pancreas-ai/studies/{series.StudyInstanceUID}/results")
    assert status == 200 and body["status"] == "ai-pending" and body["result"] is None

    pdf_uid, pdf = pdf_instance(series)
    assert site.post("/instances", pdf, content_type="application/dicom")[0] == 200
    node_seg_uid, node_seg = node_seg_instance(series)
    assert site.post("/instances", node_seg, content_type="application/dicom")[0] == 200
    finish_job(site, series, job, pdf_uid, node_seg_uid)

    metadata = wait_for_status(site, study_id, "ai-done")
    assert metadata[CATEGORY] == "nccn-borderline"
    for ident in (series.StudyInstanceUID, study_id):
        status, body = site.get(f"/pancreas-ai/studies/{ident}/results")
        assert status == 200
        assert body["orthanc_study_id"] == study_id
        assert body["labels"] == ["ai-done", "nccn-borderline"]
    result = body["result"]
    assert result["category"]["label"] == "borderline"
    assert result["category"]["probabilities"] == {
        "resectable": 0.2,
        "borderline": 0.7,
        "locally advanced": 0.1,
    }
    assert result["measurements"]["contact_deg"] == {"SMA": 120.0, "SMV": 200.0}
    assert result["model"] == {"name": "phantom-test", "version": "0.1", "sha256": "ab" * 32}
    assert result["inputs"]["clinical"]["missing"] == ["cea"]
    assert result["inputs"]["series_instance_uid"] == series.SeriesInstanceUID
    assert result["outputs"]["seg"]["in_orthanc"] is False
    assert result["outputs"]["sr"] is None
    assert result["outputs"]["detection_seg"] is None  # no detection bundle in this result
    # The lymph-node model's answer (result.json 1.6) and its node SEG (issue 24).
    node_link = result["outputs"]["lymph_node_seg"]
    assert node_link["in_orthanc"] is True and node_link["sop_instance_uid"] == node_seg_uid
    nodes = result["lymph_nodes"]
    assert nodes["n_estimate"] == "N+" and nodes["n_positive_probability"] == 0.71
    assert nodes["text"] == LYMPH_NODES.describe()
    assert [(n["station"], n["short_axis_mm"], n["suspicious"]) for n in nodes["nodes"]] == [
        ("8a", 12.5, True),
        ("14p", 6.0, False),
    ]
    assert nodes["nodes"][0]["centre_lps_mm"] == [10.0, 20.0, -30.0]
    # The survival model's prognosis (result.json 1.7, issue 25).
    assert result["prognosis"]["text"] == PROGNOSIS.describe()
    assert result["prognosis"]["risk_group"] == "high"
    pdf_link = result["outputs"]["pdf"]
    assert pdf_link["in_orthanc"] is True
    assert site.orthanc.request(pdf_link["file"])[1] == pdf
    assert pdf_link["dicomweb"].startswith(f"/dicom-web/studies/{series.StudyInstanceUID}/")
    reads = list_audit_events(site.database, object_type="job", object_id=job.id)
    assert any(e.action == "result.read" and e.actor == "orthanc:admin" for e in reads)

    status, body = site.get(f"/pancreas-ai/jobs/{job.id}")
    assert status == 200 and body["state"] == "done"
    assert body["study_instance_uid"] == series.StudyInstanceUID

    status, body = site.get("/pancreas-ai/worklist?status=ai-done&category=borderline")
    assert status == 200 and body["total"] == 1
    (item,) = body["items"]
    assert item["orthanc_study_id"] == study_id and item["category"] == "borderline"
    assert item["n_estimate"] == "N+" and item["n_positive_probability"] == 0.71
    for n_status, total in (("N%2B", 1), ("N0", 0), ("N0,N%2B", 1)):
        answer = site.get(f"/pancreas-ai/worklist?n_status={n_status}")
        assert answer[1].get("total") == total, answer
    status, body = site.get("/pancreas-ai/worklist?sort=n_probability&order=asc")
    assert status == 200 and body["items"][0]["n_estimate"] == "N+"
    assert site.get("/pancreas-ai/worklist?n_status=N3")[0] == 400
    assert item["risk_group"] == "high" and item["death_probability_3y"] == 0.86
    for risk, total in (("high", 1), ("low", 0)):
        assert site.get(f"/pancreas-ai/worklist?risk={risk}")[1].get("total") == total
    assert site.get("/pancreas-ai/worklist?sort=risk")[1]["items"][0]["risk_group"] == "high"
    assert site.get("/pancreas-ai/worklist?risk=medium")[0] == 400
    assert site.get("/pancreas-ai/worklist?status=ai-pending")[1]["total"] == 0
    assert site.get("/pancreas-ai/worklist?sort=nonsense")[0] == 400

    # The PDF and node SEG series were recorded too, and not forwarded: only the CT went to
    # the node, once.
    def states() -> list[str] | None:
        found = sorted(s["state"] for s in study_status(site, study_id)["submissions"])
        return found if len(found) == 3 else None

    expected = ["not-forwarded", "not-forwarded", "submitted"]
    assert poll(states, 30, "the PDF and node SEG series recorded") == expected
    assert len(node_jobs(site, series)) == 1

    status, body = site.post(f"/pancreas-ai/studies/{study_id}/reanalyse")
    assert status == 200 and body["actions"][0]["action"] == "up-to-date"


def _viewer_request(site: PluginSite, path: str, method: str = "GET") -> int:
    token = base64.b64encode(f"viewer:{site.orthanc.config.viewer_password}".encode()).decode()
    request = urllib.request.Request(
        site.orthanc.url + path, data=b"" if method == "POST" else None, method=method
    )
    request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_routes_answer_401_without_credentials(site: PluginSite) -> None:
    uid = "1.2.3.4"
    for path in (
        f"/pancreas-ai/studies/{uid}/results",
        f"/pancreas-ai/studies/{uid}/status",
        "/pancreas-ai/jobs/x",
        "/pancreas-ai/worklist",
        "/pancreas-ai/queue",
    ):
        assert site.get(path, auth=False)[0] == 401, path
    assert site.post(f"/pancreas-ai/studies/{uid}/reanalyse", auth=False)[0] == 401
    assert _viewer_request(site, "/pancreas-ai/worklist") == 200
    assert _viewer_request(site, f"/pancreas-ai/studies/{uid}/reanalyse", "POST") == 403
    assert site.get(f"/pancreas-ai/studies/{uid}/results")[0] == 404
    assert site.get(f"/pancreas-ai/studies/{uid}/reanalyse")[0] == 405
    assert site.get("/pancreas-ai/nothing-here")[0] == 404


def test_failed_analysis_is_labelled_and_reanalysed(site: PluginSite, phantoms: Phantoms) -> None:
    series = phantoms(33)
    site.upload_rest(series)
    job = wait_for_job(site, series)
    study_id = site.study_id(series.StudyInstanceUID)
    claimed = claim_next_job(site.database, "test-worker", lease_s=120)
    assert claimed is not None and claimed.id == job.id
    fail_job(site.database, job.id, "model crashed", worker_id="test-worker")
    wait_for_status(site, study_id, "ai-failed")

    status, body = site.post(f"/pancreas-ai/studies/{series.StudyInstanceUID}/reanalyse")
    assert status == 202
    assert body["actions"] == [
        {"series_instance_uid": series.SeriesInstanceUID, "action": "requeued", "job_id": job.id}
    ]
    (requeued,) = node_jobs(site, series)
    assert requeued.state is JobState.QUEUED
    wait_for_status(site, study_id, "ai-pending")


def test_node_outage_then_recovery(site: PluginSite, phantoms: Phantoms) -> None:
    series = phantoms(34)
    site.stop_node()
    site.upload_rest(series)
    study_id = site.study_id(series.StudyInstanceUID)

    def failed_attempt() -> dict[str, object] | None:
        _, body = site.get(f"/pancreas-ai/studies/{study_id}/status")
        subs = body.get("submissions", []) if isinstance(body, dict) else []
        return next((s for s in subs if s["state"] == "pending" and s["last_error"]), None)

    submission = poll(failed_attempt, 30, "a failed submission while the node is down")
    assert "C-STORE" in str(submission["last_error"])
    wait_for_status(site, study_id, "ai-pending")
    assert site.get("/system")[0] == 200  # Orthanc keeps answering

    site.start_node()
    job = wait_for_job(site, series)
    assert job.state is JobState.QUEUED
    rows = list_study_jobs(site.database, series.StudyInstanceUID)
    assert rows[0].series.instance_count == len(series.files)


def test_pending_submission_survives_orthanc_restart(site: PluginSite, phantoms: Phantoms) -> None:
    series = phantoms(35)
    site.stop_node()
    site.upload_rest(series)
    study_id = site.study_id(series.StudyInstanceUID)

    def failed_attempt() -> bool:
        _, body = site.get(f"/pancreas-ai/studies/{study_id}/status")
        return any(s["last_error"] for s in body.get("submissions", []))

    poll(failed_attempt, 30, "a failed submission while the node is down")
    site.orthanc.stop()
    site.start_node()
    site.orthanc.start()  # the pending submission is in the plugin's state file
    wait_for_job(site, series)
    wait_for_status(site, study_id, "ai-pending")


def test_seg_series_is_recorded_and_never_sent(site: PluginSite, phantoms: Phantoms) -> None:
    series = phantoms(36)
    site.upload_rest(series)
    wait_for_job(site, series)
    study_id = site.study_id(series.StudyInstanceUID)
    seg_uid, seg = seg_instance(series.StudyInstanceUID)
    assert site.post("/instances", seg, content_type="application/dicom")[0] == 200

    seg_sub = poll(lambda: submission_of(site, study_id, seg_uid), 30, "the SEG series recorded")
    assert seg_sub["state"] == "not-forwarded" and seg_sub["progress"] == "not-forwarded"
    assert seg_sub["forwarding"] == "not forwarded: modality SEG: the node analyses CT only"
    assert seg_sub["reason"] == seg_sub["forwarding"]
    assert seg_sub["attempts"] == 0 and seg_sub["submitted_at"] is None
    assert get_series(site.database, seg_uid) is None  # the node never received it
    assert [s["series_instance_uid"] for s in study_status(site, study_id)["series"]] == [
        series.SeriesInstanceUID
    ]
    assert site.get("/pancreas-ai/queue")[1]["submissions"]["not-forwarded"] == 1

    # A study holding only a SEG has nothing for the node: no AI status at all.
    alone_uid, alone = seg_instance(generate_uid())
    assert site.post("/instances", alone, content_type="application/dicom")[0] == 200
    _, hits = site.post("/tools/lookup", alone_uid.encode(), content_type="text/plain")
    alone_study = site.get(f"/series/{hits[0]['ID']}")[1]["ParentStudy"]
    poll(lambda: submission_of(site, alone_study, alone_uid), 30, "the lone SEG recorded")
    assert study_status(site, alone_study)["status"] == "none"
    assert get_series(site.database, alone_uid) is None


@pytest.mark.parametrize("site", [{"routing_rules": None}], indirect=True)
def test_series_the_node_skips_shows_skipped(site: PluginSite, phantoms: Phantoms) -> None:
    # The node's packaged rules want 40 slices or more; the phantom has 20. The plugin
    # forwards the CT regardless and the node's series assembly skips it.
    series = phantoms(37)
    site.upload_rest(series)
    study_id = site.study_id(series.StudyInstanceUID)
    wait_for_status(site, study_id, "ai-skipped")

    body = study_status(site, study_id)
    assert body["status"] == "ai-skipped" and body["labels"] == ["ai-skipped"]
    (node_series,) = body["series"]
    assert node_series["routing_decision"] == "skip" and node_series["jobs"] == []
    reason = node_series["routing_reason"]
    assert reason.startswith("ignore (no rule matched)") and "20 slices < 40" in reason
    assert body["reason"] == reason and body["status_text"] == "AI skipped"
    # The skipped study is on the worklist (it has no job), with its rule; the filter takes
    # every status word.
    status, page = site.get("/pancreas-ai/worklist?status=ai-skipped")
    assert status == 200
    (row,) = [i for i in page["items"] if i["study_instance_uid"] == series.StudyInstanceUID]
    assert row["ai_status"] == "ai-skipped" and row["reason"] == reason
    for word in StudyStatus:
        assert site.get(f"/pancreas-ai/worklist?status={word}")[0] == 200
    results = site.get(f"/pancreas-ai/studies/{series.StudyInstanceUID}/results")[1]
    assert results["status"] == "ai-skipped" and results["reason"] == reason
    (submission,) = body["submissions"]
    assert submission["state"] == "submitted" and submission["forwarding"] == "forwarded"
    assert submission["progress"] == "skipped" and submission["reason"] == reason
    assert node_series["instance_count"] == len(series.files)  # every instance forwarded
    assert node_jobs(site, series) == []


@pytest.mark.parametrize("site", [{"quiet_period_s": 120.0}], indirect=True)
def test_forwarded_series_waits_for_the_node(site: PluginSite, phantoms: Phantoms) -> None:
    # A node that closes series only after two minutes: the plugin has sent the series and
    # the node holds it, undecided, for the whole test.
    series = phantoms(38)
    site.upload_rest(series)
    study_id = site.study_id(series.StudyInstanceUID)

    def sent() -> dict[str, Any] | None:
        found = submission_of(site, study_id, series.SeriesInstanceUID)
        return found if found is not None and found["state"] == "submitted" else None

    submission = poll(sent, 30, "the series sent to the node")
    assert submission["progress"] == "waiting-for-node" and submission["reason"] is None
    body = study_status(site, study_id)
    (node_series,) = body["series"]
    assert node_series["routing_decision"] == "pending" and node_series["jobs"] == []
    assert node_series["instance_count"] == len(series.files)
    assert body["status"] == "ai-pending"
    wait_for_status(site, study_id, "ai-pending")


#: Rules that analyse CT from one scanner only (``calling_ae``), as a site may write them.
SCANNER_A_RULES = """
default_action = "ignore"
[[rules]]
name = "scanner A"
action = "analyze"
[rules.when]
modality = ["CT"]
calling_ae = ["SCANNER_A"]
min_slices = 10
"""


@pytest.mark.parametrize("site", [{"rules_toml": SCANNER_A_RULES}], indirect=True)
def test_scanner_ae_title_reaches_the_node_through_orthanc(
    site: PluginSite, phantoms: Phantoms
) -> None:
    # The scanner sends to Orthanc as SCANNER_A; Orthanc forwards with its own AE title
    # (ORTHANC, a relay the node trusts by default) and names SCANNER_A as the Move Originator
    # in each C-STORE request: the node records, and routes by, the scanner's AE title.
    series = phantoms(39)
    storescu_to_orthanc(site, series, calling_ae="SCANNER_A")
    job = wait_for_job(site, series)
    assert job.state is JobState.QUEUED
    assert series_calling_ae(site.database, series.SeriesInstanceUID) == "SCANNER_A"
    study_id = site.study_id(series.StudyInstanceUID)
    (node_series,) = study_status(site, study_id)["series"]
    assert node_series["routing_decision"] == "analyze"
    assert "calling AE 'SCANNER_A' in ['SCANNER_A']" in node_series["routing_reason"]

    # Uploaded over REST, a series has no scanner AE title: the node sees Orthanc's own, and
    # the scanner rule does not match.
    other = phantoms(40)
    site.upload_rest(other)
    other_id = site.study_id(other.StudyInstanceUID)
    wait_for_status(site, other_id, "ai-skipped")
    assert series_calling_ae(site.database, other.SeriesInstanceUID) == "ORTHANC"
    (skipped,) = study_status(site, other_id)["series"]
    assert "calling AE 'ORTHANC' not in ['SCANNER_A']" in skipped["routing_reason"]
    assert node_jobs(site, other) == []
