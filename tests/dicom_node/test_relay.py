"""The originating AE through a relay: Move Originator AE Title (0000,1030; PS3.7 9.1.1.1).

A C-STORE from a trusted relay (``relay_ae_titles``, Orthanc by default) that names a Move
Originator is recorded with the originator's AE title as ``calling_ae``, the routing input;
any other caller's Move Originator is ignored, and the allow-list checks the association's own
calling AE title. The unit tests exercise the choice; the others send real C-STOREs with
pynetdicom to a running node and read the node's database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from db import series_calling_ae
from dicom_node.handlers import routing_calling_ae
from dicom_node.node import Node
from pancreas_contracts import load_settings
from pancreas_contracts.settings import clean_ae_title
from tests.dicom_node.conftest import PhantomSeries, instance_count, node_settings

RELAYS = frozenset({"ORTHANC", "ROUTER_2"})


@pytest.mark.parametrize(
    ("caller", "originator", "recorded"),
    [
        ("ORTHANC", "SCANNER_A", "SCANNER_A"),  # trusted relay names the scanner
        ("ORTHANC  ", "SCANNER_A", "SCANNER_A"),  # padding of the caller
        ("ROUTER_2", " SCANNER_B  ", "SCANNER_B"),  # padding of the originator
        ("ORTHANC", None, "ORTHANC"),  # no Move Originator: the relay itself
        ("ORTHANC", "", "ORTHANC"),
        ("ORTHANC", "    ", "ORTHANC"),
        ("ORTHANC", "A" * 17, "ORTHANC"),  # not an AE title: never truncated
        ("ORTHANC", "BAD\\AE", "ORTHANC"),
        ("ORTHANC", "CT\x00X", "ORTHANC"),
        ("ORTHANC", "SCANNER_\u00c4", "ORTHANC"),
        ("ORTHANC", b"SCANNER_C", "SCANNER_C"),
        ("ORTHANC", b"\xff\xfe", "ORTHANC"),
        ("ORTHANC", 42, "ORTHANC"),
        ("CT_SCANNER", "SCANNER_A", "CT_SCANNER"),  # not a relay: its originator is ignored
        ("orthanc", "SCANNER_A", "orthanc"),  # AE titles are case-sensitive
    ],
)
def test_routing_calling_ae(caller: str, originator: object, recorded: str) -> None:
    assert routing_calling_ae(caller, originator, RELAYS) == recorded


def test_no_relay_trusted() -> None:
    assert routing_calling_ae("ORTHANC", "SCANNER_A", frozenset()) == "ORTHANC"


def test_invalid_originator_is_logged_without_its_value(caplog: pytest.LogCaptureFixture) -> None:
    assert routing_calling_ae("ORTHANC", "PATIENT^NAME\\X", RELAYS) == "ORTHANC"
    assert "not a valid AE title" in caplog.text and "PATIENT" not in caplog.text


def test_clean_ae_title() -> None:
    assert clean_ae_title("  CT_1 ") == "CT_1"
    assert clean_ae_title("A" * 16) == "A" * 16
    for bad in ("", "  ", "A" * 17, "A\\B", "A\tB", "\u00e9", None, 7):
        assert clean_ae_title(bad) is None


def test_relay_setting_default_env_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().relay_ae_titles == ["ORTHANC"]
    assert load_settings(relay_ae_titles=[" PACS_GW "]).relay_ae_titles == ["PACS_GW"]
    assert load_settings(relay_ae_titles=[]).relay_ae_titles == []
    monkeypatch.setenv("PANCREAS_AI_RELAY_AE_TITLES", '["ORTHANC", "ROUTER_2"]')
    assert load_settings().relay_ae_titles == ["ORTHANC", "ROUTER_2"]
    for bad in (["A" * 17], [""], ["A\\B"]):
        with pytest.raises(ValueError, match="relay AE titles"):
            load_settings(relay_ae_titles=bad)


def _read(path: Path) -> Dataset:
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _store(port: int, calling: str, datasets: list[Dataset], originator: str | None) -> list[int]:
    """C-STORE ``datasets`` as ``calling`` with Move Originator ``originator``; the statuses."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(datasets[0].SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    assert assoc.is_established
    try:
        return [
            int(
                assoc.send_c_store(
                    ds, originator_aet=originator, originator_id=7 if originator else None
                ).Status
            )
            for ds in datasets
        ]
    finally:
        assoc.release()


@pytest.mark.integration
def test_relay_originator_is_recorded_and_others_ignored(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    datasets = [_read(p) for p in ct_series.files[:3]]
    uid = ct_series.SeriesInstanceUID
    with Node(node_settings(tmp_path, quiet_period_s=60.0)) as node:
        port = node.scp.port
        # Orthanc (the default relay) naming the scanner: recorded as the scanner.
        assert _store(port, "ORTHANC", datasets[:1], "SCANNER_A") == [0]
        assert series_calling_ae(node.database, uid) == "SCANNER_A"
        # Orthanc without an originator (a REST upload forwarded): Orthanc itself.
        assert _store(port, "ORTHANC", datasets[1:2], None) == [0]
        assert series_calling_ae(node.database, uid) == "ORTHANC"
        # A caller that is not a relay cannot borrow another AE title.
        assert _store(port, "CT_SCANNER", datasets[2:3], "SCANNER_A") == [0]
        assert series_calling_ae(node.database, uid) == "CT_SCANNER"
        assert instance_count(node.database, uid) == 3


@pytest.mark.integration
def test_relay_cannot_pass_the_allow_list(tmp_path: Path, ct_series: PhantomSeries) -> None:
    datasets = [_read(ct_series.files[0])]
    settings = node_settings(
        tmp_path, allowed_callers=["SCANNER_A"], relay_ae_titles=["ORTHANC"], quiet_period_s=60.0
    )
    with Node(settings) as node:
        ae = AE(ae_title="ORTHANC")
        ae.add_requested_context(datasets[0].SOPClassUID, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", node.scp.port, ae_title="PANCREAS_AI")
        assert assoc.is_rejected  # the relay's own AE title is not allowed
        assert _store(node.scp.port, "SCANNER_A", datasets, None) == [0]
        assert series_calling_ae(node.database, ct_series.SeriesInstanceUID) == "SCANNER_A"


@pytest.mark.integration
def test_relay_list_empty_trusts_nobody(tmp_path: Path, ct_series: PhantomSeries) -> None:
    with Node(node_settings(tmp_path, relay_ae_titles=[], quiet_period_s=60.0)) as node:
        assert _store(node.scp.port, "ORTHANC", [_read(ct_series.files[0])], "SCANNER_A") == [0]
        assert series_calling_ae(node.database, ct_series.SeriesInstanceUID) == "ORTHANC"
