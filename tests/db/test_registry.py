"""The registry bridge against real databases: statuses, timeouts, read-only use."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.registry import (
    JoinKey,
    RegistryBridge,
    RegistryConfig,
    RegistryLookupStatus,
    RegistryResult,
    seed_demo_registry,
)
from tests.conftest import free_port
from tests.db.conftest import create_pg_database, drop_pg_database, pg_url
from tests.db.registry_helpers import CT, example_config, write_clinical_csv


@pytest.fixture
def seeded(registry_url: str, tmp_path: Path) -> str:
    seed_demo_registry(write_clinical_csv(tmp_path / "clinical.csv"), registry_url, ct_date=CT)
    return registry_url


def _lookup_within(bridge: RegistryBridge, key: str, bound_s: float) -> RegistryResult:
    """Run the lookup in a thread and wait at most ``bound_s`` for it (no fixed sleeps)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(bridge.lookup, key, CT)
        return future.result(timeout=bound_s)


def _with_variable(
    config: RegistryConfig, name: str, query: str, **extra: object
) -> RegistryConfig:
    source = config.variables[name].model_copy(update={"query": query, **extra})
    return config.model_copy(update={"variables": {**config.variables, name: source}})


def _assert_imaging_only(result: RegistryResult, status: RegistryLookupStatus) -> None:
    assert result.status is status
    assert result.imaging_only
    assert result.variables.present == ()
    assert result.warnings


def test_unknown_patient_is_imaging_only(seeded: str) -> None:
    with RegistryBridge(example_config(seeded)) as bridge:
        result = bridge.lookup("PHANTOM-9999", CT)
        _assert_imaging_only(result, RegistryLookupStatus.UNKNOWN_PATIENT)
        assert "PHANTOM-9999" not in " ".join(result.warnings)
        _assert_imaging_only(bridge.lookup("  ", CT), RegistryLookupStatus.UNKNOWN_PATIENT)
        _assert_imaging_only(bridge.lookup(None, CT), RegistryLookupStatus.UNKNOWN_PATIENT)


def test_duplicate_patient_rows_are_a_recorded_error_not_a_pick(seeded: str) -> None:
    engine = create_engine(seeded)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO patients (mrn, pid, gender) VALUES ('X1', 'PHANTOM-0001', 'F')")
            )
    finally:
        engine.dispose()
    with RegistryBridge(example_config(seeded)) as bridge:
        result = bridge.lookup("PHANTOM-0001", CT)
    _assert_imaging_only(result, RegistryLookupStatus.DUPLICATE_PATIENT)
    assert result.warnings == ("patient key matches 2 registry rows: imaging only",)


def test_lookup_study_uses_the_join_key_and_study_date(seeded: str) -> None:
    with RegistryBridge(example_config(seeded)) as bridge:
        found = bridge.lookup_study(patient_id="PHANTOM-0001", accession_number="A1", study_date=CT)
        assert found.status is RegistryLookupStatus.OK
        undated = bridge.lookup_study(
            patient_id="PHANTOM-0001", accession_number=None, study_date=None
        )
        assert undated.warnings[0] == "CT date unknown: today used for the time window"
    by_accession = example_config(seeded, join_key=JoinKey.ACCESSION_NUMBER)
    with RegistryBridge(by_accession) as bridge:
        result = bridge.lookup_study(
            patient_id="PHANTOM-0001", accession_number=None, study_date=CT
        )
        assert result.status is RegistryLookupStatus.UNKNOWN_PATIENT


def test_registry_is_used_read_only(seeded: str) -> None:
    config = _with_variable(
        example_config(seeded),
        "cea",
        "DELETE FROM patients WHERE pid = :patient_key RETURNING 1 AS value",
    )
    with RegistryBridge(config) as bridge:
        result = bridge.lookup("PHANTOM-0001", CT)
        assert result.status is RegistryLookupStatus.PARTIAL
        assert result.variables.values["cea"] is None
        assert any(w.startswith("cea: registry query failed") for w in result.warnings)
        # The patient is still there, and the other 16 variables were read.
        assert len(result.variables.present) == 16
        assert bridge.lookup("PHANTOM-0001", CT).status is RegistryLookupStatus.PARTIAL


