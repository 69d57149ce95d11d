"""Audit trail, delivery attempts and stored results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db._database import NodeDatabase
from db._models import (
    AuditEvent,
    DeliveryAttempt,
    DeliveryProtocol,
    DeliveryStatus,
    Job,
    Result,
)
from db._types import utcnow

__all__ = [
    "AuditEventInfo",
    "DeliveryAttemptInfo",
    "NewResult",
    "ResultInfo",
    "add_audit_event",
    "affected",
    "get_result",
    "insert_ignore",
    "list_audit_events",
    "list_delivery_attempts",
    "record_delivery_attempt",
    "write_audit",
]

_MAX_TEXT = 2000  # error texts are truncated: a stack of nested causes is not an audit record


@dataclass(frozen=True)
class AuditEventInfo:
    """One audit event as stored."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    origin: str | None
    detail: Mapping[str, Any] | None


@dataclass(frozen=True)
class DeliveryAttemptInfo:
    """One delivery attempt as stored."""

    id: int
    job_id: str
    destination: str
    protocol: DeliveryProtocol
    status: DeliveryStatus
    error: str | None
    attempted_at: datetime


@dataclass(frozen=True)
class NewResult:
    """What a finished job stores (see ``result.json`` in ARCHITECTURE.md).

    Parameters
    ----------
    result_json_path
        Path of the job's ``result.json``.
    bundle_name, bundle_version, bundle_sha256
        The model bundle that produced the result.
    category, category_label
        NCCN category 0/1/2 and its label (``None`` if the analysis gave none).
    probabilities
        The three class probabilities.
    measurements
        Volumes, diameters, contact angles (JSON-serialisable).
    timings_s
        Seconds per pipeline stage.
    clinical_used, clinical_missing, clinical_imputed
        Names of the clinical variables in each group.
    clinical_knocked_out
        Whether the clinical pathway was replaced by its training-mean embedding.
    registry_status
        The registry lookup's status (:class:`db.registry.RegistryLookupStatus` value).
    warnings
        Warnings shown with the result (no patient identifiers or values).
    outcome
        ``result.json``'s outcome: ``done``, ``no-tumor`` or ``out-of-domain`` (``None``: not
        recorded, results stored before revision r0005).
    pdac_likelihood
        The PDAC detector's patient likelihood (``None``: no detector, or before r0007).
    n_estimate, n_positive_probability
        The lymph-node model's N estimate (``N0`` or ``N+``) and its probability of N+
        (``None``: no lymph-node bundle, or before r0008).
    risk_group, death_probability_1y, death_probability_3y
        The survival model's risk group (``high`` or ``low``) and its probabilities of death
        within 1 and 3 years (``None``: no survival bundle, or before r0009).
    """

    result_json_path: str
    bundle_name: str
    bundle_version: str
    bundle_sha256: str
    category: int | None = None
    category_label: str | None = None
    probabilities: Sequence[float] = ()
    measurements: Mapping[str, Any] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)
    clinical_used: Sequence[str] = ()
    clinical_missing: Sequence[str] = ()
    clinical_imputed: Sequence[str] = ()
    clinical_knocked_out: bool = False
    registry_status: str | None = None
    warnings: Sequence[str] = ()
    outcome: str | None = None
    pdac_likelihood: float | None = None
    n_estimate: str | None = None
    n_positive_probability: float | None = None
    risk_group: str | None = None
    death_probability_1y: float | None = None
    death_probability_3y: float | None = None


@dataclass(frozen=True, kw_only=True)
class ResultInfo(NewResult):
    """A stored result with its job id and creation time."""

    job_id: str
    created_at: datetime


def write_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    origin: str | None = None,
    detail: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Add an audit event to ``session``'s transaction (for the repositories' own use)."""
    event = AuditEvent(
        occurred_at=now or utcnow(),
        actor=actor[:128],
        action=action[:64],
        object_type=object_type[:32],
        object_id=object_id[:128],
        origin=origin[:256] if origin else None,
        detail=dict(detail) if detail is not None else None,
    )
    session.add(event)
    return event


def insert_ignore(
    session: Session, table: Table, values: Mapping[str, Any], conflict: Sequence[str]
) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING``; whether a row was inserted.

    Concurrent receivers may insert the same study, series or instance at once; letting the
    database resolve the race avoids catching IntegrityError and losing the transaction.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values)
    else:  # pragma: no cover - only the two supported backends are tested
        raise ValueError(f"unsupported database backend {dialect}")
    stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    # RETURNING, not rowcount: through the ORM session the driver reports -1 on PostgreSQL.
    stmt = stmt.returning(table.c[conflict[0]])
    return session.execute(stmt).first() is not None


def affected(session: Session, statement: Executable) -> int:
    """Execute a DML ``statement`` and return how many rows it touched."""
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def add_audit_event(
    db: NodeDatabase,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    origin: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Record an audit event in its own transaction and return its id.

    Parameters
    ----------
    actor
        Who: a user name, AE title or worker id.
    action
        What, dotted (``result.read``, ``board.decision``).
    object_type, object_id
        Which object (``job`` and its id, ``series`` and its UID, ...).
    origin
        From where: host, IP address or calling AE title.
    detail
        Structured facts (states, counts). Never patient identifiers or clinical values.
    """
    with db.session() as session:
        event = write_audit(
            session,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            origin=origin,
            detail=detail,
        )
        session.flush()
        return event.id


