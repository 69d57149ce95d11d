"""The node's SCP against real peers: DCMTK echoscu/storescu and pynetdicom SCUs."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from pynetdicom import AE

from db import SeriesStatus, get_series
from dicom_node.node import Node
from dicom_node.statuses import StoreStatus
from tests.conftest import require_executable
from tests.dicom_node.conftest import PhantomSeries, instance_count, node_settings

pytestmark = pytest.mark.integration


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until true or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def storescu(
    port: int, *paths: Path, calling: str = "TEST_SCU"
) -> subprocess.CompletedProcess[str]:
    exe = require_executable("storescu")
    cmd = [exe, "-aet", calling, "-aec", "PANCREAS_AI", "127.0.0.1", str(port), *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def send_datasets(port: int, datasets: list[Dataset], calling: str = "EDGE_SCU") -> list[int]:
    """Send data sets over one pynetdicom association; return each C-STORE status."""
    ae = AE(ae_title=calling)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def read(path: Path) -> Dataset:
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_echoscu(node: Node) -> None:
    exe = require_executable("echoscu")
    result = subprocess.run(
        [exe, "-aec", "PANCREAS_AI", "127.0.0.1", str(node.scp.port)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_storescu_series_is_spooled_recorded_and_assembled(
    node: Node, ct_series: PhantomSeries
) -> None:
    result = storescu(node.scp.port, *ct_series.files)
    assert result.returncode == 0, result.stderr
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == len(ct_series.files)
    spooled = list(
        (node.settings.spool_dir / ct_series.StudyInstanceUID / ct_series.SeriesInstanceUID).glob(
            "*.dcm"
        )
    )
    assert {p.stem for p in spooled} == ct_series.SOPInstanceUIDs
    for path in spooled[:3]:
        assert dcmread(path).pixel_array.shape == (133, 133)

    def complete() -> bool:
        info = get_series(node.database, ct_series.SeriesInstanceUID)
        return info is not None and info.status is SeriesStatus.COMPLETE

    wait_for(complete)
    info = get_series(node.database, ct_series.SeriesInstanceUID)
    assert info is not None
    assert info.routing_decision.value == "analyze"
    assert info.routing_reason is not None and "small CT" in info.routing_reason


def test_resend_is_idempotent(node: Node, ct_series: PhantomSeries) -> None:
    assert storescu(node.scp.port, *ct_series.files[:5]).returncode == 0
    assert storescu(node.scp.port, *ct_series.files[:5]).returncode == 0
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == 5


def test_bad_inputs_get_named_statuses(tmp_path: Path, ct_series: PhantomSeries) -> None:
    settings = node_settings(tmp_path, max_instance_mb=0.5)
    missing_uid = read(ct_series.files[0])
    del missing_uid.SeriesInstanceUID
    missing_uid.SOPInstanceUID = generate_uid()
    truncated = read(ct_series.files[1])
    truncated.PixelData = truncated.PixelData[:1000]
    secondary = read(ct_series.files[2])
    secondary.SOPClassUID = SecondaryCaptureImageStorage
    secondary.SOPInstanceUID = generate_uid()
    good = read(ct_series.files[4])
    with Node(settings) as node:
        statuses = send_datasets(node.scp.port, [missing_uid, truncated, secondary, good])
        assert statuses == [
            StoreStatus.MISSING_REQUIRED_UID,
            StoreStatus.CORRUPT_PIXEL_DATA,
            StoreStatus.SUCCESS,
            StoreStatus.SUCCESS,
        ]
        # Only the good CT instance is kept; the secondary capture is acknowledged and ignored.
        assert instance_count(node.database, ct_series.SeriesInstanceUID) == 1


def test_calling_ae_and_address_allow_lists(tmp_path: Path, ct_series: PhantomSeries) -> None:
    with Node(node_settings(tmp_path / "ae", allowed_callers=["TRUSTED_CT"])) as node:
        assert storescu(node.scp.port, ct_series.files[0], calling="ROGUE").returncode != 0
        assert storescu(node.scp.port, ct_series.files[0], calling="TRUSTED_CT").returncode == 0
    with Node(node_settings(tmp_path / "ip", allowed_addresses=["10.0.0.0/8"])) as node:
        assert storescu(node.scp.port, ct_series.files[0]).returncode != 0
        assert instance_count(node.database, ct_series.SeriesInstanceUID) == 0


def test_unsupported_transfer_syntax_is_refused_at_negotiation(
    node: Node, ct_series: PhantomSeries
) -> None:
    ct_class = dcmread(ct_series.files[0]).SOPClassUID
    ae = AE(ae_title="EDGE_SCU")
    ae.add_requested_context(ct_class, "1.2.840.10008.1.2.4.110")  # JPEG XL lossless: not supported
    ae.add_requested_context("1.2.840.10008.1.1")  # Verification keeps the association up
    assoc = ae.associate("127.0.0.1", node.scp.port, ae_title="PANCREAS_AI")
    try:
        assert assoc.is_established
        assert [cx.abstract_syntax for cx in assoc.rejected_contexts] == [ct_class]
        assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == ["1.2.840.10008.1.1"]
    finally:
        assoc.release()


def test_dropped_association_keeps_acknowledged_instances(
    node: Node, ct_series: PhantomSeries
) -> None:
    datasets = [read(p) for p in ct_series.files[:6]]
    ae = AE(ae_title="EDGE_SCU")
    ae.add_requested_context(datasets[0].SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", node.scp.port, ae_title="PANCREAS_AI")
    for ds in datasets[:3]:
        assert int(assoc.send_c_store(ds).Status) == 0
    assoc.abort()
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == 3
    # The node keeps serving after the abort.
    assert storescu(node.scp.port, *ct_series.files[3:6]).returncode == 0
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == 6


def test_eight_simultaneous_associations(node: Node, ct_series: PhantomSeries) -> None:
    chunks = [ct_series.files[i::8] for i in range(8)]
    results: list[int] = []
    lock = threading.Lock()

    def send(chunk: tuple[Path, ...]) -> None:
        code = storescu(node.scp.port, *chunk).returncode
        with lock:
            results.append(code)

    threads = [threading.Thread(target=send, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [0] * 8
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == len(ct_series.files)


def test_disk_full_answers_out_of_resources(tmp_path: Path, ct_series: PhantomSeries) -> None:
    spool_mount = tmp_path / "data" / "spool"
    spool_mount.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spool_mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with Node(node_settings(tmp_path)) as node:
            statuses = send_datasets(node.scp.port, [read(p) for p in ct_series.files[:3]])
            assert StoreStatus.OUT_OF_RESOURCES in statuses
            assert statuses[0] == StoreStatus.SUCCESS
    finally:
        subprocess.run(["umount", str(spool_mount)], check=False)
