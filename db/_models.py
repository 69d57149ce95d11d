"""SQLAlchemy 2.0 typed models of the node database.

The migrations under ``db/migrations/versions`` create exactly this schema (a test compares
them); they never import these classes, so old revisions stay frozen when the models move on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db._types import StrEnumType, UTCDateTime, utcnow
from pancreas_contracts.job_states import JobState

__all__ = [
    "AuditEvent",
    "Base",
    "BoardCase",
    "DeliveredObject",
    "DeliveryAttempt",
    "DeliveryProtocol",
    "DeliveryStatus",
    "Instance",
    "Job",
    "Result",
    "Review",
    "RoutingDecision",
    "Series",
    "SeriesStatus",
    "Study",
    "TumorBoard",
]

# Deterministic constraint names: Alembic's SQLite batch mode can only alter named constraints.
NAMING_CONVENTION: Mapping[str, str] = MappingProxyType(
    {
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UID = 64  # PS3.5 9.1: a UID is at most 64 characters.

JOB_STATE_CHECK = "state IN ({})".format(", ".join(f"'{s.value}'" for s in JobState))


class SeriesStatus(StrEnum):
    """Where a series stands in assembly."""

    RECEIVING = "receiving"
    COMPLETE = "complete"


class RoutingDecision(StrEnum):
    """What the routing rules decided for a complete series."""

    PENDING = "pending"
    ANALYZE = "analyze"
    SKIP = "skip"


class DeliveryProtocol(StrEnum):
    """How result objects were sent."""

    C_STORE = "c-store"
    STOW_RS = "stow-rs"


class DeliveryStatus(StrEnum):
    """Outcome of one delivery attempt."""

    SUCCESS = "success"
    FAILURE = "failure"


class Base(DeclarativeBase):
    """Declarative base with the naming convention above."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Study(Base):
    """A DICOM study the node has received instances of."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(UID), unique=True)
    # The registry join needs these; they stay in the database and never reach a log line.
    patient_id: Mapped[str | None] = mapped_column(String(64))
    accession_number: Mapped[str | None] = mapped_column(String(16))
    study_date: Mapped[date | None] = mapped_column(Date)
    #: RequestingService (0032,1033) for the boards' auto rules (``None``: not sent).
    requesting_service: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    """A series being assembled; re-opened series get a new ``version``."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(UID), unique=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[SeriesStatus] = mapped_column(
        StrEnumType(SeriesStatus, 16), default=SeriesStatus.RECEIVING
    )
    routing_decision: Mapped[RoutingDecision] = mapped_column(
        StrEnumType(RoutingDecision, 16), default=RoutingDecision.PENDING
    )
    routing_reason: Mapped[str | None] = mapped_column(Text)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()

    study: Mapped[Study] = relationship(back_populates="series")

    __table_args__ = (Index("ix_series_status_last_received_at", "status", "last_received_at"),)


class Instance(Base):
    """One stored SOP instance (idempotent by SOPInstanceUID and content)."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    series_version: Mapped[int] = mapped_column(Integer, default=1)
    sop_instance_uid: Mapped[str] = mapped_column(String(UID), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(UID))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(UID))
    spool_path: Mapped[str] = mapped_column(Text)
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # One stored object per SOPInstanceUID and content (issue 22, D7); None before r0004.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # Set by the start-up reconciliation when the spool file is gone.
    file_missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Job(Base):
    """One analysis of one series version by one model bundle."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String(UID), index=True)
    series_version: Mapped[int] = mapped_column(Integer)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[JobState] = mapped_column(StrEnumType(JobState, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # A worker holds a running job by lease; an expired lease means the worker died.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How many instances the series version had when the job was made (what it analyses).
    instance_count: Mapped[int | None] = mapped_column(Integer)
    # The job of a newer series version that cancelled or superseded this one.
    superseded_by: Mapped[str | None] = mapped_column(String(36))
    # One dispatcher at a time sends a job's objects: exactly one delivery per destination.
    delivery_owner: Mapped[str | None] = mapped_column(String(128))
    delivery_lease_expires_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("series_instance_uid", "series_version", "bundle_sha256"),
        Index("ix_jobs_state_next_attempt_at", "state", "next_attempt_at"),
        CheckConstraint(JOB_STATE_CHECK, name="state"),
    )


class Result(Base):
    """What one job found (the database side of ``result.json``)."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    category: Mapped[int | None] = mapped_column(Integer)
    category_label: Mapped[str | None] = mapped_column(String(64))
    #: ``result.json``'s outcome (``done``, ``no-tumor``, ``out-of-domain``); ``None`` for
    #: results stored before it was recorded (revision r0005).
    outcome: Mapped[str | None] = mapped_column(String(32))
    #: The PDAC detector's patient likelihood (``result.json`` 1.5); ``None`` without a
    #: detector or before revision r0007.
    pdac_likelihood: Mapped[float | None] = mapped_column(Float)
    #: The lymph-node model's N estimate (``N0`` or ``N+``) and its probability of N+
    #: (``result.json`` 1.6); ``None`` without a lymph-node bundle or before revision r0008.
    n_estimate: Mapped[str | None] = mapped_column(String(8))
    n_positive_probability: Mapped[float | None] = mapped_column(Float)
    #: The survival model's risk group (``high`` or ``low``) and its probabilities of death
    #: within 1 and 3 years (``result.json`` 1.7); ``None`` without a survival bundle or before
    #: revision r0009.
    risk_group: Mapped[str | None] = mapped_column(String(8))
    death_probability_1y: Mapped[float | None] = mapped_column(Float)
    death_probability_3y: Mapped[float | None] = mapped_column(Float)
    probabilities: Mapped[list[float]] = mapped_column(JSON)
    measurements: Mapped[dict[str, Any]] = mapped_column(JSON)
    bundle_name: Mapped[str] = mapped_column(String(128))
    bundle_version: Mapped[str] = mapped_column(String(64))
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    timings_s: Mapped[dict[str, Any]] = mapped_column(JSON)
    clinical_used: Mapped[list[str]] = mapped_column(JSON)
    clinical_missing: Mapped[list[str]] = mapped_column(JSON)
    clinical_imputed: Mapped[list[str]] = mapped_column(JSON)
    clinical_knocked_out: Mapped[bool] = mapped_column(Boolean, default=False)
    registry_status: Mapped[str | None] = mapped_column(String(32))
    warnings: Mapped[list[str]] = mapped_column(JSON)
    result_json_path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryAttempt(Base):
    """One attempt to send a job's result objects to a destination."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(256))
    protocol: Mapped[DeliveryProtocol] = mapped_column(StrEnumType(DeliveryProtocol, 16))
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumType(DeliveryStatus, 16))
    error: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveredObject(Base):
    """One result object a destination confirmed it stored (issue 22: exactly once).

    Committed right after the peer's acknowledgement, so a retry after a crash skips it.
    """

    __tablename__ = "delivered_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(256))
    protocol: Mapped[DeliveryProtocol] = mapped_column(StrEnumType(DeliveryProtocol, 16))
    sop_instance_uid: Mapped[str] = mapped_column(String(UID))
    delivered_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "destination", "sop_instance_uid"),)


