"""C-STORE SCU destination (PS3.4 Annex B, Storage Service Class; SCU behaviour B.2.1).

One association per batch. Each SOP class in the batch is proposed twice: once with each
transfer syntax its files are encoded in, and once with Explicit and Implicit VR Little
Endian (the default transfer syntax every SCP supports, PS3.5 10.1) so that a peer that
refuses a compressed syntax still receives the object, decompressed.

Exactly once per (job, destination), issue 22: each object the peer confirms (a Success or
Warning C-STORE response, PS3.4 B.2.3) is handed to the :class:`DeliveryLedger`'s ``record``
before the next object is sent; the dispatcher commits it to the node database there. Objects
the ledger already holds are not sent again (they count as stored), so a retry after a crash or
a failed attempt sends only the rest. One window remains: a node killed between the peer's
response and that commit sends that one object again; receivers deduplicate by SOPInstanceUID
(Orthanc does), and nothing else is sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from db import DeliveryProtocol
from dicom_node._dispatch_files import ResultFile
from dicom_node._dispatch_types import (
    AttemptStatus,
    DeliveryLedger,
    DestinationOutcome,
    InstanceOutcome,
    InstanceStatus,
    describe_store_status,
    is_store_success,
    summarize_failures,
)

__all__ = ["CStoreDestination"]

_log = logging.getLogger(__name__)

_UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
#: PS3.8 9.3.2.2: presentation context IDs are the odd numbers 1-255, so at most 128.
_MAX_CONTEXTS = 128
#: Decompression failures of pydicom's pixel-data plugins.
_DECODE_ERRORS = (NotImplementedError, RuntimeError, ValueError, TypeError, AttributeError)


def _check_ae_title(value: str, what: str) -> None:
    # PS3.5 6.2, VR AE: 1-16 characters of the default repertoire, no backslash or controls.
    text = value.strip()
    if not 0 < len(text) <= 16 or "\\" in text or not text.isascii() or not text.isprintable():
        raise ValueError(f"{what} {value!r} is not a valid AE title (1-16 ASCII characters)")


@dataclass(frozen=True)
class CStoreDestination:
    """A DIMSE peer that receives result objects by C-STORE.

    Parameters
    ----------
    ae_title, host, port
        The peer (called AE title and its address).
    calling_ae_title
        The node's own AE title (settings ``ae_title``).
    acse_timeout_s, dimse_timeout_s, network_timeout_s
        pynetdicom's timeouts; the TCP connect timeout is the ACSE timeout.

    Raises
    ------
    ValueError
        If an AE title or the port is invalid.
    """

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = "PANCREAS_AI"
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 60.0
    network_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        _check_ae_title(self.ae_title, "destination AE title")
        _check_ae_title(self.calling_ae_title, "calling AE title")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range")

    @property
    def name(self) -> str:
        """``AE@host:port``, the name recorded with each attempt."""
        return f"{self.ae_title.strip()}@{self.host}:{self.port}"

    @property
    def protocol(self) -> DeliveryProtocol:
        """Always :attr:`db.DeliveryProtocol.C_STORE`."""
        return DeliveryProtocol.C_STORE

    def send(
        self,
        files: Sequence[ResultFile],
        *,
        job_id: str,
        ledger: DeliveryLedger | None = None,
    ) -> DestinationOutcome:
        """Send ``files`` over one association and check every C-STORE response.

        Parameters
        ----------
        files
            The batch; unreadable files are reported as not sent.
        job_id
            Only for log lines.
        ledger
            Objects this destination already stored (skipped, counted as stored) and where
            each newly confirmed object is recorded, one by one; default: none, no records.

        Returns
        -------
        DestinationOutcome
            ``SUCCESS`` only if every instance was answered 0x0000 or 0xBxxx (now or before).
        """
        ledger = ledger or DeliveryLedger()
        sendable = [f for f in files if f.error is None]
        todo = [f for f in sendable if f.sop_instance_uid not in ledger.delivered]
        if sendable and not todo:
            # Every readable object was stored by an earlier attempt: no association needed.
            skipped = tuple(_send_each(None, files, job_id, self.name, ledger))
            return self._finish(skipped, aborted=False, job_id=job_id)
        contexts = _requested_contexts(todo)
        if not sendable or len(contexts) > _MAX_CONTEXTS:
            why = "no readable result file" if not sendable else "more than 128 contexts needed"
            return self._outcome(AttemptStatus.NOTHING_SENDABLE, files, why)

        ae = AE(ae_title=self.calling_ae_title.strip())
        ae.acse_timeout = self.acse_timeout_s
        ae.dimse_timeout = self.dimse_timeout_s
        ae.network_timeout = self.network_timeout_s
        ae.connection_timeout = self.acse_timeout_s
        for abstract, syntaxes in contexts:
            ae.add_requested_context(abstract, list(syntaxes))
        try:
            assoc = ae.associate(self.host, self.port, ae_title=self.ae_title.strip())
        except (OSError, RuntimeError) as exc:  # a socket error pynetdicom did not absorb
            return self._outcome(AttemptStatus.CONNECTION_FAILED, files, type(exc).__name__)
        if not assoc.is_established:
            status, why = _why_not_established(assoc)
            _log.warning("job %s: %s to %s: %s", job_id, status.value, self.name, why)
            return self._outcome(status, files, why)

        try:
            instances = tuple(_send_each(assoc, files, job_id, self.name, ledger))
            aborted = not assoc.is_established
        finally:
            if assoc.is_established:
                assoc.release()
        return self._finish(instances, aborted=aborted, job_id=job_id)

    def _finish(
        self, instances: tuple[InstanceOutcome, ...], *, aborted: bool, job_id: str
    ) -> DestinationOutcome:
        """The attempt's outcome from its instances' outcomes."""
        if all(i.stored for i in instances):
            _log.info("job %s: %d instance(s) stored at %s", job_id, len(instances), self.name)
            return DestinationOutcome(self.name, self.protocol, AttemptStatus.SUCCESS, instances)
        status = AttemptStatus.ASSOCIATION_ABORTED if aborted else AttemptStatus.INSTANCE_FAILURES
        return DestinationOutcome(
            self.name, self.protocol, status, instances, summarize_failures(instances)
        )

    def _outcome(
        self, status: AttemptStatus, files: Sequence[ResultFile], why: str
    ) -> DestinationOutcome:
        """An attempt in which no instance reached the peer."""
        instances = tuple(
            InstanceOutcome(f.label, InstanceStatus.NOT_SENT, detail=f.error or why) for f in files
        )
        return DestinationOutcome(self.name, self.protocol, status, instances, why)


def _requested_contexts(files: Sequence[ResultFile]) -> list[tuple[str, tuple[str, ...]]]:
    """Presentation contexts to propose: per SOP class, each file syntax, then the LE pair."""
    contexts: list[tuple[str, tuple[str, ...]]] = []
    for f in files:
        own = (f.sop_class_uid, (f.transfer_syntax_uid,))
        if f.transfer_syntax_uid not in _UNCOMPRESSED and own not in contexts:
            contexts.append(own)
        fallback = (f.sop_class_uid, _UNCOMPRESSED)
        if fallback not in contexts:
            contexts.append(fallback)
    return contexts


def _why_not_established(assoc: Any) -> tuple[AttemptStatus, str]:
    """Name why an association request did not end in an established association."""
    response = getattr(assoc.acceptor, "primitive", None)
    if assoc.is_rejected and response is not None:
        # PS3.8 7.1.1.9: A-ASSOCIATE-RJ result, source and reason/diagnostic.
        return AttemptStatus.ASSOCIATION_REJECTED, (
            f"association rejected: {response.result_str}, source {response.source_str}, "
            f"reason {response.reason_str}"
        )
    if response is None:
        return AttemptStatus.CONNECTION_FAILED, (
            "no connection or no A-ASSOCIATE response within the ACSE timeout"
        )
    if getattr(response, "result", None) == 0x00 and not assoc.accepted_contexts:
        return AttemptStatus.NO_ACCEPTED_CONTEXT, "no proposed presentation context was accepted"
    return AttemptStatus.ASSOCIATION_ABORTED, "association aborted during negotiation"


def _send_each(
    assoc: Any, files: Sequence[ResultFile], job_id: str, peer: str, ledger: DeliveryLedger
) -> list[InstanceOutcome]:
    """C-STORE each file not in ``ledger``; record each confirmed one before the next."""
    outcomes: list[InstanceOutcome] = []
    for number, f in enumerate(files, start=1):
        if f.error is not None:
            outcomes.append(InstanceOutcome(f.label, InstanceStatus.NOT_SENT, detail=f.error))
        elif f.sop_instance_uid in ledger.delivered:
            outcomes.append(ledger.skipped(f.sop_instance_uid))
        elif assoc is None or not assoc.is_established:
            outcomes.append(
                InstanceOutcome(f.label, InstanceStatus.NOT_SENT, detail="association ended")
            )
        else:
            outcome = _send_one(assoc, f, (number - 1) % 0xFFFF + 1)
            if outcome.stored:
                ledger.record(f.sop_instance_uid)
            else:
                _log.warning(
                    "job %s: %s not stored at %s: %s", job_id, f.label, peer, outcome.detail
                )
            outcomes.append(outcome)
    return outcomes


def _send_one(assoc: Any, f: ResultFile, message_id: int) -> InstanceOutcome:
    """C-STORE one file (PS3.7 9.1.1) and classify its response status (PS3.4 B.2.3)."""
    decompress = _needs_decompression(assoc.accepted_contexts, f)
    if decompress is None:
        return InstanceOutcome(
            f.label,
            InstanceStatus.NOT_SENT,
            detail=(
                f"no accepted presentation context for {UID(f.sop_class_uid).name} "
                f"in {UID(f.transfer_syntax_uid).name}"
            ),
        )
    try:
        dataset: Dataset = dcmread(f.path)
    except (OSError, InvalidDicomError, ValueError, EOFError) as exc:
        return InstanceOutcome(
            f.label, InstanceStatus.NOT_SENT, detail=f"unreadable ({type(exc).__name__})"
        )
    if decompress:
        try:
            # Changing the transfer syntax does not make a new instance (PS3.5 10.1).
            dataset.decompress(generate_instance_uid=False)
        except _DECODE_ERRORS as exc:
            return InstanceOutcome(
                f.label,
                InstanceStatus.NOT_SENT,
                detail=f"peer refused {UID(f.transfer_syntax_uid).name} and decompression "
                f"failed ({type(exc).__name__})",
            )
    try:
        response = assoc.send_c_store(dataset, msg_id=message_id)
    except (ValueError, AttributeError, RuntimeError) as exc:
        return InstanceOutcome(
            f.label, InstanceStatus.NOT_SENT, detail=f"not sent ({type(exc).__name__})"
        )
    if "Status" not in response:
        return InstanceOutcome(
            f.label,
            InstanceStatus.FAILED,
            detail="no C-STORE response (DIMSE timeout or association aborted)",
        )
    code = int(response.Status)
    if code == 0x0000:
        return InstanceOutcome(f.label, InstanceStatus.STORED, code)
    named = describe_store_status(code)
    if is_store_success(code):
        return InstanceOutcome(f.label, InstanceStatus.STORED_WITH_WARNING, code, named)
    return InstanceOutcome(f.label, InstanceStatus.FAILED, code, named)


def _needs_decompression(accepted: Sequence[Any], f: ResultFile) -> bool | None:
    """``False``: send as is; ``True``: decompress first; ``None``: no usable context."""
    syntaxes = {
        str(cx.transfer_syntax[0]) for cx in accepted if cx.abstract_syntax == f.sop_class_uid
    }
    if f.transfer_syntax_uid in syntaxes:
        return False
    if not syntaxes & set(_UNCOMPRESSED):
        return None
    try:
        syntax = UID(f.transfer_syntax_uid)
        if syntax.is_compressed:
            return True
        # pynetdicom converts between the uncompressed little-endian encodings itself.
        return False if syntax.is_little_endian else None
    except ValueError:  # a transfer syntax pydicom does not know: only its own context fits
        return None
