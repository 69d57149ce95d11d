"""Result dispatch against real peers: DCMTK storescp, Orthanc (C-STORE and STOW-RS), pynetdicom.

Every test uses a real migrated SQLite node database; time is injected, never slept.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from pydantic import SecretStr
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, evt

from db import (
    DeliveryAttemptInfo,
    DeliveryProtocol,
    DeliveryStatus,
    NodeDatabase,
    claim_next_job,
    complete_job,
    enqueue_job,
    get_job,
    list_delivery_attempts,
)
from dicom_node._dispatch_schedule import plan_delivery
from dicom_node.dispatch import (
    AttemptStatus,
    CStoreDestination,
    Dispatcher,
    DispatchStatus,
    InstanceStatus,
    NotDeliverableError,
    RetryPolicy,
    StowDestination,
    describe_store_status,
    describe_stow_reason,
    destinations_from_settings,
    parse_store_response,
)
from orthanc_plugin import OrthancServer
from pancreas_contracts import Settings
from pancreas_contracts.job_states import JobState
from pancreas_contracts.settings import DicomDestination
from tests.conftest import free_port, require_executable

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
WAIT_S = 15.0


# --------------------------------------------------------------------------- helpers


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def accepts_connections(port: int) -> bool:
    """Whether something accepts TCP connections on loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def storescp(port: int, folder: Path, ae_title: str = "STORESCP") -> Iterator[Path]:
    """A real DCMTK storescp writing into ``folder`` until the block ends."""
    binary = require_executable("storescp")
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder.parent / f"storescp-{port}.log").open("wb")
    process = subprocess.Popen(
        [binary, "--output-directory", str(folder), "-aet", ae_title, str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: process.poll() is not None or accepts_connections(port), "storescp to listen"
        )
        assert process.poll() is None, f"storescp exited with {process.returncode}"
        yield folder
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _patient_and_study(ds: Dataset, study_uid: str) -> None:
    ds.PatientName = "Phantom^Dispatch"
    ds.PatientID = "PHANTOM-DISPATCH"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20250314"
    ds.StudyTime = "090000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Manufacturer = "PancreasAI test"


def _ct(study_uid: str, series_uid: str, number: int) -> Dataset:
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(CTImageStorage, sop_uid)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    _patient_and_study(ds, study_uid)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 16
    ds.Columns = 16
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    pixels = (np.arange(256, dtype=np.uint16).reshape(16, 16) * (number + 1)) % 4096
    ds.PixelData = pixels.tobytes()
    return ds


def _pdf(study_uid: str) -> Dataset:
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(EncapsulatedPDFStorage, sop_uid)
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_uid
    _patient_and_study(ds, study_uid)
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.ContentDate = "20250314"
    ds.ContentTime = "090000"
    ds.AcquisitionDateTime = "20250314090000"
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = "PancreasAI report (test)"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    document = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    ds.EncapsulatedDocument = document + b"\0" * (len(document) % 2)
    return ds


def make_result_set(folder: Path) -> dict[str, Any]:
    """Two CT slices (one RLE Lossless) and an encapsulated PDF, as PS3.10 files."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    plain = _ct(study_uid, series_uid, 1)
    rle = _ct(study_uid, series_uid, 2)
    rle.compress(RLELossless, generate_instance_uid=False)
    pdf = _pdf(study_uid)
    paths = []
    for name, ds in (("ct1.dcm", plain), ("ct2-rle.dcm", rle), ("report.dcm", pdf)):
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return {
        "paths": paths,
        "study": study_uid,
        "series": {series_uid, str(pdf.SeriesInstanceUID)},
        "sops": {str(plain.SOPInstanceUID), str(rle.SOPInstanceUID), str(pdf.SOPInstanceUID)},
        "rle_sop": str(rle.SOPInstanceUID),
    }


def received_sops(folder: Path) -> dict[str, str]:
    """SOPInstanceUID -> transfer syntax of every file storescp wrote into ``folder``."""
    found = {}
    for path in folder.iterdir():
        if path.is_file():
            ds = dcmread(path, stop_before_pixels=True)
            found[str(ds.SOPInstanceUID)] = str(ds.file_meta.TransferSyntaxUID)
    return found


def done_job(db: NodeDatabase) -> str:
    """A job in state ``done`` (through the real queue)."""
    job_id = enqueue_job(db, generate_uid(), 1, "d" * 64).job.id
    claimed = claim_next_job(db, "worker-1", 60)
    assert claimed is not None and claimed.id == job_id
    complete_job(db, job_id, "worker-1")
    return job_id


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "destinations": [],
        "acse_timeout_s": 5.0,
        "dimse_timeout_s": 10.0,
        "network_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


def orthanc_lookup(orthanc: OrthancServer, sop_uid: str) -> str | None:
    """The Orthanc id of the instance with ``sop_uid`` (POST /tools/lookup)."""
    status, body = orthanc.request(
        "/tools/lookup", method="POST", data=sop_uid.encode(), content_type="text/plain"
    )
    assert status == 200
    hits = [h for h in json.loads(body) if h["Type"] == "Instance"]
    return str(hits[0]["ID"]) if hits else None


def assert_in_orthanc(orthanc: OrthancServer, results: dict[str, Any]) -> None:
    """Every instance is in Orthanc's REST API and its series are listed over DICOMweb."""
    all_instances = set(orthanc.get_json("/instances"))
    for sop_uid in results["sops"]:
        orthanc_id = orthanc_lookup(orthanc, sop_uid)
        assert orthanc_id is not None and orthanc_id in all_instances
        tags = orthanc.get_json(f"/instances/{orthanc_id}")["MainDicomTags"]
        assert tags["SOPInstanceUID"] == sop_uid
    series = orthanc.get_json(f"/dicom-web/studies/{results['study']}/series")
    listed = {item["0020000E"]["Value"][0] for item in series}
    assert listed == results["series"]


@pytest.fixture
def node_db(tmp_path: Path) -> Iterator[NodeDatabase]:
    """A migrated SQLite node database."""
    database = NodeDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    database.upgrade()
    yield database
    database.dispose()


# --------------------------------------------------------------------------- pure parts


def _attempt(
    destination: str, status: DeliveryStatus, at: datetime, number: int = 1
) -> DeliveryAttemptInfo:
    return DeliveryAttemptInfo(
        id=number,
        job_id="job",
        destination=destination,
        protocol=DeliveryProtocol.C_STORE,
        status=status,
        error=None,
        attempted_at=at,
    )


def test_back_off_doubles_from_30_s_is_capped_at_1_h_and_stops_at_the_deadline() -> None:
    policy = RetryPolicy()
    key = ("A@h:1", DeliveryProtocol.C_STORE)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 7, 8, 20)] == [
        30,
        60,
        120,
        1920,
        3600,
        3600,
    ]
    fresh = plan_delivery([], [key], policy, ready_at=T0)
    assert fresh.pending == (key,) and fresh.next_attempt_at == T0 and fresh.deadline is None

    failures = [
        _attempt("A@h:1", DeliveryStatus.FAILURE, T0 + timedelta(minutes=i), i) for i in range(3)
    ]
    plan = plan_delivery(failures, [key], policy, ready_at=T0)
    assert plan.first_attempt_at == T0
    assert plan.next_attempt_at == T0 + timedelta(minutes=2, seconds=120)
    assert not plan.is_due(T0 + timedelta(minutes=3)) and plan.is_due(T0 + timedelta(minutes=4))

    late = [_attempt("A@h:1", DeliveryStatus.FAILURE, T0), *failures[1:]]
    late.append(_attempt("A@h:1", DeliveryStatus.FAILURE, T0 + timedelta(hours=23, minutes=58)))
    plan = plan_delivery(late, [key], policy, ready_at=T0)
    assert plan.next_attempt_at == T0 + timedelta(hours=24)  # clamped to the deadline
    assert plan.is_expired(T0 + timedelta(hours=24)) and not plan.is_expired(T0)

    done = [*failures, _attempt("A@h:1", DeliveryStatus.SUCCESS, T0 + timedelta(hours=1), 9)]
    plan = plan_delivery(done, [key], policy, ready_at=T0)
    assert plan.pending == () and plan.next_attempt_at is None and not plan.is_expired(T0)


