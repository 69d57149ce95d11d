"""Byte meter on an association's socket: PDU and instance sizes enforced while receiving.

pynetdicom reads a whole PDU into memory and writes a C-STORE data set to disk before any
handler runs, so a size limit checked in the C-STORE handler comes too late (issue 22, D5).
The meter sees every byte the DUL reads (PS3.8 9.3.1 PDU header; 9.3.5 P-DATA-TF with its
Presentation Data Value items; E.2 message control header) and raises
:class:`PduLimitError` as soon as a PDU is longer than announced or one message's data set
grows past the instance limit. pynetdicom turns that error into a closed transport
connection (event 17), so nothing larger than the limits is ever buffered.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MeteredSSLSocket", "MeteredSocket", "PduLimitError", "PduMeter", "metered"]

_P_DATA_TF = 0x04
_HEADER = 6  # PDU header and PDV item header are both 6 bytes (PS3.8 9.3.1, 9.3.5.1)
#: Non-P-DATA PDUs (association negotiation, release, abort) are small; an A-ASSOCIATE-RQ
#: proposing every storage class with a dozen transfer syntaxes stays well under this.
_MAX_CONTROL_PDU = 1 << 20


class PduLimitError(OSError):
    """The peer sent more than the node accepts; the connection is dropped."""


@dataclass(frozen=True)
class MeterLimits:
    """Limits of one connection: announced PDU size and largest data set."""

    max_pdu_bytes: int
    max_dataset_bytes: int


class PduMeter:
    """Incremental parser of the received byte stream that only counts.

    Parameters
    ----------
    limits
        The PDU and data set limits.
    on_limit
        Called once with a short reason before :class:`PduLimitError` is raised.
    """

    def __init__(self, limits: MeterLimits, on_limit: Callable[[str], None]) -> None:
        self._limits = limits
        self._on_limit = on_limit
        self._header = bytearray()
        self._pdu_left = 0
        self._in_pdu = False
        self._pdu_type = 0
        self._item_header = bytearray()
        self._item_left = 0
        self._item_is_data = False
        self._item_is_last = False
        self._dataset_bytes = 0

    def feed(self, data: bytes) -> None:
        """Account for ``data`` as just read from the socket.

        Raises
        ------
        PduLimitError
            If a limit is exceeded.
        """
        view = memoryview(data)
        while view:
            if not self._in_pdu:
                view = self._read_pdu_header(view)
            elif self._pdu_type != _P_DATA_TF:
                view = self._skip(view)
            elif self._item_left == 0:
                view = self._read_item_header(view)
            else:
                view = self._read_item(view)

    def _fail(self, reason: str) -> None:
        self._on_limit(reason)
        raise PduLimitError(reason)

    def _read_pdu_header(self, view: memoryview) -> memoryview:
        take = min(_HEADER - len(self._header), len(view))
        self._header += view[:take]
        if len(self._header) == _HEADER:
            self._pdu_type = self._header[0]
            length = int.from_bytes(self._header[2:6], "big")
            self._header.clear()
            limit = (
                self._limits.max_pdu_bytes + _HEADER
                if self._pdu_type == _P_DATA_TF
                else _MAX_CONTROL_PDU
            )
            if length > limit:
                self._fail("pdu-too-large")
            self._pdu_left = length
            self._in_pdu = length > 0
        return view[take:]

    def _consume_pdu(self, count: int) -> None:
        self._pdu_left -= count
        if self._pdu_left == 0:
            self._in_pdu = False
            self._item_header.clear()
            self._item_left = 0

    def _skip(self, view: memoryview) -> memoryview:
        take = min(self._pdu_left, len(view))
        self._consume_pdu(take)
        return view[take:]

    def _read_item_header(self, view: memoryview) -> memoryview:
        take = min(_HEADER - len(self._item_header), len(view), self._pdu_left)
        self._item_header += view[:take]
        self._consume_pdu(take)
        if len(self._item_header) == _HEADER:
            item_length = int.from_bytes(self._item_header[0:4], "big")
            control = self._item_header[5]
            self._item_header.clear()
            self._item_left = max(item_length - 2, 0)
            self._item_is_data = not control & 0x01
            self._item_is_last = bool(control & 0x02)
            if self._item_left == 0:
                self._end_item()
        return view[take:]

    def _read_item(self, view: memoryview) -> memoryview:
        take = min(self._item_left, len(view), self._pdu_left)
        self._item_left -= take
        if self._item_is_data:
            self._dataset_bytes += take
            if self._dataset_bytes > self._limits.max_dataset_bytes:
                self._fail("instance-too-large")
        self._consume_pdu(take)
        if self._item_left == 0:
            self._end_item()
        return view[take:]

    def _end_item(self) -> None:
        if self._item_is_data and self._item_is_last:
            self._dataset_bytes = 0


class MeteredSocket(socket.socket):
    """A plain TCP socket whose reads go through a :class:`PduMeter`."""

    meter: PduMeter | None = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read like :meth:`socket.socket.recv` and meter what was read."""
        data = super().recv(bufsize, flags)
        if self.meter is not None and data:
            self.meter.feed(data)
        return data


class MeteredSSLSocket(ssl.SSLSocket):
    """A TLS socket whose decrypted reads go through a :class:`PduMeter`."""

    meter: PduMeter | None = None

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        """Read like :meth:`ssl.SSLSocket.recv` and meter what was read."""
        data = super().recv(buflen, flags)
        if self.meter is not None and data:
            self.meter.feed(data)
        return data


def metered(sock: socket.socket, meter: PduMeter) -> socket.socket:
    """``sock`` with ``meter`` on its reads (a plain socket is re-made on the same descriptor).

    A TLS socket must come from a context whose ``sslsocket_class`` is
    :class:`MeteredSSLSocket`.
    """
    if isinstance(sock, MeteredSSLSocket):
        sock.meter = meter
        return sock
    timeout = sock.gettimeout()
    plain = MeteredSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    plain.settimeout(timeout)
    plain.meter = meter
    return plain
