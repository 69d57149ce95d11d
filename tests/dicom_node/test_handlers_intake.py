"""The C-STORE handler against real senders: size limits while receiving, deflate bombs,
one object per SOPInstanceUID and content, undecodable instances, unexpected errors
(issue 22, D5, D7, D10, D11)."""

from __future__ import annotations

import copy
import logging
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE

from db import RoutingDecision, SeriesStatus, get_series, list_audit_events
from dicom_node.handlers import IntakeContext, handle_store
from dicom_node.node import Node
from dicom_node.spool import Spool
from dicom_node.statuses import StoreStatus
from tests.conftest import require_executable
from tests.dicom_node.conftest import PhantomSeries, instance_count, make_series, node_settings
from tests.dicom_node.test_scp import read, send_datasets, storescu, wait_for

pytestmark = pytest.mark.integration


def spooled_files(node: Node) -> list[Path]:
    return sorted(node.settings.spool_dir.rglob("*.dcm"))


def test_oversize_instance_is_dropped_while_receiving(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    big = read(ct_series.files[0])
    big.SOPInstanceUID = generate_uid()
    big.add_new(0x00091010, "OB", b"\1" * 3_000_000)
    leftovers_before = set(Path(tempfile.gettempdir()).glob("tmp*.dcm"))
    with Node(node_settings(tmp_path, max_instance_mb=1.0, max_pdu_bytes=65536)) as node:
        ae = AE(ae_title="EDGE_SCU")
        ae.add_requested_context(big.SOPClassUID, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", node.scp.port, ae_title="PANCREAS_AI")
        assert assoc.is_established
        # The node announces its bounded PDU size (PS3.8 D.1) ...
        assert assoc.acceptor.maximum_length == 65536
        status = assoc.send_c_store(big)
        # ... and drops the association once the data set passes the limit: no status.
        assert "Status" not in status
        wait_for(lambda: not assoc.is_alive())
        assert spooled_files(node) == []
        assert send_datasets(node.scp.port, [read(ct_series.files[1])]) == [StoreStatus.SUCCESS]
        events = list_audit_events(node.database, object_type="association")
        assert [e.detail and e.detail["reason"] for e in events] == ["instance-too-large"]
    # The partly received data set is not left in the temporary folder.
    uid = str(big.SOPInstanceUID).encode()
    new_files = set(Path(tempfile.gettempdir()).glob("tmp*.dcm")) - leftovers_before
    assert not [p for p in new_files if p.exists() and uid in p.read_bytes()[:4096]]


def test_deflate_bomb_is_refused_without_inflating(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    bomb = dcmread(ct_series.files[0])
    bomb.SOPInstanceUID = generate_uid()
    bomb.add_new(0x00091010, "OB", b"\0" * 40_000_000)
    bomb.file_meta.MediaStorageSOPInstanceUID = bomb.SOPInstanceUID
    bomb.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "bomb.dcm"
    bomb.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 1_000_000  # 40 MB of zeros deflate to a few hundred KB
    exe = require_executable("storescu")
    with Node(node_settings(tmp_path / "node", max_instance_mb=4.0)) as node:
        cmd = [exe, "-v", "-xd", "-aec", "PANCREAS_AI", "127.0.0.1", str(node.scp.port), str(path)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        # DCMTK names the status class: Refused, Out of Resources (0xA703 in the node's log).
        assert "Refused: OutOfResources" in result.stderr, result.stderr
        assert instance_count(node.database, ct_series.SeriesInstanceUID) == 0
        assert spooled_files(node) == []


def test_same_uid_with_other_content_is_refused_and_audited(
    node: Node, ct_series: PhantomSeries
) -> None:
    first = read(ct_series.files[0])
    other = read(ct_series.files[0])
    other.WindowCenter = 999
    assert send_datasets(node.scp.port, [first, first]) == [StoreStatus.SUCCESS] * 2
    stored = spooled_files(node)
    assert len(stored) == 1
    before = stored[0].read_bytes()
    assert send_datasets(node.scp.port, [other]) == [StoreStatus.DUPLICATE_SOP_INSTANCE]
    assert stored[0].read_bytes() == before
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == 1
    events = list_audit_events(node.database, object_type="instance")
    assert [e.action for e in events] == ["instance.conflict"]
    assert events[0].object_id == str(first.SOPInstanceUID)


def _send_as(port: int, ds: Dataset, transfer_syntax: str) -> int:
    ae = AE(ae_title="EDGE_SCU")
    ae.add_requested_context(ds.SOPClassUID, transfer_syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    assert assoc.is_established
    try:
        # A fresh data set: no original encoding for pydicom to insist on.
        sent = Dataset()
        sent.update(copy.deepcopy(ds))
        sent.file_meta = copy.deepcopy(ds.file_meta)
        sent.file_meta.TransferSyntaxUID = transfer_syntax
        return int(assoc.send_c_store(sent).Status)
    finally:
        assoc.release()


def test_a_resend_in_another_transfer_syntax_is_the_same_instance(
    node: Node, ct_series: PhantomSeries
) -> None:
    # A PACS re-sending a series in another (lossless) transfer syntax sends other bytes of the
    # same content: acknowledged as a duplicate, the stored file kept, audited as a re-send.
    first = read(ct_series.files[0])
    assert send_datasets(node.scp.port, [first]) == [StoreStatus.SUCCESS]
    (stored,) = spooled_files(node)
    before = stored.read_bytes()
    assert _send_as(node.scp.port, first, ImplicitVRLittleEndian) == StoreStatus.SUCCESS
    assert stored.read_bytes() == before
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == 1
    events = list_audit_events(node.database, object_type="instance")
    assert [e.action for e in events] == ["instance.resent-other-syntax"]
    # Other pixel values in another transfer syntax are still a conflict.
    other = read(ct_series.files[0])
    pixels = other.pixel_array.copy()
    pixels[0, 0] += 1
    other.PixelData = pixels.tobytes()
    assert _send_as(node.scp.port, other, ImplicitVRLittleEndian) == (
        StoreStatus.DUPLICATE_SOP_INSTANCE
    )
    events = list_audit_events(node.database, object_type="instance")
    assert [e.action for e in events][-1] == "instance.conflict"


def test_database_failure_leaves_no_file_without_a_row(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    settings = node_settings(tmp_path)
    with Node(settings) as node:
        # A real database fault after the spool write: the instance insert is refused.
        with sqlite3.connect(settings.data_dir / "node.db") as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON instances "
                "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
            )
        statuses = send_datasets(node.scp.port, [read(ct_series.files[0])])
        assert statuses == [StoreStatus.DATABASE_UNAVAILABLE]
        assert spooled_files(node) == []


class _BrokenEvent:
    """A C-STORE event whose data set cannot be reached (an unexpected error in the node)."""

    class _Request:
        AffectedSOPInstanceUID = "1.2.3.4"
        AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"

    request = _Request()

    class assoc:  # noqa: N801 - mirrors pynetdicom's attribute
        class requestor:  # noqa: N801
            ae_title = "EDGE_SCU"

    @property
    def dataset_path(self) -> Any:
        raise RuntimeError("unexpected")


def test_unexpected_error_is_one_line_and_processing_failure(
    tmp_path: Path, node_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    context = IntakeContext(Spool(tmp_path / "spool"), node_db, 1 << 20)
    with caplog.at_level(logging.INFO):
        status = handle_store(_BrokenEvent(), context)
    assert status == StoreStatus.PROCESSING_FAILURE
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1
    assert not failures[0].exc_info  # the traceback only at DEBUG
    assert "1.2.3.4" in failures[0].getMessage()


def _without_bits_stored(ds: Dataset) -> Dataset:
    del ds.BitsStored
    return ds


def _bad_photometric(ds: Dataset) -> Dataset:
    ds.PhotometricInterpretation = "MONOCHROME9"
    return ds


def _high_bit_beyond_bits_stored(ds: Dataset) -> Dataset:
    ds.HighBit = 15
    ds.BitsStored = 12
    ds.BitsAllocated = 8
    return ds


def test_undecodable_instances_are_refused_and_do_not_spoil_the_series(
    node: Node, ct_series: PhantomSeries
) -> None:
    bad = [
        _without_bits_stored(read(ct_series.files[0])),
        _bad_photometric(read(ct_series.files[1])),
        _high_bit_beyond_bits_stored(read(ct_series.files[2])),
    ]
    statuses = send_datasets(node.scp.port, bad)
    assert statuses == [StoreStatus.PIXEL_MODULE_INVALID] * 3
    assert storescu(node.scp.port, *ct_series.files[3:]).returncode == 0
    assert instance_count(node.database, ct_series.SeriesInstanceUID) == len(ct_series.files) - 3

    def complete() -> bool:
        info = get_series(node.database, ct_series.SeriesInstanceUID)
        return info is not None and info.status is SeriesStatus.COMPLETE

    wait_for(complete)
    info = get_series(node.database, ct_series.SeriesInstanceUID)
    assert info is not None and info.routing_decision is RoutingDecision.ANALYZE


def test_compressed_frame_that_does_not_decode_is_refused(tmp_path: Path) -> None:
    series = make_series(
        tmp_path / "phantom", seed=4, fov_mm=(60.0, 60.0, 30.0), transfer_syntax="rle"
    )
    ds = dcmread(series.files[0])
    fragment = next(generate_fragments(ds.PixelData))
    # PS3.5 G.5: a 16-bit frame has two RLE segments; a header naming one cannot decode.
    broken = (1).to_bytes(4, "little") + fragment[4:]
    ds.PixelData = encapsulate([broken])
    good = dcmread(series.files[1])
    with Node(node_settings(tmp_path / "node")) as node:
        ae = AE(ae_title="EDGE_SCU")
        ae.add_requested_context(ds.SOPClassUID, RLELossless)
        assoc = ae.associate("127.0.0.1", node.scp.port, ae_title="PANCREAS_AI")
        assert assoc.is_established
        try:
            statuses = [int(assoc.send_c_store(d).Status) for d in (ds, good)]
        finally:
            assoc.release()
        assert statuses == [StoreStatus.CORRUPT_PIXEL_DATA, StoreStatus.SUCCESS]
        assert instance_count(node.database, series.SeriesInstanceUID) == 1
