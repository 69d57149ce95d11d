"""Association guards against half-open, silent and refused peers (issue 22, D2, D3, D12).

Attackers connect from 127.0.0.2 (any 127/8 address reaches loopback on Linux), the real
sender (DCMTK storescu/echoscu) from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE

from db import list_audit_events
from dicom_node.node import Node
from tests.conftest import require_executable
from tests.dicom_node.conftest import PhantomSeries, instance_count, node_settings
from tests.dicom_node.test_scp import storescu, wait_for

pytestmark = pytest.mark.integration

ATTACKER = "127.0.0.2"


@contextmanager
def stalled_sockets(
    port: int, count: int, payload: bytes = b"", source: str = ATTACKER
) -> Iterator[list[socket.socket]]:
    """``count`` open TCP connections that sent ``payload`` and then stay silent."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((source, 0))
            sock.settimeout(5)
            sock.connect(("127.0.0.1", port))
            if payload:
                sock.sendall(payload)
            sockets.append(sock)
        yield sockets


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the node has closed ``sock`` (reads EOF or a reset)."""
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def echo(port: int) -> int:
    exe = require_executable("echoscu")
    cmd = [exe, "-to", "20", "-aec", "PANCREAS_AI", "127.0.0.1", str(port)]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode
    except subprocess.TimeoutExpired:
        return -1


def test_partial_pdu_headers_do_not_lock_out_a_sender(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    with Node(node_settings(tmp_path)) as node, stalled_sockets(node.scp.port, 16, b"\x01\x00\x00"):
        assert storescu(node.scp.port, *ct_series.files[:3]).returncode == 0
        assert instance_count(node.database, ct_series.SeriesInstanceUID) == 3


def test_stalled_sockets_from_the_senders_own_address_do_not_lock_it_out(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    settings = node_settings(tmp_path, max_pending_per_address=4, handshake_timeout_s=60.0)
    with (
        Node(settings) as node,
        stalled_sockets(node.scp.port, 20, b"\x01\x00\x00", source="127.0.0.1") as stalled,
    ):
        # The oldest pending connections made room for the newer ones, and for the sender.
        wait_for(lambda: sum(closed_by_peer(s) for s in stalled) >= 16)
        assert storescu(node.scp.port, *ct_series.files[:2]).returncode == 0
        assert instance_count(node.database, ct_series.SeriesInstanceUID) == 2
        events = list_audit_events(node.database, object_type="association")
        assert {(e.detail or {}).get("reason") for e in events} == {"pending-limit"}


def test_half_open_connections_are_closed_after_the_handshake_timeout(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, handshake_timeout_s=1.0, acse_timeout_s=30.0)
    with (
        Node(settings) as node,
        stalled_sockets(node.scp.port, 3, b"\x01\x00\x00") as partial,
        stalled_sockets(node.scp.port, 3) as silent,
        # An A-ASSOCIATE-RQ header announcing 4 GiB, then garbage: dropped at the header.
        stalled_sockets(node.scp.port, 3, b"\x01\x00\xff\xff\xff\xff" + b"\x5a" * 4096) as huge,
    ):
        peers = [*partial, *silent, *huge]
        wait_for(lambda: all(closed_by_peer(s) for s in peers), timeout_s=15)


def test_stalled_sockets_from_a_refused_address_do_not_lock_out_an_allowed_one(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    settings = node_settings(tmp_path, allowed_addresses=["127.0.0.1"])
    with Node(settings) as node, stalled_sockets(node.scp.port, 17):
        assert echo(node.scp.port) == 0
        assert storescu(node.scp.port, ct_series.files[0]).returncode == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require_executable("openssl")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "node.key", folder / "node.crt"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x"]
    subprocess.run(
        [openssl, *request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_idle_tcp_connection_does_not_block_tls_associations(
    tmp_path: Path, ct_series: PhantomSeries, certificate: tuple[Path, Path]
) -> None:
    exe = require_executable("storescu")
    key, cert = certificate
    settings = node_settings(tmp_path, tls_certificate=cert, tls_private_key=key)
    with Node(settings) as node, stalled_sockets(node.scp.port, 1):
        cmd = [exe, "-to", "20", "+tls", str(key), str(cert), "+cf", str(cert)]
        cmd += ["-aec", "PANCREAS_AI", "127.0.0.1", str(node.scp.port), str(ct_series.files[0])]
        try:
            result = subprocess.run(cmd, capture_output=True, timeout=40, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail("the TLS association was blocked by an idle TCP connection")
        assert result.returncode == 0, result.stderr
        assert instance_count(node.database, ct_series.SeriesInstanceUID) == 1


def rejection(port: int, calling: str = "EDGE_SCU") -> tuple[int, int, int]:
    """Associate and return the A-ASSOCIATE-RJ's (result, source, reason)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    if assoc.is_established:
        assoc.release()
    assert assoc.is_rejected, "expected an A-ASSOCIATE-RJ"
    rj = assoc.acceptor.primitive
    assert rj is not None
    return int(rj.result or 0), int(rj.result_source or 0), int(rj.diagnostic or 0)


