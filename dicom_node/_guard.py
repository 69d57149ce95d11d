"""Connection and association guards of the SCP (issue 22, D2, D3, D12).

A connection is *pending* from TCP accept until its A-ASSOCIATE-RQ has arrived; only then does
it take one of the ``max_associations`` slots. Pending connections are limited per source
address and in all, and must finish the TLS handshake (on their own thread, never the accept
thread) and deliver the request within ``handshake_timeout_s``, so half-open, silent or
stalled peers cannot hold slots, and a refused address cannot crowd out an allowed one.

Every rejection is answered as PS3.8 9.3.4 asks where a request was received
(A-ASSOCIATE-RJ with result, source and reason), logged in one line and audited.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.exc import SQLAlchemyError

from db import NodeDatabase, add_audit_event
from dicom_node._pdu_meter import MeterLimits, PduMeter, metered
from dicom_node.handlers import AssociationPolicy

__all__ = ["GuardLimits", "GuardedAssociationServer", "IntakeGuard", "Rejection"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """An A-ASSOCIATE-RJ's parameters (PS3.8 Table 9-21) and the node's reason word."""

    reason: str
    result: int
    source: int
    diagnostic: int


#: Address outside ``allowed_addresses``: rejected-permanent, service-user, no-reason-given.
ADDRESS_NOT_ALLOWED = Rejection("address-not-allowed", 0x01, 0x01, 0x01)
#: All association slots taken: rejected-transient, service-provider (presentation related),
#: local-limit-exceeded.
ASSOCIATION_LIMIT = Rejection("association-limit", 0x02, 0x03, 0x02)
_PYNETDICOM_REASONS = {
    (0x01, 0x01, 0x03): "calling-ae-not-allowed",
    (0x01, 0x01, 0x07): "called-ae-not-recognized",
    (0x02, 0x03, 0x02): "connection-limit",
}


@dataclass(frozen=True)
class GuardLimits:
    """Timeouts and limits of the guard, from the node's settings."""

    handshake_timeout_s: float
    network_timeout_s: float
    acse_timeout_s: float
    max_associations: int
    max_pending_per_address: int
    max_pending_connections: int
    meter: MeterLimits