class AuditEvent(Base):
    """Who did what to which object, when and from where."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str | None] = mapped_column(String(256))
    # Structured facts (states, counts); never patient identifiers or clinical values.
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)


class TumorBoard(Base):
    """A multidisciplinary tumor-board meeting (issue 26)."""

    __tablename__ = "tumor_boards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    board_date: Mapped[date] = mapped_column(Date, index=True)
    title: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Member names (and roles), as the board lists them.
    members: Mapped[list[str] | None] = mapped_column(JSON)
    #: :class:`pancreas_contracts.boards.AutoRule` as JSON; ``None``: cases by hand only.
    auto_rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    cases: Mapped[list[BoardCase]] = relationship(back_populates="board")


class BoardCase(Base):
    """A study on a board: how it got there and the board's decision."""

    __tablename__ = "board_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    board_id: Mapped[int] = mapped_column(
        ForeignKey("tumor_boards.id", ondelete="CASCADE"), index=True
    )
    study_instance_uid: Mapped[str] = mapped_column(String(UID))
    #: The job whose result the board sees (the study's newest analysed job when added).
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    #: Order of discussion (1-based; cases added later go last).
    position: Mapped[int] = mapped_column(Integer, default=1)
    added_by: Mapped[str] = mapped_column(String(128), default="system")
    #: ``manual``, or ``rule`` for a case the board's auto rule added.
    added_reason: Mapped[str] = mapped_column(String(16), default="manual")
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: :class:`pancreas_contracts.boards.BoardCategory` value; ``None`` until decided.
    decision_category: Mapped[str | None] = mapped_column(String(32))
    #: :class:`pancreas_contracts.boards.Treatment` values.
    treatments: Mapped[list[str] | None] = mapped_column(JSON)
    decision_text: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column()

    board: Mapped[TumorBoard] = relationship(back_populates="cases")

    __table_args__ = (UniqueConstraint("board_id", "study_instance_uid"),)


class Review(Base):
    """A radiologist's review of a study's AI result; the newest one is the study's review.

    A correction (``verdict`` ``correct``) also carries the corrected label map the viewer
    sent (``correction_path``, under the data directory) and, once the node wrote it, the new
    SEG and the SR amendment (``corrected_seg_sop_uid``, ``amendment_sr_sop_uid``).
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(UID), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    #: :class:`pancreas_contracts.boards.ReviewVerdict` value.
    verdict: Mapped[str] = mapped_column(String(16))
    #: The node's NCCN category index when reviewed (``None``: it gave none).
    ai_category: Mapped[int | None] = mapped_column(Integer)
    #: The radiologist's category (:class:`pancreas_contracts.boards.BoardCategory` value).
    category: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    correction_path: Mapped[str | None] = mapped_column(Text)
    #: ``pending`` (the node has not written it yet), ``written`` or ``failed``.
    correction_state: Mapped[str | None] = mapped_column(String(16))
    correction_error: Mapped[str | None] = mapped_column(Text)
    corrected_seg_sop_uid: Mapped[str | None] = mapped_column(String(UID))
    amendment_sr_sop_uid: Mapped[str | None] = mapped_column(String(UID))
