"""The node's Storage SCP (pynetdicom).

Accepts C-ECHO (Verification, PS3.4 Annex A) and C-STORE of every storage SOP class
(PS3.4 Annex B) in the transfer syntaxes below; CT Image Storage and Enhanced CT Image Storage
are spooled and recorded, other classes are acknowledged and ignored by rule.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt

from db import NodeDatabase, flag_missing_files, stored_spool_paths
from dicom_node._guard import GuardedAssociationServer, GuardLimits, IntakeGuard
from dicom_node._log_scrub import install_scrubbing
from dicom_node._pdu_meter import MeteredSSLSocket, MeterLimits
from dicom_node.handlers import (
    AssociationPolicy,
    IntakeContext,
    handle_echo,
    handle_store,
)
from dicom_node.metrics import NodeMetrics
from dicom_node.spool import Spool
from pancreas_contracts import Settings

__all__ = ["SUPPORTED_TRANSFER_SYNTAXES", "VERIFICATION_SOP_CLASS", "StorageSCP"]

#: Verification SOP Class (PS3.4 Annex A).
VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"

_log = logging.getLogger(__name__)

#: Transfer syntaxes accepted for storage, all decodable for analysis (pydicom's RLE decoder,
#: pylibjpeg-libjpeg for JPEG, pyjpegls for JPEG-LS, pylibjpeg-openjpeg for JPEG 2000).
SUPPORTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)


class StorageSCP:
    """The node's DICOM listener.

    Parameters
    ----------
    settings
        AE title, port, allow-lists, TLS, timeouts and limits.
    database
        The node database, where every instance is recorded before it is acknowledged.
    metrics
        Counts the C-STORE answers and refusals (issue 27); ``None``: no counting.
    """

    def __init__(
        self, settings: Settings, database: NodeDatabase, metrics: NodeMetrics | None = None
    ) -> None:
        self._settings = settings
        self._context = IntakeContext(
            spool=Spool(settings.spool_dir),
            database=database,
            max_instance_bytes=int(settings.max_instance_mb * 1024 * 1024),
            relay_ae_titles=frozenset(settings.relay_ae_titles),
            metrics=metrics,
        )
        self._policy = AssociationPolicy.from_addresses(settings.allowed_addresses)
        self._database = database
        self._server: GuardedAssociationServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (useful when the settings ask for port 0)."""
        if self._server is None:
            return self._settings.port
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start listening in background threads (one per association).

        Raises
        ------
        OSError
            If the port cannot be bound.
        ValueError
            If the TLS configuration is incomplete.
        """
        # After the log setup, before the first data set: no log handler writes identifiers.
        install_scrubbing(keep_tracebacks=self._settings.log_level == "DEBUG")
        self._reconcile_spool()
        # Data sets are received straight into a file, never into memory (issue 22, D5). A
        # process-wide pynetdicom switch: every SCP in this process receives that way.
        _config.STORE_RECV_CHUNKED_DATASET = True
        ae = self._build_ae()
        tls = self._ssl_context()
        guard = IntakeGuard(self._guard_limits(), self._policy, self._database, tls)
        handlers: list[Any] = [
            (evt.EVT_C_ECHO, handle_echo),
            (evt.EVT_C_STORE, handle_store, [self._context]),
            (evt.EVT_CONN_OPEN, guard.on_conn_open),
            (evt.EVT_REQUESTED, guard.on_requested),
            (evt.EVT_REJECTED, guard.on_rejected),
            (evt.EVT_CONN_CLOSE, guard.on_conn_close),
            (evt.EVT_DIMSE_RECV, guard.on_dimse_recv),
        ]
        server = ae.make_server(  # returns an instance of server_class
            (self._settings.bind_address, self._settings.port),
            evt_handlers=handlers,
            server_class=GuardedAssociationServer,
        )
        if not isinstance(server, GuardedAssociationServer):  # pragma: no cover
            raise TypeError("pynetdicom did not use the guarded server class")
        server.guard = guard
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="scp-accept", daemon=True)
        self._thread.start()
        _log.info(
            "SCP %s listening on %s:%d",
            self._settings.ae_title,
            self._settings.bind_address,
            self.port,
        )

    def _reconcile_spool(self) -> None:
        spool = self._context.spool
        removed = spool.remove_partial_files()
        if removed:
            _log.info("removed %d partial spool files left by an earlier crash", removed)
        found = spool.reconcile(stored_spool_paths(self._database))
        if found.quarantined:
            _log.warning(
                "moved %d spool files without a database row to %s",
                len(found.quarantined),
                spool.quarantine,
            )
        flagged = flag_missing_files(self._database, found.missing)
        if flagged:
            _log.error("%d recorded instances have no spool file (flagged)", flagged)

    def _guard_limits(self) -> GuardLimits:
        s = self._settings
        return GuardLimits(
            handshake_timeout_s=s.handshake_timeout_s,
            network_timeout_s=s.network_timeout_s,
            acse_timeout_s=s.acse_timeout_s,
            max_associations=s.max_associations,
            max_pending_per_address=s.max_pending_per_address,
            max_pending_connections=s.max_pending_connections,
            meter=MeterLimits(s.max_pdu_bytes, self._context.max_instance_bytes),
        )

    def stop(self) -> None:
        """Stop listening; running associations are ended."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _build_ae(self) -> AE:
        s = self._settings
        ae = AE(ae_title=s.ae_title)
        # The guard keeps max_associations for associations past their request; pynetdicom's
        # own count also includes connections still pending, which the guard bounds apart.
        ae.maximum_associations = s.max_associations + s.max_pending_connections
        ae.acse_timeout = s.acse_timeout_s
        ae.dimse_timeout = s.dimse_timeout_s
        ae.network_timeout = s.network_timeout_s
        # Large P-DATA PDUs for big CT slices, but bounded: the PDU meter drops longer ones.
        ae.maximum_pdu_size = s.max_pdu_bytes
        ae.require_calling_aet = list(s.allowed_callers)
        ae.add_supported_context(VERIFICATION_SOP_CLASS)
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, list(SUPPORTED_TRANSFER_SYNTAXES))
        return ae

    def _ssl_context(self) -> ssl.SSLContext | None:
        s = self._settings
        if s.tls_certificate is None and s.tls_private_key is None:
            return None
        if s.tls_certificate is None or s.tls_private_key is None:
            raise ValueError("TLS needs both tls_certificate and tls_private_key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # Decrypted reads go through the PDU meter too.
        context.sslsocket_class = MeteredSSLSocket
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(s.tls_certificate), str(s.tls_private_key))
        if s.tls_ca_certificate is not None:
            # A CA given means mutual TLS: only peers with a certificate from it may connect.
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(s.tls_ca_certificate))
        return context