def test_store_statuses_are_named_and_warnings_count_as_success() -> None:
    from dicom_node.dispatch import is_store_success

    assert is_store_success(0x0000) and is_store_success(0xB000) and is_store_success(0xB007)
    assert not is_store_success(0xA700) and not is_store_success(0x0122)
    assert describe_store_status(0xA700) == "0xA700 Failure: Refused: Out of Resources"
    assert describe_store_status(0xB000) == "0xB000 Warning: Coercion of Data Elements"
    assert describe_store_status(0xC123).startswith("0xC123 Failure")


def test_store_instances_response_is_parsed() -> None:
    body = {
        "00081199": {
            "vr": "SQ",
            "Value": [
                {"00081155": {"vr": "UI", "Value": ["1.2.3"]}},
                {
                    "00081155": {"vr": "UI", "Value": ["1.2.4"]},
                    "00081196": {"vr": "US", "Value": [0xB000]},
                },
            ],
        },
        "00081198": {
            "vr": "SQ",
            "Value": [
                {
                    "00081155": {"vr": "UI", "Value": ["1.2.5"]},
                    "00081197": {"vr": "US", "Value": [0xA700]},
                }
            ],
        },
    }
    parsed = parse_store_response(json.dumps(body).encode())
    assert parsed is not None
    assert parsed.stored == {"1.2.3": None, "1.2.4": 0xB000}
    assert parsed.failed == {"1.2.5": 0xA700} and parsed.other_failures == ()
    assert parse_store_response(json.dumps([body]).encode()) == parsed
    assert parse_store_response(b"<html>not json</html>") is None
    assert parse_store_response(b"{}") is None
    others = {"0008119A": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xC122]}}]}}
    parsed = parse_store_response(json.dumps(others).encode())
    assert parsed is not None and parsed.other_failures == (0xC122,)
    assert describe_stow_reason(0xC122).endswith("Referenced Transfer Syntax not supported")


