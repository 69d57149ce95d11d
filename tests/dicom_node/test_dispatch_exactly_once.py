"""Delivery is exactly once per (job, destination) across interrupted attempts (issue 22, D4).

A delivery attempt used to be recorded only after every object of the batch had been sent, so
a node killed after the first object (the robustness campaign's kill -9 during delivery) sent
every object again after its restart. Real peers: DCMTK storescp with unique file names (so a
second copy is a second file), a pynetdicom SCP, Orthanc over STOW-RS; a real node database.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydicom import dcmread
from pydicom.uid import CTImageStorage, EncapsulatedPDFStorage, ExplicitVRLittleEndian, RLELossless
from pynetdicom import AE, evt

from db import (
    DeliveryProtocol,
    DeliveryStatus,
    NodeDatabase,
    delivered_objects,
    get_job,
    list_delivery_attempts,
    record_delivered_object,
)
from dicom_node.dispatch import (
    CStoreDestination,
    DestinationOutcome,
    Dispatcher,
    DispatchStatus,
    ResultFile,
)
from pancreas_contracts.job_states import JobState
from pancreas_contracts.settings import DicomDestination
from pancreas_node.orthanc_server import OrthancServer
from tests.conftest import free_port, require_executable
from tests.dicom_node._dispatch_helpers import (
    accepts_connections,
    done_job,
    make_result_set,
    orthanc_lookup,
    settings_for,
    wait_for,
)

pytestmark = pytest.mark.integration


class _Killed(BaseException):
    """Stands for ``kill -9``: nothing after it runs, not even the attempt's record."""


