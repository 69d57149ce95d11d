"""Shared helpers of the dispatch tests: result files, peers, settings, a node database."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
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

from db import (
    NodeDatabase,
    claim_next_job,
    complete_job,
    enqueue_job,
)
from pancreas_contracts import Settings
from pancreas_node.orthanc_server import OrthancServer
from tests.conftest import require_executable

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