def list_audit_events(
    db: NodeDatabase,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int = 100,
) -> list[AuditEventInfo]:
    """Audit events, oldest first, optionally for one object."""
    stmt = select(AuditEvent).order_by(AuditEvent.id).limit(limit)
    if object_type is not None:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    with db.session() as session:
        return [
            AuditEventInfo(
                id=e.id,
                occurred_at=e.occurred_at,
                actor=e.actor,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                origin=e.origin,
                detail=e.detail,
            )
            for e in session.scalars(stmt)
        ]


def record_delivery_attempt(
    db: NodeDatabase,
    job_id: str,
    *,
    destination: str,
    protocol: DeliveryProtocol,
    status: DeliveryStatus,
    error: str | None = None,
    actor: str = "system",
) -> int:
    """Record one attempt to send a job's results, with an audit event; return its id.

    Raises
    ------
    LookupError
        If there is no job ``job_id``.
    """
    now = utcnow()
    with db.session() as session:
        if session.get(Job, job_id) is None:
            raise LookupError(f"no job {job_id}")
        attempt = DeliveryAttempt(
            job_id=job_id,
            destination=destination[:256],
            protocol=protocol,
            status=status,
            error=error[:_MAX_TEXT] if error else None,
            attempted_at=now,
        )
        session.add(attempt)
        write_audit(
            session,
            actor=actor,
            action="job.delivery",
            object_type="job",
            object_id=job_id,
            origin=destination,
            detail={"protocol": protocol.value, "status": status.value},
            now=now,
        )
        session.flush()
        return attempt.id


def list_delivery_attempts(db: NodeDatabase, job_id: str) -> list[DeliveryAttemptInfo]:
    """A job's delivery attempts, oldest first."""
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.job_id == job_id)
    with db.session() as session:
        return [
            DeliveryAttemptInfo(
                id=a.id,
                job_id=a.job_id,
                destination=a.destination,
                protocol=a.protocol,
                status=a.status,
                error=a.error,
                attempted_at=a.attempted_at,
            )
            for a in session.scalars(stmt.order_by(DeliveryAttempt.id))
        ]


def result_row(job_id: str, result: NewResult, now: datetime) -> Result:
    """The ORM row of ``result`` (used by :func:`db.complete_job`)."""
    return Result(
        job_id=job_id,
        category=result.category,
        category_label=result.category_label,
        outcome=result.outcome,
        pdac_likelihood=result.pdac_likelihood,
        n_estimate=result.n_estimate,
        n_positive_probability=result.n_positive_probability,
        risk_group=result.risk_group,
        death_probability_1y=result.death_probability_1y,
        death_probability_3y=result.death_probability_3y,
        probabilities=[float(p) for p in result.probabilities],
        measurements=dict(result.measurements),
        bundle_name=result.bundle_name,
        bundle_version=result.bundle_version,
        bundle_sha256=result.bundle_sha256,
        timings_s={k: float(v) for k, v in result.timings_s.items()},
        clinical_used=list(result.clinical_used),
        clinical_missing=list(result.clinical_missing),
        clinical_imputed=list(result.clinical_imputed),
        clinical_knocked_out=result.clinical_knocked_out,
        registry_status=result.registry_status,
        warnings=list(result.warnings),
        result_json_path=result.result_json_path,
        created_at=now,
    )


def get_result(
    db: NodeDatabase, job_id: str, *, actor: str, origin: str | None = None
) -> ResultInfo | None:
    """A job's result; every read is recorded as a ``result.read`` audit event.

    Returns
    -------
    ResultInfo or None
        ``None`` (and no audit event) if the job has no result.
    """
    with db.session() as session:
        row = session.scalars(select(Result).where(Result.job_id == job_id)).one_or_none()
        if row is None:
            return None
        write_audit(
            session,
            actor=actor,
            action="result.read",
            object_type="job",
            object_id=job_id,
            origin=origin,
        )
        return ResultInfo(
            job_id=row.job_id,
            created_at=row.created_at,
            result_json_path=row.result_json_path,
            bundle_name=row.bundle_name,
            bundle_version=row.bundle_version,
            bundle_sha256=row.bundle_sha256,
            category=row.category,
            category_label=row.category_label,
            outcome=row.outcome,
            pdac_likelihood=row.pdac_likelihood,
            n_estimate=row.n_estimate,
            n_positive_probability=row.n_positive_probability,
            risk_group=row.risk_group,
            death_probability_1y=row.death_probability_1y,
            death_probability_3y=row.death_probability_3y,
            probabilities=tuple(row.probabilities),
            measurements=row.measurements,
            timings_s=row.timings_s,
            clinical_used=tuple(row.clinical_used),
            clinical_missing=tuple(row.clinical_missing),
            clinical_imputed=tuple(row.clinical_imputed),
            clinical_knocked_out=row.clinical_knocked_out,
            registry_status=row.registry_status,
            warnings=tuple(row.warnings),
        )