@contextmanager
def _storescp_unique(port: int, folder: Path) -> Iterator[Path]:
    """DCMTK storescp writing every received object to a file of its own."""
    binary = require_executable("storescp")
    folder.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"storescp-{port}.log").open("wb") as log:
        args = [binary, "--unique-filenames", "--output-directory", str(folder)]
        process = subprocess.Popen(
            [*args, "-aet", "STORESCP", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: process.poll() is not None or accepts_connections(port),
                "storescp to listen",
            )
            assert process.poll() is None, f"storescp exited with {process.returncode}"
            yield folder
        finally:
            process.terminate()
            process.wait(timeout=10)


def _copies(folder: Path) -> Counter[str]:
    """How many files storescp wrote per SOPInstanceUID."""
    return Counter(
        str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in folder.iterdir()
        if p.is_file()
    )


class _DiesAfterFirstObject:
    """The real C-STORE destination, in a node that is killed once its first object is stored.

    Later calls (the restarted node's retry) go straight through.
    """

    def __init__(self, real: CStoreDestination) -> None:
        self.real = real
        self.killed = False

    @property
    def name(self) -> str:
        return self.real.name

    @property
    def protocol(self) -> DeliveryProtocol:
        return self.real.protocol

    def send(
        self, files: Sequence[ResultFile], *, job_id: str, **kwargs: Any
    ) -> DestinationOutcome:
        if self.killed:
            return self.real.send(files, job_id=job_id, **kwargs)
        self.killed = True
        self.real.send(files[:1], job_id=job_id, **kwargs)
        raise _Killed


def test_a_delivery_killed_after_the_first_object_sends_only_the_rest(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    paths = sorted(results["paths"])
    port = free_port()
    real = CStoreDestination("STORESCP", "127.0.0.1", port, calling_ae_title="PANCREAS_AI")
    dying = _DiesAfterFirstObject(real)
    job_id = done_job(node_db)

    with _storescp_unique(port, tmp_path / "storescp") as folder:
        with pytest.raises(_Killed):
            Dispatcher(settings_for(tmp_path), node_db, destinations=[dying]).deliver(job_id, paths)
        wait_for(lambda: len(_copies(folder)) == 1, "storescp to write the first object")
        # The restarted node: a new dispatcher, same database.
        outcome = Dispatcher(settings_for(tmp_path), node_db, destinations=[dying]).deliver(
            job_id, paths
        )
        wait_for(lambda: sum(_copies(folder).values()) >= 3, "storescp to write 3 files")
        copies = _copies(folder)

    assert outcome.status is DispatchStatus.DELIVERED
    assert copies == dict.fromkeys(results["sops"], 1), copies
    assert delivered_objects(node_db, job_id, real.name) == results["sops"]
    assert [a.status for a in list_delivery_attempts(node_db, job_id)] == [DeliveryStatus.SUCCESS]


def test_a_retry_after_a_refused_object_sends_only_that_object(
    tmp_path: Path, node_db: NodeDatabase
) -> None:
    results = make_result_set(tmp_path / "results")
    refused = sorted(results["sops"])[1]
    received: list[str] = []

    def handle_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        received.append(uid)
        # Out of resources the first time only (PS3.4 Table B.2-1, 0xA700).
        return 0xA700 if uid == refused and received.count(uid) == 1 else 0x0000

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
        dispatcher = Dispatcher(settings, node_db)
        job_id = done_job(node_db)
        first = dispatcher.deliver(job_id, results["paths"])
        second = dispatcher.deliver(job_id, results["paths"])
    finally:
        server.shutdown()

    assert first.status is DispatchStatus.RETRY_SCHEDULED
    assert second.status is DispatchStatus.DELIVERED
    assert Counter(received) == {**dict.fromkeys(results["sops"], 1), refused: 2}
    (retry,) = second.attempts
    assert all(i.stored for i in retry.instances)
    assert {i.sop_instance_uid for i in retry.instances} == results["sops"]


def test_stow_rs_skips_objects_already_delivered(
    tmp_path: Path, node_db: NodeDatabase, orthanc: OrthancServer
) -> None:
    results = make_result_set(tmp_path / "results")
    settings = settings_for(
        tmp_path,
        stow_url=f"{orthanc.url}/dicom-web",
        stow_username="admin",
        stow_password=SecretStr(orthanc.config.admin_password),
    )
    dispatcher = Dispatcher(settings, node_db)
    (stow,) = dispatcher.destinations
    job_id = done_job(node_db)
    # A previous attempt was killed after its first request carried this object.
    seeded = sorted(results["sops"])[0]
    record_delivered_object(
        node_db, job_id, destination=stow.name, protocol=stow.protocol, sop_instance_uid=seeded
    )

    outcome = dispatcher.deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.DELIVERED
    assert orthanc_lookup(orthanc, seeded) is None  # not sent again
    for uid in results["sops"] - {seeded}:
        assert orthanc_lookup(orthanc, uid) is not None
    assert delivered_objects(node_db, job_id, stow.name) == results["sops"]
    job = get_job(node_db, job_id)
    assert job is not None and job.state is JobState.DELIVERED


@pytest.mark.parametrize("protocol", ["c-store", "stow-rs"])
def test_a_destination_holding_every_object_is_not_contacted(
    tmp_path: Path, node_db: NodeDatabase, protocol: str
) -> None:
    """Nothing listens at the destination: only skipping every object can deliver the job."""
    results = make_result_set(tmp_path / "results")
    port = free_port()
    if protocol == "c-store":
        peer = DicomDestination(ae_title="NOBODY", host="127.0.0.1", port=port)
        settings = settings_for(tmp_path, destinations=[peer])
    else:
        settings = settings_for(tmp_path, stow_url=f"http://127.0.0.1:{port}/dicom-web")
    dispatcher = Dispatcher(settings, node_db)
    (destination,) = dispatcher.destinations
    job_id = done_job(node_db)
    for uid in results["sops"]:
        record_delivered_object(
            node_db,
            job_id,
            destination=destination.name,
            protocol=destination.protocol,
            sop_instance_uid=uid,
        )

    outcome = dispatcher.deliver(job_id, results["paths"])

    assert outcome.status is DispatchStatus.DELIVERED
    (attempt,) = outcome.attempts
    assert {i.sop_instance_uid for i in attempt.instances} == results["sops"]
    assert all(i.detail == "stored in an earlier attempt" for i in attempt.instances)
