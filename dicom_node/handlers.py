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
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, CTImageStorage, EnhancedCTImageStorage
from sqlalchemy.exc import SQLAlchemyError

from db import NodeDatabase, record_instance
from dicom_node.spool import Spool, SpoolFullError, is_valid_uid
from dicom_node.statuses import StoreStatus
from pancreas_contracts.settings import clean_ae_title

__all__ = [
    "CT_STORAGE_CLASSES",
    "AssociationPolicy",
    "IntakeContext",
    "handle_echo",
    "handle_requested",
    "handle_store",
    "routing_calling_ae",
]

_log = logging.getLogger(__name__)

#: SOP classes the node analyses; other storage classes are acknowledged and ignored by rule.
CT_STORAGE_CLASSES: frozenset[str] = frozenset({str(CTImageStorage), str(EnhancedCTImageStorage)})

# ACSE A-ASSOCIATE-RJ values (PS3.8 9.3.4): rejected-permanent, by the service user.
_REJECT_PERMANENT = 0x01
_SOURCE_SERVICE_USER = 0x01
_DIAG_NO_REASON = 0x01


@dataclass(frozen=True)
class IntakeContext:
    """What the C-STORE handler needs, built once by the SCP."""

    spool: Spool
    database: NodeDatabase
    max_instance_bytes: int
    #: Calling AE titles trusted to name the originating AE (Move Originator AE Title).
    relay_ae_titles: frozenset[str] = frozenset()


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


def handle_requested(event: Any, policy: AssociationPolicy) -> None:
    """EVT_REQUESTED: reject associations from addresses outside the allow-list."""
    address = str(event.assoc.requestor.address)
    if not policy.allows(address):
        _log.warning("association rejected: source address not allowed")
        event.assoc.acse.send_reject(_REJECT_PERMANENT, _SOURCE_SERVICE_USER, _DIAG_NO_REASON)


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

    Success (0x0000) is returned only after the instance is fsynced in the spool and its row is
    committed, so an acknowledged instance survives a crash.
    """
    calling_ae = routing_calling_ae(
        str(event.assoc.requestor.ae_title),
        getattr(event.request, "MoveOriginatorApplicationEntityTitle", None),
        context.relay_ae_titles,
    )
    try:
        payload: bytes = event.encoded_dataset(include_meta=True)
    except (ValueError, AttributeError, KeyError) as exc:
        _log.warning(
            "C-STORE refused: cannot encode the received data set (%s)", type(exc).__name__
        )
        return int(StoreStatus.CANNOT_PARSE)
    if len(payload) > context.max_instance_bytes:
        _log.warning("C-STORE refused: instance of %d bytes exceeds the limit", len(payload))
        return int(StoreStatus.INSTANCE_TOO_LARGE)
    dataset = _parse(payload)
    if dataset is None:
        _log.warning("C-STORE refused: data set cannot be parsed")
        return int(StoreStatus.CANNOT_PARSE)
    status = _check_identity(dataset, str(event.request.AffectedSOPClassUID))
    if status is not StoreStatus.SUCCESS:
        return int(status)
    if str(dataset.SOPClassUID) not in CT_STORAGE_CLASSES:
        _log.info(
            "instance of series %s ignored by rule: SOP class %s is not CT",
            dataset.SeriesInstanceUID,
            dataset.SOPClassUID,
        )
        return int(StoreStatus.SUCCESS)
    if not _pixel_data_is_whole(dataset):
        _log.warning(
            "C-STORE refused for series %s: corrupt or truncated pixel data",
            dataset.SeriesInstanceUID,
        )
        return int(StoreStatus.CORRUPT_PIXEL_DATA)
    return int(_save(dataset, payload, calling_ae, context))


def _parse(payload: bytes) -> Dataset | None:
    try:
        return dcmread(BytesIO(payload), force=True)
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


def _pixel_data_is_whole(dataset: Dataset) -> bool:
    """Check the Image Pixel module's sizes (PS3.3 C.7.6.3) and the encapsulation (PS3.5 A.4)."""
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        bits = int(dataset.BitsAllocated)
        samples = int(dataset.get("SamplesPerPixel", 1))
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        pixel_data: bytes = dataset.PixelData
    except (AttributeError, ValueError, TypeError, KeyError):
        return False
    if rows < 1 or columns < 1 or frames < 1 or bits not in (8, 16, 32):
        return False
    transfer_syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    if not transfer_syntax.is_compressed:
        return len(pixel_data) >= rows * columns * samples * (bits // 8) * frames
    try:
        fragments = list(generate_frames(pixel_data, number_of_frames=frames))
    except (ValueError, KeyError, TypeError, EOFError):
        return False
    return len(fragments) == frames and all(len(f) > 2 for f in fragments)


def _save(dataset: Dataset, payload: bytes, calling_ae: str, context: IntakeContext) -> StoreStatus:
    series_uid = str(dataset.SeriesInstanceUID)
    path = context.spool.path_for(
        str(dataset.StudyInstanceUID), series_uid, str(dataset.SOPInstanceUID)
    )
    try:
        context.spool.write(path, payload)
    except SpoolFullError:
        _log.error("C-STORE refused for series %s: spool disk full", series_uid)
        return StoreStatus.OUT_OF_RESOURCES
    except OSError as exc:
        _log.error(
            "C-STORE refused for series %s: spool write failed (%s)", series_uid, exc.strerror
        )
        return StoreStatus.OUT_OF_RESOURCES
    try:
        record_instance(
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
        )
    except SQLAlchemyError as exc:
        _log.error(
            "C-STORE refused for series %s: database error (%s)", series_uid, type(exc).__name__
        )
        return StoreStatus.DATABASE_UNAVAILABLE
    return StoreStatus.SUCCESS


def _study_date(dataset: Dataset) -> date | None:
    value = str(dataset.get("StudyDate", "") or "")
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8])) if len(value) == 8 else None
    except ValueError:
        return None
