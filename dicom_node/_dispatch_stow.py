"""DICOMweb STOW-RS destination (PS3.18 10.5, Store Transaction).

The batch is one ``POST <base>/studies`` with a ``multipart/related; type="application/dicom"``
payload (PS3.18 Table 10.5.1-1), one PS3.10 file per part, streamed from disk. The response
(PS3.18 10.5.3) is read as a Store Instances Response Module (PS3.18 Annex I, Table I.1-1) in
DICOM JSON (PS3.18 Annex F): ReferencedSOPSequence (0008,1199) lists the stored instances, with
a WarningReason (0008,1196, Table I.2-1) if any; FailedSOPSequence (0008,1198) the failed ones
with their FailureReason (0008,1197, Table I.2-2); OtherFailuresSequence (0008,119A) failures
not tied to one instance.

Exactly once per (job, destination), issue 22, at the request's granularity: once a response
is read, every instance it confirms is handed to the :class:`DeliveryLedger`'s ``record`` (the
dispatcher commits it to the node database); instances the ledger already holds are left out
of the request (they count as stored). A node killed between the response and those commits
sends that request's instances again; origin servers deduplicate by SOPInstanceUID (Orthanc
does).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from db import DeliveryProtocol
from dicom_node._dispatch_files import ResultFile
from dicom_node._dispatch_types import (
    AttemptStatus,
    DeliveryLedger,
    DestinationOutcome,
    InstanceOutcome,
    InstanceStatus,
    describe_store_status,
    summarize_failures,
)

__all__ = [
    "StoreInstancesResponse",
    "StowDestination",
    "describe_stow_reason",
    "parse_store_response",
]

_log = logging.getLogger(__name__)

_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_OTHER_FAILURES_SEQUENCE = "0008119A"
_FAILURE_REASON = "00081197"
_WARNING_REASON = "00081196"
#: PS3.18 Table I.2-2: the one STOW-RS failure reason that is not a C-STORE status.
_TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
_CHUNK = 1 << 20
_MAX_RESPONSE = 16 << 20  # a Store Instances Response for a few result objects is small


@dataclass(frozen=True)
class StowDestination:
    """A DICOMweb origin server that receives result objects by STOW-RS.

    Parameters
    ----------
    base_url
        The DICOMweb service root (settings ``stow_url``, e.g. ``http://host:8042/dicom-web``);
        requests go to ``<base_url>/studies``.
    username, password
        HTTP basic authentication (RFC 7617), sent with the first request. Without
        ``username``, user information in ``base_url`` is used; without either, none.
    timeout_s
        Socket timeout of the request.

    Raises
    ------
    ValueError
        If ``base_url`` is not an http(s) URL.
    """

    base_url: str
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("stow_url must be an http:// or https:// URL")

    @property
    def name(self) -> str:
        """The service URL without credentials, query or fragment (recorded with attempts)."""
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(
            (parts.scheme, _netloc(parts), parts.path.rstrip("/"), "", "")
        )

    @property
    def protocol(self) -> DeliveryProtocol:
        """Always :attr:`db.DeliveryProtocol.STOW_RS`."""
        return DeliveryProtocol.STOW_RS

    @property
    def studies_url(self) -> str:
        """``<base_url>/studies`` (PS3.18 10.5.1, Table 10.5.1-1)."""
        parts = urllib.parse.urlsplit(self.base_url)
        path = parts.path.rstrip("/") + "/studies"
        return urllib.parse.urlunsplit((parts.scheme, _netloc(parts), path, parts.query, ""))

    def _credentials(self) -> tuple[str, str] | None:
        """``username``/``password``, else the URL's user information, else ``None``."""
        if self.username is not None:
            secret = self.password.get_secret_value() if self.password is not None else ""
            return self.username, secret
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.username is None:
            return None
        return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")

    def send(
        self,
        files: Sequence[ResultFile],
        *,
        job_id: str,
        ledger: DeliveryLedger | None = None,
    ) -> DestinationOutcome:
        """POST ``files`` in one STOW-RS request and read the per-instance outcome.

        Parameters
        ----------
        files
            The batch; unreadable files are reported as not sent.
        job_id
            Only for log lines.
        ledger
            Instances this destination already stored (left out, counted as stored) and where
            the instances the response confirms are recorded; default: none, no records.

        Returns
        -------
        DestinationOutcome
            ``SUCCESS`` only if every instance is confirmed stored (now or before).
        """
        ledger = ledger or DeliveryLedger()
        readable = [f for f in files if f.error is None]
        if not readable:
            return self._nothing_sent(files, AttemptStatus.NOTHING_SENDABLE, "no readable file")
        sendable = [f for f in readable if f.sop_instance_uid not in ledger.delivered]
        if not sendable:
            # Every readable instance was stored by an earlier request: nothing to POST.
            return self._all_stored_before(files, ledger)
        boundary = uuid.uuid4().hex
        try:
            length, body = _multipart([f.path for f in sendable], boundary)
        except OSError as exc:
            return self._nothing_sent(
                files, AttemptStatus.NOTHING_SENDABLE, f"result file unreadable ({exc.strerror})"
            )
        request = urllib.request.Request(self.studies_url, data=body, method="POST")
        request.add_header(
            "Content-Type", f'multipart/related; type="application/dicom"; boundary={boundary}'
        )
        request.add_header("Content-Length", str(length))
        request.add_header("Accept", "application/dicom+json")
        credentials = self._credentials()
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode("ascii")
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                http_status, payload = int(response.status), response.read(_MAX_RESPONSE)
        except urllib.error.HTTPError as exc:
            with exc:
                http_status, payload = int(exc.code), exc.read(_MAX_RESPONSE)
        except urllib.error.URLError as exc:
            why = f"cannot reach STOW-RS service: {exc.reason}"
            _log.warning("job %s: %s: %s", job_id, self.name, why)
            return self._nothing_sent(files, AttemptStatus.CONNECTION_FAILED, why)
        except OSError as exc:  # timeout or reset while sending or reading
            why = f"STOW-RS request failed: {type(exc).__name__}"
            _log.warning("job %s: %s: %s", job_id, self.name, why)
            return self._nothing_sent(files, AttemptStatus.CONNECTION_FAILED, why)
        return self._classify(files, http_status, payload, job_id, ledger)

    def _classify(
        self,
        files: Sequence[ResultFile],
        http_status: int,
        payload: bytes,
        job_id: str,
        ledger: DeliveryLedger,
    ) -> DestinationOutcome:
        """Per-instance outcome from the HTTP status (PS3.18 10.5.3) and the response body."""
        parsed = parse_store_response(payload)
        if parsed is None and http_status == 200:
            why = "HTTP 200 without a Store Instances Response"
            return self._nothing_sent(files, AttemptStatus.INVALID_RESPONSE, why)
        response = parsed or StoreInstancesResponse()
        instances: list[InstanceOutcome] = []
        for f in files:
            uid = f.sop_instance_uid
            if f.error is not None:
                instances.append(InstanceOutcome(f.label, InstanceStatus.NOT_SENT, detail=f.error))
            elif uid in ledger.delivered:
                instances.append(ledger.skipped(uid))
            elif uid in response.failed:
                code = response.failed[uid]
                why = describe_stow_reason(code) if code is not None else "no failure reason"
                instances.append(InstanceOutcome(uid, InstanceStatus.FAILED, code, why))
            elif (warning := response.stored.get(uid)) is not None:
                why = describe_stow_reason(warning)
                instances.append(
                    InstanceOutcome(uid, InstanceStatus.STORED_WITH_WARNING, warning, why)
                )
            elif uid in response.stored or http_status == 200:
                # 200 OK: the origin server stored every instance (PS3.18 10.5.3).
                instances.append(InstanceOutcome(uid, InstanceStatus.STORED))
            else:
                why = f"not confirmed (HTTP {http_status})"
                instances.append(InstanceOutcome(uid, InstanceStatus.FAILED, detail=why))
        outcome = tuple(instances)
        for i in outcome:
            if i.stored and i.sop_instance_uid not in ledger.delivered:
                ledger.record(i.sop_instance_uid)
            elif not i.stored:
                _log.warning(
                    "job %s: %s not stored at %s: %s",
                    job_id,
                    i.sop_instance_uid,
                    self.name,
                    i.detail,
                )
        if all(i.stored for i in outcome) and 200 <= http_status < 300:
            _log.info("job %s: %d instance(s) stored at %s", job_id, len(outcome), self.name)
            return DestinationOutcome(self.name, self.protocol, AttemptStatus.SUCCESS, outcome)
        error = summarize_failures(outcome)
        if response.other_failures:
            others = ", ".join(describe_stow_reason(c) for c in response.other_failures)
            error = f"{error}; other failures: {others}"
        if 200 <= http_status < 300:
            return DestinationOutcome(
                self.name, self.protocol, AttemptStatus.INSTANCE_FAILURES, outcome, error
            )
        return DestinationOutcome(
            self.name,
            self.protocol,
            AttemptStatus.HTTP_ERROR,
            outcome,
            f"HTTP {http_status}; {error}",
        )

    def _all_stored_before(
        self, files: Sequence[ResultFile], ledger: DeliveryLedger
    ) -> DestinationOutcome:
        """The outcome when every readable instance was stored by an earlier request."""
        outcome = tuple(
            ledger.skipped(f.sop_instance_uid)
            if f.error is None
            else InstanceOutcome(f.label, InstanceStatus.NOT_SENT, detail=f.error)
            for f in files
        )
        if all(i.stored for i in outcome):
            return DestinationOutcome(self.name, self.protocol, AttemptStatus.SUCCESS, outcome)
        return DestinationOutcome(
            self.name,
            self.protocol,
            AttemptStatus.INSTANCE_FAILURES,
            outcome,
            summarize_failures(outcome),
        )

    def _nothing_sent(
        self, files: Sequence[ResultFile], status: AttemptStatus, why: str
    ) -> DestinationOutcome:
        instances = tuple(
            InstanceOutcome(f.label, InstanceStatus.NOT_SENT, detail=f.error or why) for f in files
        )
        return DestinationOutcome(self.name, self.protocol, status, instances, why)


def _netloc(parts: urllib.parse.SplitResult) -> str:
    """``host[:port]`` of ``parts`` without user information."""
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return netloc if parts.port is None else f"{netloc}:{parts.port}"


def _multipart(paths: Sequence[Path], boundary: str) -> tuple[int, Iterator[bytes]]:
    """Length and chunks of a ``multipart/related`` body (RFC 2387) of ``paths``."""
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
    tail = f"--{boundary}--\r\n".encode("ascii")
    sizes = [p.stat().st_size for p in paths]
    length = sum(len(head) + size + 2 for size in sizes) + len(tail)

    def chunks() -> Iterator[bytes]:
        for path in paths:
            yield head
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
            yield b"\r\n"
        yield tail

    return length, chunks()


@dataclass(frozen=True)
class StoreInstancesResponse:
    """The parts of a Store Instances Response Module (PS3.18 Table I.1-1) dispatch uses.

    Parameters
    ----------
    stored
        SOPInstanceUID of each ReferencedSOPSequence item to its WarningReason (``None``
        without a warning).
    failed
        SOPInstanceUID of each FailedSOPSequence item to its FailureReason.
    other_failures
        FailureReason of each OtherFailuresSequence item.
    """

    stored: Mapping[str, int | None] = field(default_factory=dict)
    failed: Mapping[str, int | None] = field(default_factory=dict)
    other_failures: tuple[int, ...] = ()


def describe_stow_reason(code: int) -> str:
    """Name a WarningReason or FailureReason (PS3.18 Tables I.2-1 and I.2-2)."""
    if code == _TRANSFER_SYNTAX_NOT_SUPPORTED:
        return f"0x{code:04X} Failure: Referenced Transfer Syntax not supported"
    return describe_store_status(code)


def parse_store_response(payload: bytes) -> StoreInstancesResponse | None:
    """Read a Store Instances Response (PS3.18 Annex I) in DICOM JSON.

    Parameters
    ----------
    payload
        The response body: one data set, or an array holding one.

    Returns
    -------
    StoreInstancesResponse or None
        ``None`` if ``payload`` is not such a response (not JSON, or none of the three
        sequences present).
    """
    try:
        document: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        return None
    stored = _references(document, _REFERENCED_SOP_SEQUENCE, _WARNING_REASON)
    failed = _references(document, _FAILED_SOP_SEQUENCE, _FAILURE_REASON)
    others = tuple(
        code
        for item in _values(document, _OTHER_FAILURES_SEQUENCE)
        if isinstance(item, dict)
        for code in _values(item, _FAILURE_REASON)[:1]
        if isinstance(code, int)
    )
    if not stored and not failed and not others:
        return None
    return StoreInstancesResponse(stored, failed, others)


def _references(document: Mapping[str, Any], sequence: str, reason: str) -> dict[str, int | None]:
    items = _values(document, sequence)
    found: dict[str, int | None] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        uids = _values(item, _REFERENCED_SOP_INSTANCE_UID)
        if not uids or not isinstance(uids[0], str):
            continue
        codes = _values(item, reason)
        found[uids[0]] = codes[0] if codes and isinstance(codes[0], int) else None
    return found


def _values(document: Mapping[str, Any], tag: str) -> list[Any]:
    element = document.get(tag)
    if not isinstance(element, dict):
        return []
    value = element.get("Value")
    return value if isinstance(value, list) else []