def test_slow_query_hits_the_statement_timeout(seeded: str, backend: str) -> None:
    slow = (
        "SELECT 1 AS value FROM pg_sleep(5) WHERE CAST(:patient_key AS text) IS NOT NULL"
        if backend == "postgresql"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)"
        " SELECT count(*) AS value FROM c WHERE :patient_key IS NOT NULL"
    )
    config = _with_variable(example_config(seeded, statement_timeout_s=0.3), "cci", slow)
    with RegistryBridge(config) as bridge:
        started = time.monotonic()
        result = _lookup_within(bridge, "PHANTOM-0001", 4.0)
        assert time.monotonic() - started < 4.0
    assert result.status is RegistryLookupStatus.PARTIAL
    assert "cci: registry query failed (statement timeout)" in result.warnings
    assert result.variables.values["cci"] is None


def test_broken_patient_query_is_reported_not_raised(seeded: str) -> None:
    config = example_config(seeded)
    patient = config.patient.model_copy(
        update={
            "query": "SELECT * FROM no_such_table WHERE x = :patient_key",
            "table": None,
            "key_column": None,
        }
    )
    with RegistryBridge(config.model_copy(update={"patient": patient})) as bridge:
        result = bridge.lookup("PHANTOM-0001", CT)
    _assert_imaging_only(result, RegistryLookupStatus.UNREACHABLE)
    assert result.warnings == ("patient query failed: imaging only",)


def test_refused_port_is_unreachable_within_the_configured_time() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/registry"
    config = example_config(url, connect_timeout_s=2, retries=2, retry_backoff_s=0.05)
    with RegistryBridge(config) as bridge:
        result = _lookup_within(bridge, "PHANTOM-0001", config.registry.max_unreachable_s + 1)
    _assert_imaging_only(result, RegistryLookupStatus.UNREACHABLE)
    assert result.warnings == ("registry unreachable after 3 attempt(s): imaging only",)
    assert result.elapsed_s <= config.registry.max_unreachable_s


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung registry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def test_hung_registry_times_out(silent_server: int) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/registry"
    config = example_config(url, connect_timeout_s=2, retries=0)
    with RegistryBridge(config) as bridge:
        result = _lookup_within(bridge, "PHANTOM-0001", config.registry.max_unreachable_s + 1.5)
    _assert_imaging_only(result, RegistryLookupStatus.UNREACHABLE)
    assert 1.5 <= result.elapsed_s <= config.registry.max_unreachable_s + 0.5


def test_missing_sqlite_registry_is_unreachable(tmp_path: Path) -> None:
    config = example_config(f"sqlite:///{tmp_path / 'absent.db'}", retries=1, retry_backoff_s=0.01)
    with RegistryBridge(config) as bridge:
        result = _lookup_within(bridge, "PHANTOM-0001", 5)
    _assert_imaging_only(result, RegistryLookupStatus.UNREACHABLE)
    assert not (tmp_path / "absent.db").exists()  # read-only: never created


def test_dropped_postgresql_registry_is_unreachable(pg_database: str, tmp_path: Path) -> None:
    name = create_pg_database("pancreas_registry")
    try:
        url = pg_url(name)
        seed_demo_registry(write_clinical_csv(tmp_path / "clinical.csv"), url, ct_date=CT)
        config = example_config(url, connect_timeout_s=2, retries=1, retry_backoff_s=0.05)
        with RegistryBridge(config) as bridge:
            assert bridge.lookup("PHANTOM-0001", CT).status is RegistryLookupStatus.OK
            drop_pg_database(name)  # kills the pooled connection too
            result = _lookup_within(bridge, "PHANTOM-0001", config.registry.max_unreachable_s + 1)
        _assert_imaging_only(result, RegistryLookupStatus.UNREACHABLE)
    finally:
        drop_pg_database(name)


def test_unusable_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid registry URL"):
        RegistryBridge(example_config("not a url"))
    with pytest.raises(ValueError, match="cannot use registry URL"):
        RegistryBridge(example_config("nosuchdialect://x/y"))


def test_without_registry_result() -> None:
    result = RegistryResult.without_registry(RegistryLookupStatus.NOT_CONFIGURED)
    assert result.imaging_only
    assert len(result.variables.missing) == 17