class IntakeGuard:
    """Admission of connections and associations, shared by all connection threads.

    Parameters
    ----------
    limits
        Timeouts and limits.
    policy
        Which source addresses may associate.
    database
        Where rejections are audited.
    tls
        The server's TLS context (its ``sslsocket_class`` meters reads), or ``None``.
    """

    def __init__(
        self,
        limits: GuardLimits,
        policy: AssociationPolicy,
        database: NodeDatabase,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits
        self._policy = policy
        self._database = database
        self._tls = tls
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._requested: set[Any] = set()
        #: Admitted associations that have not sent a DIMSE message yet, with admission time.
        self._silent: dict[Any, float] = {}

    # --- connections (accept thread and connection threads) ---------------------------------

    def admit(self, request: socket.socket, address: str) -> None:
        """Count a new connection from ``address`` as pending (accept thread).

        At a cap (per address, or in all) the *oldest* pending connection is closed, never the
        new one: a real sender's request follows its connect within milliseconds, so stalled
        peers, even from the sender's own address, cannot keep it out.
        """
        with self._lock:
            self._pending = [p for p in self._pending if p.sock.fileno() != -1]
            same = [p for p in self._pending if p.address == address]
            evicted: _Pending | None = None
            if len(same) >= self.limits.max_pending_per_address:
                evicted = min(same, key=lambda p: p.since)
            elif len(self._pending) >= self.limits.max_pending_connections:
                evicted = min(self._pending, key=lambda p: p.since)
            if evicted is not None:
                self._pending.remove(evicted)
            self._pending.append(_Pending(address, time.monotonic(), request))
        if evicted is not None:
            _log.warning(
                "pending connection from %s closed: too many connections without a request",
                evicted.address,
            )
            _shutdown(evicted.sock)
            self._audit(evicted.address, None, "pending-limit", None)

    def prepare(self, request: socket.socket, address: str) -> socket.socket | None:
        """Time-limit, TLS-handshake and meter an accepted connection (on its own thread).

        Returns ``None`` (after one log line) when the TLS handshake fails or times out.
        """
        request.settimeout(self.limits.handshake_timeout_s)
        meter = PduMeter(self.limits.meter, self._meter_reporter(address))
        # Re-wrapping detaches ``request``; the pending entry follows to the new socket under
        # the lock, so it is never taken for closed (and pruned) in between.
        with self._lock:
            if self._tls is not None:
                sock: socket.socket = self._tls.wrap_socket(
                    request, server_side=True, do_handshake_on_connect=False
                )
            else:
                sock = request
            ready = metered(sock, meter)
            for pending in self._pending:
                if pending.sock is request:
                    pending.sock = ready
        if isinstance(ready, ssl.SSLSocket):
            try:
                ready.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                _log.warning("TLS handshake with %s failed (%s)", address, type(exc).__name__)
                self._forget(ready)
                ready.close()
                return None
        return ready

    def _forget(self, sock: object) -> None:
        with self._lock:
            self._pending = [p for p in self._pending if p.sock is not sock]

    def _meter_reporter(self, address: str) -> Callable[[str], None]:
        def report(reason: str) -> None:
            _log.warning("association from %s dropped while receiving: %s", address, reason)
            self._audit(address, None, reason, None)

        return report

    # --- association events (association threads) -------------------------------------------

    def on_conn_open(self, event: Any) -> None:
        """EVT_CONN_OPEN: the A-ASSOCIATE-RQ must arrive within the handshake timeout (ARTIM)."""
        event.assoc.acse_timeout = self.limits.handshake_timeout_s

    def on_requested(self, event: Any) -> None:
        """EVT_REQUESTED: check the address and take an association slot, or reject."""
        assoc = event.assoc
        address = str(assoc.requestor.address)
        self._forget(_assoc_socket(assoc))
        if not self._policy.allows(address):
            self._reject(assoc, ADDRESS_NOT_ALLOWED)
            return
        victim = None
        with self._lock:
            self._requested = {a for a in self._requested if a.is_alive()}
            self._silent = {a: t for a, t in self._silent.items() if a in self._requested}
            if len(self._requested) >= self.limits.max_associations and self._silent:
                # A peer that associated and never sent a message gives way to a new one.
                victim = min(self._silent, key=self._silent.__getitem__)
                self._requested.discard(victim)
                del self._silent[victim]
            full = len(self._requested) >= self.limits.max_associations
            if not full:
                self._requested.add(assoc)
                self._silent[assoc] = time.monotonic()
        if victim is not None:
            self._evict_silent(victim)
        if full:
            self._reject(assoc, ASSOCIATION_LIMIT)
            return
        # Only now the negotiation timeout: a rejected peer that does not close is cut off by
        # ARTIM after the (shorter) handshake timeout.
        assoc.acse_timeout = self.limits.acse_timeout_s
        # Until its first message the association may idle only as long as a handshake takes
        # (pynetdicom's idle timer aborts it); on_dimse_recv then allows network_timeout_s.
        assoc.network_timeout = self.limits.handshake_timeout_s
        # A peer may think between messages, but never stall inside a PDU for longer.
        sock = _assoc_socket(assoc)
        if sock is not None:
            sock.settimeout(self.limits.network_timeout_s)

    def on_dimse_recv(self, event: Any) -> None:
        """EVT_DIMSE_RECV: the association is in use; it gets the full idle timeout."""
        assoc = event.assoc
        if assoc in self._silent:
            with self._lock:
                self._silent.pop(assoc, None)
            assoc.network_timeout = self.limits.network_timeout_s

    def _evict_silent(self, victim: Any) -> None:
        address = str(victim.requestor.address)
        _log.warning("silent association from %s closed to make room for a new one", address)
        sock = _assoc_socket(victim)
        if sock is not None:
            _shutdown(sock)
        self._audit(address, _calling_ae(victim), "silent-association-evicted", None)

    def on_conn_close(self, event: Any) -> None:
        """EVT_CONN_CLOSE: end a request-less association; remove a cut-off data set's file.

        pynetdicom writes a data set to a temporary file as it arrives and deletes it after the
        C-STORE handler; a transfer that never completes (dropped by the meter, or the peer
        went away) would leave it behind for good. Only the message still being received is
        touched: complete ones were handed on and reset already.
        """
        assoc = event.assoc
        self._forget(_assoc_socket(assoc))
        if assoc.requestor.primitive is None:
            # Closed before its A-ASSOCIATE-RQ: pynetdicom's association thread would wait out
            # the ACSE timeout for a request that cannot come, holding a connection slot of its
            # own count; an empty item ends that wait now (it reads as the timeout).
            assoc.dul.to_user_queue.put(None)
        message = getattr(assoc.dimse, "message", None)
        handle = getattr(message, "_data_set_file", None)
        path = getattr(message, "_data_set_path", None)
        if handle is not None:
            handle.close()
        if path is not None:
            Path(path).unlink(missing_ok=True)

    def on_rejected(self, event: Any) -> None:
        """EVT_REJECTED: pynetdicom's own rejections (calling AE title, limit) are reported."""
        assoc = event.assoc
        rj = assoc.acceptor.primitive
        key = (int(rj.result), int(rj.result_source), int(rj.diagnostic))
        reason = _PYNETDICOM_REASONS.get(key, "rejected")
        self._report(str(assoc.requestor.address), _calling_ae(assoc), reason, key)

    def _reject(self, assoc: Any, rejection: Rejection) -> None:
        assoc.acse.send_reject(rejection.result, rejection.source, rejection.diagnostic)
        key = (rejection.result, rejection.source, rejection.diagnostic)
        self._report(str(assoc.requestor.address), _calling_ae(assoc), rejection.reason, key)
        # Wait until the A-ASSOCIATE-RJ is on the wire and the peer closed (or ARTIM expired):
        # closing the socket right away would turn the reject into a dropped connection.
        assoc.kill()

    def _report(
        self, address: str, calling_ae: str | None, reason: str, rsd: tuple[int, int, int]
    ) -> None:
        _log.warning(
            "association rejected: %s (from %s, calling AE %s, result/source/reason %d/%d/%d)",
            reason,
            address,
            calling_ae or "-",
            *rsd,
        )
        self._audit(address, calling_ae, reason, rsd)

    def _audit(
        self,
        address: str,
        calling_ae: str | None,
        reason: str,
        rsd: tuple[int, int, int] | None,
    ) -> None:
        detail: dict[str, Any] = {"reason": reason}
        if rsd is not None:
            detail.update(result=rsd[0], source=rsd[1], diagnostic=rsd[2])
        try:
            add_audit_event(
                self._database,
                actor=calling_ae or "unknown",
                action="association.rejected",
                object_type="association",
                object_id=address,
                origin=address,
                detail=detail,
            )
        except SQLAlchemyError as exc:
            _log.error("rejection from %s not audited (%s)", address, type(exc).__name__)


@dataclass
class _Pending:
    """A connection without its A-ASSOCIATE-RQ yet; ``sock`` is its current socket object."""

    address: str
    since: float
    sock: socket.socket


def _assoc_socket(assoc: Any) -> socket.socket | None:
    transport = assoc.dul.socket
    return transport.socket if transport is not None else None


def _shutdown(sock: socket.socket) -> None:
    # shutdown, not close: the connection's own thread still owns the descriptor and closes it
    # when its read returns.
    with contextlib.suppress(OSError):  # closed meanwhile
        sock.shutdown(socket.SHUT_RDWR)


def _calling_ae(assoc: Any) -> str | None:
    primitive = assoc.requestor.primitive
    value = getattr(primitive, "calling_ae_title", None) if primitive is not None else None
    return str(value).strip() if value else None


class GuardedAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the :class:`IntakeGuard` in front.

    The accept thread only accepts and counts; the TLS handshake and the wait for the
    association request run on the connection's own thread under a timeout.
    """

    guard: IntakeGuard

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection without touching TLS (that happens on its own thread)."""
        if self.socket is None:  # pragma: no cover - only called while serving
            raise OSError("server not bound")
        sock, address = self.socket.accept()
        return sock, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Count the connection as pending (making room by closing the oldest one)."""
        self.guard.admit(request, str(client_address[0]))
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handshake, meter and hand over to pynetdicom, on the connection's thread."""
        address = str(client_address[0])
        try:
            sock = self.guard.prepare(request, address)
            if sock is None:
                self.shutdown_request(request)
                return
            self.finish_request(sock, client_address)
        # The connection thread's boundary: whatever goes wrong, one line and the socket
        # closed (pynetdicom's default prints the traceback to stderr).
        except Exception as exc:  # noqa: BLE001
            _log.warning("connection from %s failed (%s)", address, type(exc).__name__)
            self.shutdown_request(request)

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
        # pynetdicom's own shutdown also unregisters from the AE's server list, which this
        # server (made with AE.make_server, not AE.start_server) was never added to.
        socketserver.BaseServer.shutdown(self)
        self.server_close()