def rejections(node: Node) -> list[dict[str, object]]:
    events = list_audit_events(node.database, object_type="association")
    return [dict(e.detail or {}) | {"origin": e.origin} for e in events]


def test_refused_address_gets_a_reject_that_is_logged_and_audited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Node(node_settings(tmp_path, allowed_addresses=["10.0.0.0/8"])) as node:
        # PS3.8 9.3.4: rejected-permanent (1), service-user (1), no-reason-given (1).
        assert rejection(node.scp.port) == (1, 1, 1)
        wait_for(lambda: len(rejections(node)) == 1)
        assert rejections(node)[0]["reason"] == "address-not-allowed"
    assert any("association rejected" in r.getMessage() for r in caplog.records)


def test_unknown_caller_rejection_is_audited(tmp_path: Path) -> None:
    with Node(node_settings(tmp_path, allowed_callers=["TRUSTED_CT"])) as node:
        assert rejection(node.scp.port, calling="ROGUE") == (1, 1, 3)
        wait_for(lambda: len(rejections(node)) == 1)
        assert rejections(node)[0]["reason"] == "calling-ae-not-allowed"


def test_association_limit_rejects_with_local_limit_exceeded(tmp_path: Path) -> None:
    with Node(node_settings(tmp_path, max_associations=1)) as node:
        ae = AE(ae_title="EDGE_SCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        held = ae.associate("127.0.0.1", node.scp.port, ae_title="PANCREAS_AI")
        assert held.is_established
        assert int(held.send_c_echo().Status) == 0  # in use: not a silent one to evict
        try:
            # Transient (2), service-provider presentation related (3), local-limit-exceeded (2).
            assert rejection(node.scp.port) == (2, 3, 2)
        finally:
            held.release()
        wait_for(lambda: len(rejections(node)) == 1)
        assert rejections(node)[0]["reason"] == "association-limit"


def associate(port: int) -> Any:
    ae = AE(ae_title="EDGE_SCU")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    assert assoc.is_established
    return assoc


def test_silent_associations_give_way_to_a_sender_and_time_out(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    settings = node_settings(tmp_path, max_associations=2, handshake_timeout_s=2.0)
    with Node(settings) as node:
        busy = associate(node.scp.port)
        assert int(busy.send_c_echo().Status) == 0
        silent = associate(node.scp.port)
        # Both slots are taken; the silent association makes room for the sender.
        assert storescu(node.scp.port, ct_series.files[0]).returncode == 0
        wait_for(lambda: not silent.is_alive())
        assert busy.is_established
        # A second silent one is aborted by the node once the handshake timeout passes idle.
        late = associate(node.scp.port)
        wait_for(lambda: not late.is_alive())
        assert late.is_aborted
        assert busy.is_established and int(busy.send_c_echo().Status) == 0
        busy.release()
        reasons = [(e.detail or {}).get("reason") for e in rejections_of(node)]
        assert reasons == ["silent-association-evicted"]


def rejections_of(node: Node) -> list[Any]:
    return list_audit_events(node.database, object_type="association")


def test_a_burst_of_garbage_connections_leaves_no_slot_taken(
    tmp_path: Path, ct_series: PhantomSeries
) -> None:
    # A long handshake timeout: a connection closed before its request must free its slot at
    # once, not when that timeout ends.
    with Node(node_settings(tmp_path, handshake_timeout_s=60.0)) as node:
        for _ in range(100):  # more than pynetdicom's own count allows at once (16 + 64)
            with socket.create_connection(("127.0.0.1", node.scp.port), timeout=5) as conn:
                conn.sendall(b"\xff\x00\x00\x00\x00\x04junk")
                conn.settimeout(0.05)
                with contextlib.suppress(OSError):
                    conn.recv(1024)
        assert storescu(node.scp.port, ct_series.files[0]).returncode == 0
