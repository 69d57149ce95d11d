"""The bridge to the hospital's clinical registry (read-only SQL through SQLAlchemy).

A :class:`RegistryBridge` is built once from a :class:`RegistryConfig` (TOML) and answers
:meth:`RegistryBridge.lookup` with a :class:`RegistryResult`: the patient's
:class:`~pancreas_contracts.ClinicalVariables` in model units, a status, and warnings. It never
raises for registry trouble: an unreachable registry, an unknown patient or duplicate patient
rows give an imaging-only result and the job goes on (the model's knock-out path).

Nothing here logs identifiers or values: log lines carry statuses, counts and timings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    bindparam,
    column,
    create_engine,
    event,
    literal,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from db._registry_config import (
    ConnectionConfig,
    JoinKey,
    PatientConfig,
    RegistryConfig,
    TimeRule,
    VariableConfig,
    load_registry_config,
)
from db._registry_seed import DEFAULT_CT_DATE as DEMO_CT_DATE
from db._registry_seed import SeedSummary, seed_demo_registry
from db._registry_select import RegistryRow, choose_value
from db._registry_values import (
    Censoring,
    ParsedValue,
    ParseIssue,
    from_model_units,
    normalise_unit,
    parse_category,
    parse_registry_date,
    parse_registry_value,
    supported_units,
    to_model_units,
)
from pancreas_contracts.clinical import ClinicalVariables

__all__ = [
    "DEMO_CT_DATE",
    "Censoring",
    "ConnectionConfig",
    "JoinKey",
    "ParseIssue",
    "ParsedValue",
    "PatientConfig",
    "RegistryBridge",
    "RegistryConfig",
    "RegistryLookupStatus",
    "RegistryResult",
    "SeedSummary",
    "TimeRule",
    "VariableConfig",
    "from_model_units",
    "load_registry_config",
    "normalise_unit",
    "parse_category",
    "parse_registry_date",
    "parse_registry_value",
    "seed_demo_registry",
    "supported_units",
    "to_model_units",
]

_log = logging.getLogger(__name__)
_MAX_ROWS = 1000  # a variable with more rows than this is a mapping error, not a patient


class RegistryLookupStatus(StrEnum):
    """How a registry lookup went."""

    OK = "ok"
    """Patient found, all 17 variables present."""
    PARTIAL = "partial"
    """Patient found, some variables missing (see ``variables.missing`` and warnings)."""
    UNKNOWN_PATIENT = "unknown_patient"
    """No registry row for the patient key: imaging only."""
    DUPLICATE_PATIENT = "duplicate_patient"
    """Several registry rows for the patient key: imaging only, never a silent pick."""
    UNREACHABLE = "unreachable"
    """Registry down, too slow, or refusing us after all retries: imaging only."""
    NOT_CONFIGURED = "not_configured"
    """No registry configured for this node: imaging only."""


_IMAGING_ONLY = frozenset(
    {
        RegistryLookupStatus.UNKNOWN_PATIENT,
        RegistryLookupStatus.DUPLICATE_PATIENT,
        RegistryLookupStatus.UNREACHABLE,
        RegistryLookupStatus.NOT_CONFIGURED,
    }
)


@dataclass(frozen=True)
class RegistryResult:
    """The outcome of one registry lookup.

    Parameters
    ----------
    status
        How the lookup went.
    variables
        The clinical variables in model units (all missing when imaging-only).
    warnings
        Problems met, naming variables, never values or identifiers.
    source_timestamps
        For each variable used, the date (or datetime) of the registry row it came from
        (``None`` when the row was undated).
    elapsed_s
        Wall time of the lookup.
    """

    status: RegistryLookupStatus
    variables: ClinicalVariables = field(default_factory=ClinicalVariables)
    warnings: tuple[str, ...] = ()
    source_timestamps: Mapping[str, date | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    elapsed_s: float = 0.0

    @property
    def imaging_only(self) -> bool:
        """Whether the clinical pathway must be knocked out (no usable registry answer)."""
        return self.status in _IMAGING_ONLY

    @classmethod
    def without_registry(
        cls,
        status: RegistryLookupStatus,
        warnings: tuple[str, ...] = (),
        elapsed_s: float = 0.0,
    ) -> RegistryResult:
        """An imaging-only result (all variables missing) with ``status``."""
        return cls(status=status, warnings=warnings, elapsed_s=elapsed_s)


class _UnreachableError(Exception):
    """The connection could not be opened or was lost; the lookup may be retried."""


class RegistryBridge:
    """Reads clinical variables from the registry; one per process (it owns an engine).

    Parameters
    ----------
    config
        The validated mapping.

    Raises
    ------
    ValueError
        If the URL is invalid or its driver is not installed.
    """

    def __init__(self, config: RegistryConfig) -> None:
        self._config = config
        self._engine = _registry_engine(config.registry)

    @classmethod
    def from_toml(cls, path: Path) -> RegistryBridge:
        """A bridge configured by the TOML file at ``path``."""
        return cls(load_registry_config(path))

    @property
    def config(self) -> RegistryConfig:
        """The mapping in use."""
        return self._config

    def lookup_study(
        self,
        *,
        patient_id: str | None,
        accession_number: str | None,
        study_date: date | None,
    ) -> RegistryResult:
        """Look up the patient of a study, choosing the key by the configured ``join_key``.

        Without a study date the lookup uses today (UTC) and says so in a warning.
        """
        key = (
            accession_number
            if self._config.registry.join_key == JoinKey.ACCESSION_NUMBER
            else patient_id
        )
        ct_date = study_date
        extra: tuple[str, ...] = ()
        if ct_date is None:
            ct_date = datetime.now(UTC).date()
            extra = ("CT date unknown: today used for the time window",)
        result = self.lookup(key, ct_date)
        if not extra:
            return result
        return RegistryResult(
            status=result.status,
            variables=result.variables,
            warnings=extra + result.warnings,
            source_timestamps=result.source_timestamps,
            elapsed_s=result.elapsed_s,
        )

    def lookup(self, patient_key: str | None, ct_date: date) -> RegistryResult:
        """The clinical variables of ``patient_key`` as of the CT on ``ct_date``.

        Connection failures are retried ``retries`` times with exponential back-off; then the
        result is :attr:`RegistryLookupStatus.UNREACHABLE`. Never raises for registry trouble.
        """
        started = time.monotonic()
        if not patient_key or not patient_key.strip():
            return RegistryResult.without_registry(
                RegistryLookupStatus.UNKNOWN_PATIENT, ("no patient key in the study",)
            )
        settings = self._config.registry
        attempts = settings.retries + 1
        for attempt in range(attempts):
            try:
                result = self._lookup_once(patient_key.strip(), ct_date, started)
            except _UnreachableError as exc:
                _log.warning("registry attempt %d/%d failed: %s", attempt + 1, attempts, exc)
                if attempt + 1 < attempts:
                    time.sleep(settings.retry_backoff_s * 2**attempt)
                continue
            _log.info(
                "registry lookup: %s, %d/%d variables, %d warning(s), %.2f s",
                result.status.value,
                len(result.variables.present),
                len(result.variables.values),
                len(result.warnings),
                result.elapsed_s,
            )
            return result
        elapsed = time.monotonic() - started
        _log.warning("registry unreachable after %d attempt(s), %.2f s", attempts, elapsed)
        return RegistryResult.without_registry(
            RegistryLookupStatus.UNREACHABLE,
            (f"registry unreachable after {attempts} attempt(s): imaging only",),
            elapsed,
        )

    def _lookup_once(self, patient_key: str, ct_date: date, started: float) -> RegistryResult:
        try:
            connection = self._engine.connect()
        except SQLAlchemyError as exc:
            raise _UnreachableError(_error_kind(exc)) from exc
        with connection:
            # Autocommit: every statement is its own (read-only) transaction, so one failing
            # query (a timeout, a mapping error) does not abort the others.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                hits = _fetch(
                    connection, _patient_statement(self._config.patient), patient_key, ct_date, 0
                )
            except SQLAlchemyError as exc:
                _raise_if_connection_lost(exc)
                _log.warning("registry patient query failed: %s", _error_kind(exc))
                return RegistryResult.without_registry(
                    RegistryLookupStatus.UNREACHABLE,
                    ("patient query failed: imaging only",),
                    time.monotonic() - started,
                )
            if not hits:
                return RegistryResult.without_registry(
                    RegistryLookupStatus.UNKNOWN_PATIENT,
                    ("patient not found in the registry: imaging only",),
                    time.monotonic() - started,
                )
            if len(hits) > 1:
                return RegistryResult.without_registry(
                    RegistryLookupStatus.DUPLICATE_PATIENT,
                    (f"patient key matches {len(hits)} registry rows: imaging only",),
                    time.monotonic() - started,
                )
            values: dict[str, float | None] = {}
            timestamps: dict[str, date | None] = {}
            warnings: list[str] = []
            for name, source in self._config.variables.items():
                window = self._config.window_days(name)
                try:
                    rows = _fetch(
                        connection, _variable_statement(source), patient_key, ct_date, window
                    )
                except SQLAlchemyError as exc:
                    _raise_if_connection_lost(exc)
                    warnings.append(f"{name}: registry query failed ({_error_kind(exc)})")
                    values[name] = None
                    continue
                choice = choose_value(name, source, rows, ct_date, window)
                values[name] = choice.value
                warnings.extend(choice.warnings)
                if choice.value is not None:
                    timestamps[name] = choice.taken_at
        variables = ClinicalVariables(values)
        status = RegistryLookupStatus.PARTIAL if variables.missing else RegistryLookupStatus.OK
        return RegistryResult(
            status=status,
            variables=variables,
            warnings=tuple(warnings),
            source_timestamps=MappingProxyType(timestamps),
            elapsed_s=time.monotonic() - started,
        )

    def close(self) -> None:
        """Close the pooled registry connections."""
        self._engine.dispose()

    def __enter__(self) -> RegistryBridge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _raise_if_connection_lost(exc: SQLAlchemyError) -> None:
    """Re-raise as retryable when the connection died; other errors concern one statement."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        raise _UnreachableError(_error_kind(exc)) from exc


