"""The registry mapping file: validation and the shipped example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from db.registry import JoinKey, RegistryConfig, TimeRule, load_registry_config
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "deploy" / "registry" / "example-registry.toml"


def _config(**variables: dict[str, Any]) -> dict[str, Any]:
    return {
        "registry": {"url": "sqlite:///x.db"},
        "patient": {"table": "patients", "key_column": "pid"},
        "variables": variables,
    }


def test_the_example_maps_all_seventeen_variables() -> None:
    config = load_registry_config(EXAMPLE)
    assert len(config.variables) == 17
    assert config.registry.join_key is JoinKey.PATIENT_ID
    assert config.variables["age"].time_rule is TimeRule.SINGLE
    assert config.window_days("glucose") == 60
    assert config.window_days("bmi") == 365


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"shoe_size": {"query": "SELECT :patient_key AS value"}}, "unknown clinical variable"),
        ({"glucose": {"query": "SELECT 1 AS value", "unit": "mg/dL"}}, ":patient_key"),
        ({"glucose": {"query": "SELECT :patient_key AS value", "unit": "g/L"}}, "not supported"),
        ({"sex": {"query": "SELECT :patient_key AS value", "unit": "mg/dL"}}, "no unit"),
        ({"sex": {"query": "SELECT :patient_key AS value", "categories": {"x": 7}}}, "not allowed"),
        (
            {
                "cea": {
                    "query": "SELECT :patient_key AS value",
                    "unit": "ng/mL",
                    "categories": {"a": 1},
                }
            },
            "categorical",
        ),
        (
            {"bmi": {"query": "SELECT :patient_key AS value", "unit": "date_of_birth"}},
            "only for age",
        ),
        ({"bmi": {"table": "t", "key_column": "k", "unit": "kg/m2"}}, "needs column"),
        (
            {"bmi": {"table": "t", "key_column": "k", "column": "c", "unit": "kg/m2"}},
            "needs date_column",
        ),
        (
            {
                "bmi": {
                    "table": "t; DROP TABLE x",
                    "key_column": "k",
                    "column": "c",
                    "unit": "kg/m2",
                }
            },
            "pattern",
        ),
        (
            {
                "bmi": {
                    "query": "SELECT :patient_key",
                    "table": "t",
                    "key_column": "k",
                    "unit": "kg/m2",
                }
            },
            "not both",
        ),
        ({"bmi": {"unit": "kg/m2"}}, "needs query"),
        ({"bmi": {"query": "SELECT :patient_key", "unit": "kg/m2", "colour": "red"}}, "Extra"),
    ],
)
def test_invalid_mappings_are_rejected(variables: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegistryConfig.model_validate(_config(**variables))


def test_connection_needs_a_url_and_url_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="url or url_env"):
        RegistryConfig.model_validate({**_config(), "registry": {}})
    config = RegistryConfig.model_validate(
        {**_config(), "registry": {"url": "sqlite:///a.db", "url_env": "TEST_REGISTRY_URL"}}
    )
    monkeypatch.delenv("TEST_REGISTRY_URL", raising=False)
    assert config.registry.resolved_url() == "sqlite:///a.db"
    monkeypatch.setenv("TEST_REGISTRY_URL", "sqlite:///b.db")
    assert config.registry.resolved_url() == "sqlite:///b.db"
    only_env = RegistryConfig.model_validate({**_config(), "registry": {"url_env": "UNSET_X_URL"}})
    monkeypatch.delenv("UNSET_X_URL", raising=False)
    with pytest.raises(ValueError, match="not set"):
        only_env.registry.resolved_url()


def test_unreachable_bound_counts_retries_and_backoff() -> None:
    config = RegistryConfig.model_validate(
        {
            **_config(),
            "registry": {"url": "x://", "connect_timeout_s": 3, "retries": 2, "retry_backoff_s": 1},
        }
    )
    assert config.registry.max_unreachable_s == pytest.approx(3 * 3 + 1 + 2)


def test_unreadable_files_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read registry config"):
        load_registry_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[registry\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read registry config"):
        load_registry_config(bad)
    invalid = tmp_path / "invalid.toml"
    invalid.write_text('[registry]\nurl = "sqlite://"\nretries = -1\n[patient]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"invalid registry config .*registry\.retries"):
        load_registry_config(invalid)
