"""What arrived: studies, series and instances, as the SCP records them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db._audit import insert_ignore, write_audit
from db._database import NodeDatabase
from db._models import Instance, RoutingDecision, Series, SeriesStatus, Study
from db._types import utcnow

__all__ = [
    "IngestOutcome",
    "SeriesInfo",
    "StudyInfo",
    "flag_missing_files",
    "get_series",
    "get_study",
    "record_instance",
    "reopen_series",
    "series_calling_ae",
    "series_instance_paths",
    "series_quiet_since",
    "store_instance",
    "stored_spool_paths",
]

_log = logging.getLogger(__name__)


# The statements of :func:`store_instance`, built once: it runs before every acknowledgement,
# and building SQLAlchemy expressions cost more than executing them (issue 22, item 7).
_SERIES_FOR_UPDATE = (
    select(Series.id, Series.version, Series.status)
    .where(Series.series_instance_uid == bindparam("uid"))
    # FOR UPDATE serialises receivers of one series on PostgreSQL; SQLite ignores it and is
    # already serialised by BEGIN IMMEDIATE.
    .with_for_update()
)
_STORED_CONTENT = select(
    Instance.content_sha256, Instance.transfer_syntax_uid, Instance.spool_path
).where(Instance.sop_instance_uid == bindparam("uid"))
_COUNT_INSTANCE = (
    update(Series)
    .where(Series.id == bindparam("series_id"))
    .values(
        instance_count=Series.instance_count + 1,
        last_received_at=case(
            (Series.last_received_at < bindparam("now"), bindparam("now")),
            else_=Series.last_received_at,
        ),
    )
)
_INSERT_INSTANCE: Mapping[str, Any] = MappingProxyType(
    {
        name: dialect.insert(Instance.__table__)
        .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
        .returning(Instance.__table__.c.sop_instance_uid)
        for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
    }
)


class IngestOutcome(StrEnum):
    """What :func:`store_instance` did with one received instance."""

    STORED = "stored"
    #: The same SOPInstanceUID with the same content was already stored: nothing changes.
    DUPLICATE = "duplicate"
    #: The SOPInstanceUID is stored with other content: refused, audited, nothing changes.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class StudyInfo:
    """A study as stored; ``patient_id`` and friends are for the registry join only."""

    study_instance_uid: str
    patient_id: str | None
    accession_number: str | None
    study_date: date | None
    created_at: datetime


@dataclass(frozen=True)
class SeriesInfo:
    """A series as stored."""

    series_instance_uid: str
    study_instance_uid: str
    modality: str | None
    version: int
    status: SeriesStatus
    routing_decision: RoutingDecision
    routing_reason: str | None
    instance_count: int
    first_received_at: datetime
    last_received_at: datetime
    completed_at: datetime | None


def _series_info(series: Series, study_uid: str) -> SeriesInfo:
    return SeriesInfo(
        series_instance_uid=series.series_instance_uid,
        study_instance_uid=study_uid,
        modality=series.modality,
        version=series.version,
        status=series.status,
        routing_decision=series.routing_decision,
        routing_reason=series.routing_reason,
        instance_count=series.instance_count,
        first_received_at=series.first_received_at,
        last_received_at=series.last_received_at,
        completed_at=series.completed_at,
    )


def _lock_series(session: Session, series_uid: str) -> Series | None:
    # FOR UPDATE serialises receivers of one series on PostgreSQL; SQLite ignores it and is
    # already serialised by BEGIN IMMEDIATE.
    stmt = select(Series).where(Series.series_instance_uid == series_uid).with_for_update()
    return session.scalars(stmt).one_or_none()


def _reopen(session: Session, series: Series, *, actor: str, origin: str | None) -> None:
    series.version += 1
    series.status = SeriesStatus.RECEIVING
    series.routing_decision = RoutingDecision.PENDING
    series.routing_reason = None
    series.completed_at = None
    write_audit(
        session,
        actor=actor,
        action="series.reopen",
        object_type="series",
        object_id=series.series_instance_uid,
        origin=origin,
        detail={"version": series.version},
    )


def _create_study_and_series(
    session: Session,
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    patient_id: str | None,
    accession_number: str | None,
    study_date: date | None,
    modality: str | None,
    calling_ae: str | None,
    now: datetime,
    requesting_service: str | None = None,
) -> None:
    study_values = {
        "study_instance_uid": study_instance_uid,
        "patient_id": patient_id,
        "accession_number": accession_number,
        "study_date": study_date,
        "requesting_service": None if requesting_service is None else requesting_service[:64],
        "created_at": now,
    }
    insert_ignore(session, Study.__table__, study_values, ["study_instance_uid"])  # type: ignore[arg-type]
    study_id = session.scalars(
        select(Study.id).where(Study.study_instance_uid == study_instance_uid)
    ).one()
    series_values = {
        "study_id": study_id,
        "series_instance_uid": series_instance_uid,
        "modality": modality,
        "version": 1,
        "status": SeriesStatus.RECEIVING,
        "routing_decision": RoutingDecision.PENDING,
        "instance_count": 0,
        "first_received_at": now,
        "last_received_at": now,
    }
    created = insert_ignore(
        session,
        Series.__table__,  # type: ignore[arg-type]
        series_values,
        ["series_instance_uid"],
    )
    if created:
        write_audit(
            session,
            actor=calling_ae or "scp",
            action="series.receiving",
            object_type="series",
            object_id=series_instance_uid,
            origin=calling_ae,
            now=now,
        )


def record_instance(
    db: NodeDatabase,
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    sop_class_uid: str,
    transfer_syntax_uid: str,
    spool_path: str,
    calling_ae: str | None = None,
    modality: str | None = None,
    patient_id: str | None = None,
    accession_number: str | None = None,
    study_date: date | None = None,
    requesting_service: str | None = None,
    received_at: datetime | None = None,
    reopen_if_complete: bool = True,
) -> bool:
    """Record one received instance; idempotent by SOPInstanceUID.

    :func:`store_instance` without a content hash or file placement (for callers that wrote
    the file themselves).

    Returns
    -------
    bool
        ``True`` if stored now, ``False`` if this SOPInstanceUID was already stored (a
        re-send; nothing changes).
    """
    outcome = store_instance(
        db,
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=sop_class_uid,
        transfer_syntax_uid=transfer_syntax_uid,
        spool_path=spool_path,
        calling_ae=calling_ae,
        modality=modality,
        patient_id=patient_id,
        accession_number=accession_number,
        study_date=study_date,
        requesting_service=requesting_service,
        received_at=received_at,
        reopen_if_complete=reopen_if_complete,
    )
    return outcome is IngestOutcome.STORED


def store_instance(
    db: NodeDatabase,
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    sop_class_uid: str,
    transfer_syntax_uid: str,
    spool_path: str,
    calling_ae: str | None = None,
    modality: str | None = None,
    patient_id: str | None = None,
    accession_number: str | None = None,
    study_date: date | None = None,
    requesting_service: str | None = None,
    received_at: datetime | None = None,
    reopen_if_complete: bool = True,
    content_sha256: str | None = None,
    place_file: Callable[[], None] | None = None,
    same_content: Callable[[str], bool] | None = None,
) -> IngestOutcome:
    """Record one received instance: one stored object per SOPInstanceUID and content.

    Creates the study and series on first sight, touches the series' ``last_received_at``
    and instance count. An instance arriving for a series already marked complete re-opens
    it (version + 1) unless ``reopen_if_complete`` is false.

    Parameters
    ----------
    content_sha256
        The received file's hash. A known SOPInstanceUID with another hash is a conflict:
        nothing changes except an ``instance.conflict`` audit event.
    place_file
        Moves the received file to ``spool_path``; called under the series lock only when the
        instance is new, so a re-send never replaces a stored file. If the transaction then
        fails, the caller removes the placed file.
    same_content
        Called with the stored file's spool path when a known SOPInstanceUID arrives with
        another hash in another transfer syntax: whether the two files hold the same content
        (a lossless re-encoding). If so the instance is a duplicate, audited as
        ``instance.resent-other-syntax``; otherwise, or without it, a conflict.

    Returns
    -------
    IngestOutcome
        Stored, duplicate or conflict.
    """
    now = received_at or utcnow()
    with db.session() as session:
        # Core statements on the session's connection, not ORM objects: this runs once per
        # received instance, before its acknowledgement, and the ORM's unit of work cost
        # more than the statements themselves (issue 22, item 7).
        series = _locked_series_row(session, series_instance_uid)
        if series is None:
            _create_study_and_series(
                session,
                study_instance_uid=study_instance_uid,
                series_instance_uid=series_instance_uid,
                patient_id=patient_id,
                accession_number=accession_number,
                study_date=study_date,
                requesting_service=requesting_service,
                modality=modality,
                calling_ae=calling_ae,
                now=now,
            )
            series = _locked_series_row(session, series_instance_uid)
        if series is None:  # pragma: no cover - inserted or present above
            raise LookupError("series vanished while recording an instance")
        connection = session.connection()
        known = connection.execute(_STORED_CONTENT, {"uid": sop_instance_uid}).first()
        if known is not None:
            stored = _Stored(known[0], known[1], known[2])
            received = _Stored(content_sha256, transfer_syntax_uid, spool_path)
            return _known_instance(
                session,
                stored,
                received,
                same_content,
                (sop_instance_uid, series_instance_uid),
                calling_ae,
            )
        if place_file is not None:
            place_file()
        series_id, version = series.id, series.version
        if series.status is SeriesStatus.COMPLETE and reopen_if_complete:
            version = _reopen_by_id(
                session, series_id, actor=calling_ae or "scp", origin=calling_ae
            )
            _log.info("series re-opened by a late instance (version %d)", version)
        inserted = connection.execute(
            _INSERT_INSTANCE[connection.dialect.name],
            {
                "series_id": series_id,
                "series_version": version,
                "sop_instance_uid": sop_instance_uid,
                "sop_class_uid": sop_class_uid,
                "transfer_syntax_uid": transfer_syntax_uid,
                "spool_path": spool_path,
                "calling_ae": calling_ae,
                "received_at": now,
                "content_sha256": content_sha256,
            },
        ).first()
        if inserted is None:
            return IngestOutcome.DUPLICATE
        connection.execute(_COUNT_INSTANCE, {"series_id": series_id, "now": now})
        return IngestOutcome.STORED


@dataclass(frozen=True)
class _SeriesRow:
    id: int
    version: int
    status: SeriesStatus


def _locked_series_row(session: Session, series_uid: str) -> _SeriesRow | None:
    row = session.connection().execute(_SERIES_FOR_UPDATE, {"uid": series_uid}).first()
    return None if row is None else _SeriesRow(row[0], row[1], row[2])


def _reopen_by_id(session: Session, series_id: int, *, actor: str, origin: str | None) -> int:
    series = session.get_one(Series, series_id)
    _reopen(session, series, actor=actor, origin=origin)
    session.flush()
    return series.version


@dataclass(frozen=True)
class _Stored:
    sha256: str | None
    transfer_syntax_uid: str
    spool_path: str


def _known_instance(
    session: Session,
    stored: _Stored,
    received: _Stored,
    same_content: Callable[[str], bool] | None,
    uids: tuple[str, str],
    calling_ae: str | None,
) -> IngestOutcome:
    if stored.sha256 is None or received.sha256 is None or stored.sha256 == received.sha256:
        return IngestOutcome.DUPLICATE
    # Only another transfer syntax can explain other bytes of the same content (PS3.5 10).
    resent = (
        same_content is not None
        and stored.transfer_syntax_uid != received.transfer_syntax_uid
        and same_content(stored.spool_path)
    )
    write_audit(
        session,
        actor=calling_ae or "scp",
        action="instance.resent-other-syntax" if resent else "instance.conflict",
        object_type="instance",
        object_id=uids[0],
        origin=calling_ae,
        detail={
            "series_instance_uid": uids[1],
            "stored_sha256": stored.sha256,
            "received_sha256": received.sha256,
            "stored_transfer_syntax": stored.transfer_syntax_uid,
            "received_transfer_syntax": received.transfer_syntax_uid,
            "kept": "stored",
        },
    )
    return IngestOutcome.DUPLICATE if resent else IngestOutcome.CONFLICT


def stored_spool_paths(db: NodeDatabase) -> set[str]:
    """Spool paths of every recorded instance (for the start-up reconciliation)."""
    with db.session() as session:
        return set(session.scalars(select(Instance.spool_path)))


def flag_missing_files(db: NodeDatabase, spool_paths: Iterable[str]) -> int:
    """Mark the instances stored at ``spool_paths`` as having no file; audit each; count them."""
    paths = list(spool_paths)
    if not paths:
        return 0
    flagged = 0
    with db.session() as session:
        rows = session.scalars(
            select(Instance).where(Instance.spool_path.in_(paths), Instance.file_missing.is_(False))
        )
        for instance in rows:
            instance.file_missing = True
            flagged += 1
            write_audit(
                session,
                actor="system",
                action="instance.file_missing",
                object_type="instance",
                object_id=instance.sop_instance_uid,
            )
    return flagged


def series_quiet_since(db: NodeDatabase, cutoff: datetime) -> list[SeriesInfo]:
    """Series still receiving whose last instance arrived at or before ``cutoff``.

    The SCP calls this with ``now - stable_age`` to find series that have gone quiet.
    """
    stmt = (
        select(Series, Study.study_instance_uid)
        .join(Study, Series.study_id == Study.id)
        .where(Series.status == SeriesStatus.RECEIVING, Series.last_received_at <= cutoff)
        .order_by(Series.last_received_at, Series.id)
    )
    with db.session() as session:
        return [_series_info(series, study_uid) for series, study_uid in session.execute(stmt)]


def reopen_series(
    db: NodeDatabase, series_instance_uid: str, *, actor: str = "system", origin: str | None = None
) -> int:
    """Re-open a series for more instances; return its new version.

    Raises
    ------
    LookupError
        If the series is unknown.
    """
    with db.session() as session:
        series = _lock_series(session, series_instance_uid)
        if series is None:
            raise LookupError("unknown series")
        _reopen(session, series, actor=actor, origin=origin)
        return series.version


def get_series(db: NodeDatabase, series_instance_uid: str) -> SeriesInfo | None:
    """One series, or ``None``."""
    stmt = (
        select(Series, Study.study_instance_uid)
        .join(Study, Series.study_id == Study.id)
        .where(Series.series_instance_uid == series_instance_uid)
    )
    with db.session() as session:
        row = session.execute(stmt).one_or_none()
        return None if row is None else _series_info(row[0], row[1])


def get_study(db: NodeDatabase, study_instance_uid: str) -> StudyInfo | None:
    """One study, or ``None`` (carries the registry join keys; never log them)."""
    with db.session() as session:
        study = session.scalars(
            select(Study).where(Study.study_instance_uid == study_instance_uid)
        ).one_or_none()
        if study is None:
            return None
        return StudyInfo(
            study_instance_uid=study.study_instance_uid,
            patient_id=study.patient_id,
            accession_number=study.accession_number,
            study_date=study.study_date,
            created_at=study.created_at,
        )


def series_instance_paths(
    db: NodeDatabase, series_instance_uid: str, *, max_version: int | None = None
) -> list[str]:
    """Spool paths of a series' instances (all versions up to ``max_version``), in arrival order."""
    stmt = (
        select(Instance.spool_path)
        .join(Series, Instance.series_id == Series.id)
        .where(Series.series_instance_uid == series_instance_uid)
        .order_by(Instance.id)
    )
    if max_version is not None:
        stmt = stmt.where(Instance.series_version <= max_version)
    with db.session() as session:
        return list(session.scalars(stmt))


def series_calling_ae(db: NodeDatabase, series_instance_uid: str) -> str | None:
    """Calling AE title of the association that sent the series' latest instance."""
    stmt = (
        select(Instance.calling_ae)
        .join(Series, Instance.series_id == Series.id)
        .where(Series.series_instance_uid == series_instance_uid)
        .order_by(Instance.id.desc())
        .limit(1)
    )
    with db.session() as session:
        return session.scalars(stmt).first()
