"""DIMSE event handlers of the node's SCP.

The C-STORE handler only checks, saves and records (PS3.4 Annex B, Storage Service Class);
series assembly, routing and analysis happen on other threads. Every refusal is a named
:class:`~dicom_node.statuses.StoreStatus` and one log line with UIDs only, never patient data.

Each instance is recorded with the AE title that routing rules see as its caller
(:func:`routing_calling_ae`): the association's calling AE title, or, when that caller is a
trusted relay (``relay_ae_titles``, e.g. Orthanc), the *Move Originator Application Entity
Title* (0000,1030; PS3.7 9.1.1.1) its C-STORE request names, the scanner that sent the series
to the relay. Which callers may associate at all is checked on the association's own calling
AE title (``allowed_callers``), never on a relayed one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import CTImageStorage, EnhancedCTImageStorage
from sqlalchemy.exc import SQLAlchemyError

from db import IngestOutcome, NodeDatabase, store_instance
from dicom_node._instance_checks import (
    check_pixel_module,
    content_sha256,
    inflated_size_exceeds,
    same_content,
)
from dicom_node.metrics import NodeMetrics
from dicom_node.spool import Spool, SpoolFullError, is_valid_uid
from dicom_node.statuses import StoreStatus
from pancreas_contracts.settings import clean_ae_title

__all__ = [
    "CT_STORAGE_CLASSES",
    "AssociationPolicy",
    "IntakeContext",
    "handle_echo",
    "handle_store",
    "routing_calling_ae",
]

_log = logging.getLogger(__name__)

#: SOP classes the node analyses; other storage classes are acknowledged and ignored by rule.
CT_STORAGE_CLASSES: frozenset[str] = frozenset({str(CTImageStorage), str(EnhancedCTImageStorage)})

#: Values longer than this stay on disk while the checks run (pydicom's deferred read).
_DEFER_BYTES = 1 << 16


@dataclass(frozen=True)
class IntakeContext:
    """What the C-STORE handler needs, built once by the SCP."""

    spool: Spool
    database: NodeDatabase
    max_instance_bytes: int
    #: Calling AE titles trusted to name the originating AE (Move Originator AE Title).
    relay_ae_titles: frozenset[str] = frozenset()
    #: Counts every answered request and each refusal by status name; ``None``: no counting.
    metrics: NodeMetrics | None = None


@dataclass(frozen=True)
class AssociationPolicy:
    """Which source addresses may open an association (AE titles are checked by pynetdicom)."""

    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_addresses(cls, addresses: Sequence[str]) -> AssociationPolicy:
        """Build from IP addresses or CIDR networks.

        Raises
        ------
        ValueError
            If an entry is neither.
        """
        return cls(tuple(ipaddress.ip_network(a, strict=False) for a in addresses))

    def allows(self, address: str) -> bool:
        """Whether ``address`` may connect (an empty list allows every address)."""
        if not self.allowed_networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.allowed_networks)


def handle_echo(event: Any) -> int:
    """C-ECHO (PS3.4 Annex A, Verification Service Class)."""
    return int(StoreStatus.SUCCESS)


def routing_calling_ae(
    association_ae: str, move_originator_ae: object, relay_ae_titles: frozenset[str]
) -> str:
    """The AE title an instance is recorded with (and its series routed by).

    Parameters
    ----------
    association_ae
        The association's calling AE title (A-ASSOCIATE-RQ).
    move_originator_ae
        The C-STORE request's Move Originator Application Entity Title (0000,1030), or
        ``None`` when absent.
    relay_ae_titles
        Calling AE titles trusted to name the originator (``Settings.relay_ae_titles``).

    Returns
    -------
    str
        The originator when the caller is a trusted relay and the originator is a valid,
        non-empty AE title (without padding); the association's calling AE title otherwise.
    """
    caller = association_ae.strip()
    if caller not in relay_ae_titles or move_originator_ae is None:
        return caller
    originator = clean_ae_title(move_originator_ae)
    if originator is None:
        if str(move_originator_ae).strip():
            _log.warning(
                "C-STORE from relay %s: Move Originator AE Title is not a valid AE title; "
                "recorded with the relay's own AE title",
                caller,
            )
        return caller
    return originator


def handle_store(event: Any, context: IntakeContext) -> int:
    """C-STORE: check, write durably, record, then answer.

    The data set arrives as a file (pynetdicom's chunked receive, its size already bounded by
    the PDU meter). Success (0x0000) is returned only after the instance is fsynced in the
    spool and its row is committed, so an acknowledged instance survives a crash. An
    unexpected error is one log line (the traceback only at DEBUG) and a Processing failure;
    no file is left without its row.
    """
    status = _answer(event, context)
    if context.metrics is not None:
        context.metrics.instance_received(status)
    return int(status)


def _answer(event: Any, context: IntakeContext) -> StoreStatus:
    try:
        return _store(event, context)
    # The handler's last line of defence: pynetdicom would answer 0xC211 and log the whole
    # chained traceback; one line and a named status instead.
    except Exception as exc:  # noqa: BLE001
        _log.error(
            "C-STORE of instance %s failed unexpectedly (%s); answered Processing failure",
            getattr(event.request, "AffectedSOPInstanceUID", "?"),
            type(exc).__name__,
            exc_info=_log.isEnabledFor(logging.DEBUG),
        )
        return StoreStatus.PROCESSING_FAILURE


def _store(event: Any, context: IntakeContext) -> StoreStatus:
    calling_ae = routing_calling_ae(
        str(event.assoc.requestor.ae_title),
        getattr(event.request, "MoveOriginatorApplicationEntityTitle", None),
        context.relay_ae_titles,
    )
    received = Path(event.dataset_path)
    # The presentation context's transfer syntax is the file's (pynetdicom writes its meta).
    transfer_syntax = getattr(getattr(event, "context", None), "transfer_syntax", None)
    status = _check_size(received, context.max_instance_bytes, transfer_syntax)
    if status is not StoreStatus.SUCCESS:
        return status
    dataset = _parse(received)
    if dataset is None:
        _log.warning("C-STORE refused: data set cannot be parsed")
        return StoreStatus.CANNOT_PARSE
    status = _check_identity(dataset, str(event.request.AffectedSOPClassUID))
    if status is not StoreStatus.SUCCESS:
        return status
    series_uid = str(dataset.SeriesInstanceUID)
    if str(dataset.SOPClassUID) not in CT_STORAGE_CLASSES:
        _log.info(
            "instance of series %s ignored by rule: SOP class %s is not CT",
            series_uid,
            dataset.SOPClassUID,
        )
        return StoreStatus.SUCCESS
    problem = check_pixel_module(dataset)
    if problem is not None:
        _log.warning(
            "C-STORE refused for series %s: cannot decode (%s)", series_uid, problem.reason
        )
        if problem.in_pixel_data:
            return StoreStatus.CORRUPT_PIXEL_DATA
        return StoreStatus.PIXEL_MODULE_INVALID
    return _save(dataset, received, calling_ae, context)


def _check_size(received: Path, limit: int, transfer_syntax: str | None) -> StoreStatus:
    if received.stat().st_size > limit:
        _log.warning("C-STORE refused: instance exceeds the limit of %d bytes", limit)
        return StoreStatus.INSTANCE_TOO_LARGE
    try:
        inflated_too_large = inflated_size_exceeds(received, limit, transfer_syntax)
    except ValueError:
        _log.warning("C-STORE refused: deflated data set cannot be inflated")
        return StoreStatus.CANNOT_PARSE
    if inflated_too_large:
        _log.warning("C-STORE refused: deflated data set inflates past %d bytes", limit)
        return StoreStatus.INFLATED_TOO_LARGE
    return StoreStatus.SUCCESS


def _parse(received: Path) -> Dataset | None:
    try:
        # Large values (pixel data) stay on disk until a check needs them.
        return dcmread(received, force=True, defer_size=_DEFER_BYTES)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, TypeError):
        return None


def _check_identity(dataset: Dataset, requested_sop_class: str) -> StoreStatus:
    uids = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
    try:
        values = [dataset.get(keyword) for keyword in uids]
    except (ValueError, TypeError, KeyError):
        return StoreStatus.CANNOT_PARSE
    if not all(is_valid_uid(str(v)) if v else False for v in values):
        missing = [
            k for k, v in zip(uids, values, strict=True) if not v or not is_valid_uid(str(v))
        ]
        _log.warning("C-STORE refused: missing or invalid %s", ", ".join(missing))
        return StoreStatus.MISSING_REQUIRED_UID
    if str(values[0]) != requested_sop_class:
        _log.warning("C-STORE refused: SOP Class UID differs from the request")
        return StoreStatus.SOP_CLASS_MISMATCH
    return StoreStatus.SUCCESS


def _save(dataset: Dataset, received: Path, calling_ae: str, context: IntakeContext) -> StoreStatus:
    series_uid = str(dataset.SeriesInstanceUID)
    path = context.spool.path_for(
        str(dataset.StudyInstanceUID), series_uid, str(dataset.SOPInstanceUID)
    )
    placed: list[Path] = []
    committed = False

    def place() -> None:
        context.spool.place(received, path)
        placed.append(path)

    try:
        outcome = store_instance(
            context.database,
            study_instance_uid=str(dataset.StudyInstanceUID),
            series_instance_uid=series_uid,
            sop_instance_uid=str(dataset.SOPInstanceUID),
            sop_class_uid=str(dataset.SOPClassUID),
            transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
            spool_path=str(path),
            calling_ae=calling_ae,
            modality=str(dataset.get("Modality", "")) or None,
            patient_id=str(dataset.get("PatientID", "")) or None,
            accession_number=str(dataset.get("AccessionNumber", "")) or None,
            study_date=_study_date(dataset),
            requesting_service=str(dataset.get("RequestingService", "")) or None,
            content_sha256=content_sha256(received),
            place_file=place,
            same_content=lambda stored: same_content(Path(stored), received),
        )
        committed = True
    except SpoolFullError:
        _log.error("C-STORE refused for series %s: spool disk full", series_uid)
        return StoreStatus.OUT_OF_RESOURCES
    except OSError as exc:
        _log.error(
            "C-STORE refused for series %s: spool write failed (%s)", series_uid, exc.strerror
        )
        return StoreStatus.OUT_OF_RESOURCES
    except SQLAlchemyError as exc:
        _log.error(
            "C-STORE refused for series %s: database error (%s)", series_uid, type(exc).__name__
        )
        return StoreStatus.DATABASE_UNAVAILABLE
    finally:
        # A file moved into place whose row did not commit would be an orphan (D10).
        if placed and not committed:
            path.unlink(missing_ok=True)
    if outcome is IngestOutcome.CONFLICT:
        _log.warning(
            "C-STORE refused for series %s: instance %s already stored with other content",
            series_uid,
            dataset.SOPInstanceUID,
        )
        return StoreStatus.DUPLICATE_SOP_INSTANCE
    return StoreStatus.SUCCESS


def _study_date(dataset: Dataset) -> date | None:
    value = str(dataset.get("StudyDate", "") or "")
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8])) if len(value) == 8 else None
    except ValueError:
        return None