def _error_kind(exc: SQLAlchemyError) -> str:
    """A short, value-free description of a database error for warnings and logs."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    # 57014 is PostgreSQL's query_canceled; SQLite reports a progress-handler abort as
    # "interrupted".
    if sqlstate == "57014" or "interrupted" in str(orig):
        return "statement timeout"
    return type(orig).__name__ if orig is not None else type(exc).__name__


def _fetch(
    connection: Connection, statement: Executable, patient_key: str, ct_date: date, window: int
) -> list[RegistryRow]:
    params = {
        "patient_key": patient_key,
        "ct_date": ct_date,
        "window_start": ct_date - timedelta(days=window),
    }
    result = connection.execute(statement, params)
    keys = set(result.keys())
    rows = []
    for mapping in result.mappings().fetchmany(_MAX_ROWS):
        rows.append(
            RegistryRow(
                value=mapping["value"] if "value" in keys else None,
                unit=mapping["unit"] if "unit" in keys else None,
                taken_at=mapping["taken_at"] if "taken_at" in keys else None,
            )
        )
    return rows


def _table(source: PatientConfig | VariableConfig, *names: str | None) -> Any:
    assert source.table is not None  # guaranteed by the config validators
    columns = sorted({n for n in names if n})
    return table(source.table, *(column(n) for n in columns), schema=source.db_schema)


def _patient_statement(source: PatientConfig) -> Executable:
    if source.query is not None:
        return text(source.query)
    assert source.key_column is not None
    registry_table = _table(source, source.key_column)
    return (
        select(literal_column("1").label("hit"))
        .select_from(registry_table)
        .where(registry_table.c[source.key_column] == bindparam("patient_key"))
    )


def _variable_statement(source: VariableConfig) -> Executable:
    if source.query is not None:
        return text(source.query)
    assert source.column is not None and source.key_column is not None
    registry_table = _table(
        source,
        source.column,
        source.key_column,
        source.date_column,
        source.unit_column,
        *source.filters,
    )
    columns = [registry_table.c[source.column].label("value")]
    if source.date_column:
        columns.append(registry_table.c[source.date_column].label("taken_at"))
    if source.unit_column:
        columns.append(registry_table.c[source.unit_column].label("unit"))
    conditions = [registry_table.c[source.key_column] == bindparam("patient_key")]
    conditions += [registry_table.c[k] == literal(v) for k, v in source.filters.items()]
    return select(*columns).select_from(registry_table).where(*conditions)


def _registry_engine(settings: ConnectionConfig) -> Engine:
    """An engine that reads only and gives up on time."""
    raw = settings.resolved_url()
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ValueError("invalid registry URL") from exc
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = _read_only_sqlite_url(url)
        kwargs["connect_args"] = {
            "timeout": settings.statement_timeout_s,
            "check_same_thread": False,
        }
    elif backend == "postgresql":
        options = " ".join(
            part
            for part in (
                str(url.query.get("options", "")),
                "-c default_transaction_read_only=on",
                f"-c statement_timeout={int(settings.statement_timeout_s * 1000)}",
            )
            if part
        )
        kwargs["connect_args"] = {
            "connect_timeout": max(1, math.ceil(settings.connect_timeout_s)),
            "options": options,
        }
        kwargs["pool_size"] = 2
        kwargs["max_overflow"] = 2
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise ValueError(f"cannot use registry URL ({type(exc).__name__})") from exc
    if backend == "sqlite":
        _sqlite_statement_timeout(engine, settings.statement_timeout_s)
    return engine


def _read_only_sqlite_url(url: URL) -> URL:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    path = Path(database).expanduser().resolve()
    return url.set(database=f"file:{path.as_posix()}", query={"mode": "ro", "uri": "true"})


def _sqlite_statement_timeout(engine: Engine, timeout_s: float) -> None:
    """SQLite has no statement timeout: a progress handler interrupts overdue statements."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        info = record.info

        def overdue() -> int:
            deadline = info.get("deadline")
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        dbapi_connection.set_progress_handler(overdue, 10_000)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _start(connection: Any, *_args: Any) -> None:
        connection.info["deadline"] = time.monotonic() + timeout_s
