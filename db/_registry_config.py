"""The registry mapping configuration (TOML, validated with pydantic).

See ``deploy/registry/example-registry.toml`` for a complete, commented example.
"""

from __future__ import annotations

import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from db._registry_values import DATE_OF_BIRTH, normalise_unit, supported_units
from pancreas_contracts.clinical import CLINICAL_VARIABLES, VariableKind, variable_by_name

__all__ = [
    "ConnectionConfig",
    "JoinKey",
    "PatientConfig",
    "RegistryConfig",
    "TimeRule",
    "VariableConfig",
    "load_registry_config",
]

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class JoinKey(StrEnum):
    """Which study attribute identifies the patient in the registry.

    ``MRN`` is the hospital's medical record number, which DICOM normally carries as
    PatientID; it is spelled out so the configuration says what the registry calls it.
    """

    PATIENT_ID = "PatientID"
    MRN = "MRN"
    ACCESSION_NUMBER = "AccessionNumber"


class TimeRule(StrEnum):
    """Which of several rows of a variable is used."""

    LATEST_BEFORE_CT = "latest_before_ct"
    """The latest dated value on or before the CT day, within ``window_days``."""
    LATEST = "latest"
    """The latest value whatever its date (undated rows last)."""
    SINGLE = "single"
    """One value expected; different values in several rows make it missing."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ConnectionConfig(_Frozen):
    """``[registry]``: where the registry is and how patiently to talk to it."""

    url: str | None = None
    url_env: str | None = Field(
        default=None, description="Environment variable that, when set, overrides url."
    )
    join_key: JoinKey = JoinKey.PATIENT_ID
    connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    statement_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.5, ge=0, le=60)
    window_days: int = Field(default=90, ge=0, le=36500)

    @model_validator(mode="after")
    def _has_url(self) -> Self:
        if not self.url and not self.url_env:
            raise ValueError("registry needs url or url_env")
        return self

    def resolved_url(self) -> str:
        """The URL to connect to (``url_env``'s value when set in the environment).

        Raises
        ------
        ValueError
            If neither is available.
        """
        if self.url_env and os.environ.get(self.url_env):
            return os.environ[self.url_env]
        if self.url:
            return self.url
        raise ValueError(f"environment variable {self.url_env} is not set")

    @property
    def max_unreachable_s(self) -> float:
        """Upper bound of the time spent before reporting the registry unreachable.

        PostgreSQL rounds the connect timeout up to whole seconds, at least 2 (libpq).
        """
        connect = max(2.0, float(int(self.connect_timeout_s + 0.999)))
        backoff = sum(self.retry_backoff_s * 2.0**i for i in range(self.retries))
        return (self.retries + 1) * connect + backoff


class _TableSource(_Frozen):
    query: str | None = None
    table: str | None = Field(default=None, pattern=_IDENTIFIER)
    db_schema: str | None = Field(default=None, alias="schema", pattern=_IDENTIFIER)
    key_column: str | None = Field(default=None, pattern=_IDENTIFIER)

    def _check_source(self, what: str) -> None:
        if self.query is not None:
            if self.table or self.key_column:
                raise ValueError(f"{what}: give either query or table/key_column, not both")
            if ":patient_key" not in self.query:
                raise ValueError(f"{what}: query must use the :patient_key parameter")
        elif not (self.table and self.key_column):
            raise ValueError(f"{what}: needs query, or table and key_column")


class PatientConfig(_TableSource):
    """``[patient]``: how a patient key finds the patient (exactly one row expected)."""

    @model_validator(mode="after")
    def _source(self) -> Self:
        self._check_source("patient")
        return self


class VariableConfig(_TableSource):
    """``[variables.<name>]``: where one clinical variable comes from.

    Either ``query`` (SQL with ``:patient_key`` and optionally ``:ct_date``/``:window_start``,
    returning a ``value`` column and optionally ``unit`` and ``taken_at``) or
    ``table``/``column``/``key_column`` with optional ``date_column``, ``unit_column`` and
    equality ``filters``.
    """

    column: str | None = Field(default=None, pattern=_IDENTIFIER)
    date_column: str | None = Field(default=None, pattern=_IDENTIFIER)
    unit_column: str | None = Field(default=None, pattern=_IDENTIFIER)
    filters: dict[str, str | int | float] = Field(default_factory=dict)
    unit: str = ""
    time_rule: TimeRule = TimeRule.LATEST_BEFORE_CT
    window_days: int | None = Field(default=None, ge=0, le=36500)
    categories: dict[str, int] = Field(default_factory=dict)

    @field_validator("filters")
    @classmethod
    def _filter_columns(cls, value: dict[str, str | int | float]) -> dict[str, str | int | float]:
        for column in value:
            if not re.match(_IDENTIFIER, column):
                raise ValueError(f"filter column {column!r} is not a plain identifier")
        return value


class RegistryConfig(_Frozen):
    """The whole registry mapping: connection, patient lookup and per-variable sources."""

    registry: ConnectionConfig
    patient: PatientConfig
    variables: dict[str, VariableConfig]

    @model_validator(mode="after")
    def _variables(self) -> Self:
        known = {v.name for v in CLINICAL_VARIABLES}
        for name, source in self.variables.items():
            if name not in known:
                raise ValueError(f"unknown clinical variable {name!r}")
            if source.query is None:
                source._check_source(f"variables.{name}")
                if not source.column:
                    raise ValueError(f"variables.{name}: table source needs column")
                if source.time_rule is TimeRule.LATEST_BEFORE_CT and not source.date_column:
                    raise ValueError(f"variables.{name}: latest_before_ct needs date_column")
            else:
                source._check_source(f"variables.{name}")
            spec = variable_by_name(name)
            if source.unit == DATE_OF_BIRTH:
                if name != "age":
                    raise ValueError(f"variables.{name}: {DATE_OF_BIRTH} is only for age")
            elif spec.kind is VariableKind.CATEGORICAL:
                if source.unit:
                    raise ValueError(f"variables.{name}: categorical variables have no unit")
                bad = sorted(set(source.categories.values()) - set(spec.categories))
                if bad:
                    raise ValueError(f"variables.{name}: codes {bad} are not allowed")
            else:
                if source.categories:
                    raise ValueError(f"variables.{name}: categories need a categorical variable")
                if normalise_unit(source.unit) not in supported_units(name):
                    raise ValueError(
                        f"variables.{name}: unit {source.unit!r} not supported "
                        f"(one of {list(supported_units(name))})"
                    )
        return self

    def window_days(self, name: str) -> int:
        """The time window of variable ``name``."""
        own = self.variables[name].window_days
        return self.registry.window_days if own is None else own


def load_registry_config(path: Path) -> RegistryConfig:
    """Read and validate a registry mapping file.

    Raises
    ------
    ValueError
        If the file cannot be read, is not TOML, or does not validate.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read registry config {path}: {exc}") from exc
    try:
        return RegistryConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"invalid registry config {path}: {problems}") from exc