def test_destinations_come_from_settings_without_credentials_in_names(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        ae_title="NODE_AE",
        destinations=[DicomDestination(ae_title="PACS", host="10.0.0.5", port=104)],
        stow_url="https://admin:pw@pacs.example:8443/dicom-web/",
        stow_username="node",
        stow_password=SecretStr("s3cret"),
    )
    cstore, stow = destinations_from_settings(settings)
    assert isinstance(cstore, CStoreDestination) and isinstance(stow, StowDestination)
    assert cstore.name == "PACS@10.0.0.5:104" and cstore.calling_ae_title == "NODE_AE"
    assert stow.name == "https://pacs.example:8443/dicom-web"
    assert stow.studies_url == "https://pacs.example:8443/dicom-web/studies"
    assert "s3cret" not in repr(stow) and "s3cret" not in repr(settings)
    with pytest.raises(ValueError, match="AE title"):
        CStoreDestination(ae_title="A" * 17, host="h", port=104)
    with pytest.raises(ValueError, match="http"):
        StowDestination(base_url="ftp://x/dicom-web")


def test_jobs_that_are_not_done_are_refused_and_delivered_ones_left_alone(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    settings = settings_for(tmp_path)
    unused = CStoreDestination("NOBODY", "127.0.0.1", free_port())
    dispatcher = Dispatcher(settings, node_db, destinations=[unused])
    job_id = done_job(node_db)
    queued = enqueue_job(node_db, generate_uid(), 1, "e" * 64).job.id
    with pytest.raises(NotDeliverableError):
        dispatcher.deliver(queued, [])
    with pytest.raises(LookupError):
        dispatcher.deliver("no-such-job", [])
    assert Dispatcher(settings, node_db, destinations=[]).deliver(job_id, []).status is (
        DispatchStatus.NO_DESTINATIONS
    )
    assert list_delivery_attempts(node_db, job_id) == []


# --------------------------------------------------------------------------- real peers


@pytest.mark.integration
def test_c_store_to_storescp_delivers_every_instance_and_marks_the_job_delivered(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    port = free_port()
    settings = settings_for(
        tmp_path,
        ae_title="PANCREAS_AI",
        destinations=[DicomDestination(ae_title="STORESCP", host="127.0.0.1", port=port)],
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    with storescp(port, tmp_path / "storescp") as folder:
        outcome = dispatcher.deliver(job_id, results["paths"])
        wait_for(lambda: len(received_sops(folder)) == 3, "storescp to write 3 files")
        received = received_sops(folder)

    assert outcome.status is DispatchStatus.DELIVERED
    (attempt,) = outcome.attempts
    assert attempt.status is AttemptStatus.SUCCESS
    assert {i.sop_instance_uid for i in attempt.instances} == results["sops"]
    assert all(i.status is InstanceStatus.STORED for i in attempt.instances)
    assert set(received) == results["sops"]
    # storescp accepts no RLE by default: the fallback context carried it decompressed.
    assert received[results["rle_sop"]] in {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.destination == f"STORESCP@127.0.0.1:{port}"
    assert record.protocol is DeliveryProtocol.C_STORE
    assert record.status is DeliveryStatus.SUCCESS and record.error is None
    assert dispatcher.deliver(job_id, results["paths"]).status is DispatchStatus.ALREADY_DELIVERED


@pytest.mark.integration
def test_c_store_to_orthanc_is_retrievable_over_rest_and_dicomweb(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer
) -> None:
    results = make_result_set(tmp_path / "results")
    destination = DicomDestination(
        ae_title=orthanc.config.dicom_aet, host="127.0.0.1", port=orthanc.config.dicom_port
    )
    dispatcher = Dispatcher(settings_for(tmp_path, destinations=[destination]), node_db)
    job_id = done_job(node_db)

    outcome = dispatcher.deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.DELIVERED, outcome
    assert_in_orthanc(orthanc, results)
    rle_id = orthanc_lookup(orthanc, results["rle_sop"])
    status, syntax = orthanc.request(f"/instances/{rle_id}/metadata/TransferSyntax")
    assert status == 200 and syntax.decode() == RLELossless  # Orthanc took the file's own syntax


@pytest.mark.integration
@pytest.mark.parametrize("credentials_in", ["settings", "url"])
def test_stow_rs_to_orthanc_with_basic_auth(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer, credentials_in: str
) -> None:
    results = make_result_set(tmp_path / "results")
    password = orthanc.config.admin_password
    if credentials_in == "settings":
        settings = settings_for(
            tmp_path,
            stow_url=f"{orthanc.url}/dicom-web",
            stow_username="admin",
            stow_password=SecretStr(password),
        )
    else:
        url = orthanc.url.replace("http://", f"http://admin:{quote(password, safe='')}@")
        settings = settings_for(tmp_path, stow_url=f"{url}/dicom-web")
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)

    outcome = dispatcher.deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.DELIVERED, outcome
    (attempt,) = outcome.attempts
    assert attempt.protocol is DeliveryProtocol.STOW_RS
    assert {i.sop_instance_uid for i in attempt.instances} == results["sops"]
    assert all(i.stored for i in attempt.instances)
    assert_in_orthanc(orthanc, results)
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.destination == f"{orthanc.url}/dicom-web"
    assert record.status is DeliveryStatus.SUCCESS


@pytest.mark.integration
def test_stow_rs_with_a_wrong_password_is_recorded_as_http_401(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer
) -> None:
    results = make_result_set(tmp_path / "results")
    settings = settings_for(
        tmp_path,
        stow_url=f"{orthanc.url}/dicom-web",
        stow_username="admin",
        stow_password=SecretStr("not-the-password"),
    )
    job_id = done_job(node_db)

    outcome = Dispatcher(settings, node_db).deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.RETRY_SCHEDULED
    assert outcome.attempts[0].status is AttemptStatus.HTTP_ERROR
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.status is DeliveryStatus.FAILURE
    assert record.error is not None and record.error.startswith("http-error: HTTP 401")
    assert "not-the-password" not in record.error and "Phantom" not in record.error
    for sop_uid in results["sops"]:
        assert orthanc_lookup(orthanc, sop_uid) is None


@pytest.mark.integration
def test_unreachable_destination_is_retried_with_back_off_until_the_peer_comes_up(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    port = free_port()  # nobody listens here yet
    settings = settings_for(
        tmp_path, destinations=[DicomDestination(ae_title="LATE", host="127.0.0.1", port=port)]
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    results = make_result_set(settings.results_dir / job_id)  # where the worker puts them
    start = datetime.now(UTC)

    (due,) = dispatcher.due_deliveries(start)
    assert due.job_id == job_id and not due.expired
    assert set(due.files) == set(results["paths"])
    first = dispatcher.deliver(job_id, due.files, now=start)

    assert first.status is DispatchStatus.RETRY_SCHEDULED
    assert first.attempts[0].status is AttemptStatus.CONNECTION_FAILED
    assert all(i.status is InstanceStatus.NOT_SENT for i in first.attempts[0].instances)
    (failed,) = list_delivery_attempts(node_db, job_id)
    assert failed.status is DeliveryStatus.FAILURE and failed.error is not None
    assert failed.error.startswith("connection-failed")
    assert first.next_attempt_at == failed.attempted_at + timedelta(seconds=30)
    assert dispatcher.due_deliveries(start) == []  # not yet due
    assert dispatcher.due_deliveries(first.next_attempt_at - timedelta(seconds=1)) == []

    with storescp(port, tmp_path / "late", ae_title="LATE") as folder:
        (due,) = dispatcher.due_deliveries(first.next_attempt_at)
        second = dispatcher.deliver(job_id, due.files, now=first.next_attempt_at)
        wait_for(lambda: set(received_sops(folder)) == results["sops"], "the late peer's files")

    assert second.status is DispatchStatus.DELIVERED
    assert [a.status for a in list_delivery_attempts(node_db, job_id)] == [
        DeliveryStatus.FAILURE,
        DeliveryStatus.SUCCESS,
    ]
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED
    assert dispatcher.due_deliveries(first.next_attempt_at + timedelta(days=2)) == []


@pytest.mark.integration
def test_delivery_is_given_up_24_h_after_the_first_attempt(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    settings = settings_for(
        tmp_path,
        destinations=[DicomDestination(ae_title="GONE", host="127.0.0.1", port=free_port())],
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    files = make_result_set(tmp_path / "results")["paths"]

    first = dispatcher.deliver(job_id, files)
    assert first.status is DispatchStatus.RETRY_SCHEDULED and first.first_attempt_at is not None
    deadline = first.first_attempt_at + timedelta(hours=24)
    second = dispatcher.deliver(job_id, files, now=deadline - timedelta(minutes=1))
    assert second.status is DispatchStatus.RETRY_SCHEDULED  # still tried just before
    (due,) = dispatcher.due_deliveries(deadline)
    assert due.expired

    final = dispatcher.deliver(job_id, files, now=deadline)

    assert final.status is DispatchStatus.GIVEN_UP
    assert final.attempts == ()  # nothing is sent after the deadline
    assert len(list_delivery_attempts(node_db, job_id)) == 2
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.FAILED and job.next_attempt_at is None
    assert job.failure_reason is not None and "delivery given up" in job.failure_reason
    assert dispatcher.due_deliveries(deadline + timedelta(days=1)) == []
    with pytest.raises(NotDeliverableError):
        dispatcher.deliver(job_id, files)


@pytest.mark.integration
def test_only_the_destination_that_failed_is_retried(tmp_path: Path, node_db: NodeDatabase) -> None:
    up, down = free_port(), free_port()
    settings = settings_for(
        tmp_path,
        destinations=[
            DicomDestination(ae_title="UP", host="127.0.0.1", port=up),
            DicomDestination(ae_title="DOWN", host="127.0.0.1", port=down),
        ],
    )
    dispatcher = Dispatcher(settings, node_db)
    job_id = done_job(node_db)
    results = make_result_set(tmp_path / "results")
    with storescp(up, tmp_path / "up", ae_title="UP"):
        first = dispatcher.deliver(job_id, results["paths"])
    assert first.status is DispatchStatus.RETRY_SCHEDULED
    assert [a.status for a in first.attempts] == [
        AttemptStatus.SUCCESS,
        AttemptStatus.CONNECTION_FAILED,
    ]
    assert first.next_attempt_at is not None

    with storescp(down, tmp_path / "down", ae_title="DOWN") as folder:
        second = dispatcher.deliver(job_id, results["paths"], now=first.next_attempt_at)
        wait_for(lambda: set(received_sops(folder)) == results["sops"], "the second peer")

    assert second.status is DispatchStatus.DELIVERED
    assert [a.destination for a in second.attempts] == [f"DOWN@127.0.0.1:{down}"]
    records = [
        (r.destination.split("@")[0], r.status) for r in list_delivery_attempts(node_db, job_id)
    ]
    assert records == [
        ("UP", DeliveryStatus.SUCCESS),
        ("DOWN", DeliveryStatus.FAILURE),
        ("DOWN", DeliveryStatus.SUCCESS),
    ]


@pytest.mark.integration
def test_each_c_store_status_is_checked_and_failures_are_named(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    sops = sorted(results["sops"])
    answers = {sops[0]: 0xA700, sops[1]: 0xB000}  # the third gets 0x0000
    received: list[str] = []

    def handle_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        received.append(uid)
        return answers.get(uid, 0x0000)

    scp = AE(ae_title="PICKY")
    for sop_class in (CTImageStorage, EncapsulatedPDFStorage):
        scp.add_supported_context(sop_class, [ExplicitVRLittleEndian, RLELossless])
    port = free_port()
    server = scp.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)]
    )
    assert server is not None
    try:
        settings = settings_for(
            tmp_path, destinations=[DicomDestination(ae_title="PICKY", host="127.0.0.1", port=port)]
        )
        job_id = done_job(node_db)
        outcome = Dispatcher(settings, node_db).deliver(job_id, results["paths"])
    finally:
        server.shutdown()

    assert sorted(received) == sops  # one association, every instance offered once
    (attempt,) = outcome.attempts
    assert attempt.status is AttemptStatus.INSTANCE_FAILURES
    by_uid = {i.sop_instance_uid: i for i in attempt.instances}
    assert by_uid[sops[0]].status is InstanceStatus.FAILED and by_uid[sops[0]].code == 0xA700
    assert by_uid[sops[1]].status is InstanceStatus.STORED_WITH_WARNING
    assert by_uid[sops[2]].status is InstanceStatus.STORED
    (record,) = list_delivery_attempts(node_db, job_id)
    assert record.status is DeliveryStatus.FAILURE and record.error is not None
    assert f"{sops[0]}: 0xA700 Failure: Refused: Out of Resources" in record.error
    assert "1 of 3 instances not stored" in record.error and "Phantom" not in record.error
    assert outcome.status is DispatchStatus.RETRY_SCHEDULED


@pytest.mark.integration
def test_rejected_association_and_refused_contexts_are_named(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    scp = AE(ae_title="STRICT")
    scp.require_called_aet = True  # A-ASSOCIATE-RJ for any other called AE title
    scp.add_supported_context("1.2.840.10008.1.1")  # Verification only: no storage
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    assert server is not None
    try:
        outcomes = {}
        for called in ("WRONG", "STRICT"):
            job_id = done_job(node_db)
            settings = settings_for(
                tmp_path,
                destinations=[DicomDestination(ae_title=called, host="127.0.0.1", port=port)],
            )
            outcomes[called] = Dispatcher(settings, node_db).deliver(job_id, results["paths"])
    finally:
        server.shutdown()

    rejected = outcomes["WRONG"].attempts[0]
    assert rejected.status is AttemptStatus.ASSOCIATION_REJECTED
    assert rejected.error is not None and "Called AE title not recognised" in rejected.error
    refused = outcomes["STRICT"].attempts[0]
    assert refused.status is AttemptStatus.NO_ACCEPTED_CONTEXT
    for outcome in outcomes.values():
        assert outcome.status is DispatchStatus.RETRY_SCHEDULED
        assert all(i.status is InstanceStatus.NOT_SENT for i in outcome.attempts[0].instances)
