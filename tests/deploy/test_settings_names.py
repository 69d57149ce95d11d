"""Every ``PANCREAS_AI_*`` variable the deployment files set is a setting, with a valid value.

``Settings`` reads ``PANCREAS_AI_<FIELD>``; a variable with no field behind it is ignored
without a word, so a renamed setting would leave a unit, the compose file or a ConfigMap
setting nothing. These tests fail the build instead, and build ``Settings`` from each file's
values so that a value the node would refuse at start (a bad JSON list, a port out of range)
is found here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pancreas_contracts.settings import Settings
from tests.conftest import REPO_ROOT
from tests.deploy._files import (
    COMPOSE_ENV_EXAMPLE,
    DEPLOY,
    kubernetes_documents,
    load_compose,
    read_env_file,
)

PREFIX = "PANCREAS_AI_"
_NAME = re.compile(r"\bPANCREAS_AI_[A-Z0-9_]*[A-Z0-9]\b")
#: Variables with the prefix that are not settings, and who reads them.
NOT_SETTINGS = {
    # orthanc_plugin/_entry.py finds the virtual environment with it, before it can import
    # the project (deploy/orthanc/README.md).
    "PANCREAS_AI_VENV": REPO_ROOT / "orthanc_plugin" / "_entry.py",
}
#: Binary files and generated folders are not read.
_TEXT_SUFFIXES = {"", ".service", ".conf", ".example", ".yml", ".yaml", ".md", ".in", ".toml",
                  ".json", ".js", ".py"}  # fmt: skip


def _deploy_files() -> list[Path]:
    files = [
        p
        for p in sorted(DEPLOY.rglob("*"))
        if p.is_file() and (p.suffix in _TEXT_SUFFIXES or p.name == "Dockerfile")
    ]
    assert files
    return files


def _settings_from(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``Settings`` as a process with these environment variables (and no others) builds it."""
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        if name.startswith(PREFIX):
            monkeypatch.setenv(name, value)
    return Settings()


def test_every_named_variable_is_a_setting() -> None:
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    unknown: dict[str, list[str]] = {}
    for path in _deploy_files():
        for name in set(_NAME.findall(path.read_text(encoding="utf-8", errors="replace"))):
            if name not in fields and name not in NOT_SETTINGS:
                unknown.setdefault(name, []).append(str(path.relative_to(REPO_ROOT)))
    assert unknown == {}, "not fields of pancreas_contracts.settings.Settings: " + str(unknown)


def test_exceptions_are_still_read_where_they_say() -> None:
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    for name, reader in NOT_SETTINGS.items():
        assert name not in fields, f"{name} is a setting now: drop it from NOT_SETTINGS"
        assert name in reader.read_text(encoding="utf-8"), f"{reader} no longer reads {name}"


def test_systemd_environment_file_builds_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = read_env_file(DEPLOY / "systemd" / "node.env.example")
    settings = _settings_from(values, monkeypatch)
    assert settings.data_dir == Path("/var/lib/pancreas-ai")
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert [d.host for d in settings.destinations] == ["127.0.0.1"]


def test_compose_environment_builds_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = load_compose(read_env_file(COMPOSE_ENV_EXAMPLE))
    for name in ("node", "worker", "worker-gpu0", "orthanc"):
        environment: dict[str, Any] = compose["services"][name]["environment"]
        settings = _settings_from({k: str(v) for k, v in environment.items()}, monkeypatch)
        assert settings.data_dir == Path("/var/lib/pancreas-ai"), name


def test_kubernetes_environment_builds_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = {(d["kind"], d["metadata"]["name"]): d for _, d in kubernetes_documents()
               if d["kind"] != "Kustomization"}  # fmt: skip
    config = objects[("ConfigMap", "pancreas-ai-settings")]["data"]
    secret = objects[("Secret", "pancreas-ai-secrets")]["stringData"]
    checked = 0
    for (kind, name), workload in objects.items():
        if kind != "Deployment":
            continue
        for container in workload["spec"]["template"]["spec"]["containers"]:
            values: dict[str, str] = {}
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == "pancreas-ai-settings"
                values.update(config)
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                values[variable["name"]] = secret[ref["key"]] if ref else variable["value"]
            if any(k.startswith(PREFIX) for k in values):
                settings = _settings_from(values, monkeypatch)
                assert settings.data_dir == Path("/var/lib/pancreas-ai"), name
                checked += 1
    assert checked == 4  # node, CPU worker, GPU worker, Orthanc (its plugin)


def test_env_examples_name_no_secret_values() -> None:
    # Examples ship placeholders; a real password committed here would be a leak.
    for path in (
        DEPLOY / "systemd" / "node.env.example",
        DEPLOY / "systemd" / "orthanc.env.example",
        COMPOSE_ENV_EXAMPLE,
    ):
        for key, value in read_env_file(path).items():
            if "PASSWORD" in key:
                assert value == "CHANGE-ME", f"{path.name}: {key}"
    secret = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, key
