"""The compose stack (``deploy/compose/``): the Compose tool's own check, and its wiring.

``docker compose config`` (Compose v2, the docker CLI plugin) or ``docker-compose config``
(v1, Debian 12's ``docker-compose`` package) parses, validates against the Compose
specification and interpolates the file; neither needs a Docker daemon. The wiring tests read
the file as the tool does (``.env.example`` interpolated, anchors merged) and check what no
schema can: that names and ports agree between services, and that the files they mount exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy._files import (
    COMPOSE_DIR,
    COMPOSE_ENV_EXAMPLE,
    COMPOSE_FILE,
    interpolate,
    load_compose,
    read_env_file,
)

NODE_SERVICES = ("node", "worker", "worker-gpu0", "orthanc")


def _compose_command() -> list[str]:
    """``docker compose`` when the v2 plugin answers, else ``docker-compose``, else skip."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    pytest.skip(
        "neither `docker compose` (the docker CLI's compose plugin) nor `docker-compose` "
        "(Debian's docker-compose package; `make deploy-check` installs it) is installed"
    )
    raise AssertionError("unreachable")


def _run_config(env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: a POSTGRES_PASSWORD exported in the developer's shell would hide
    # a missing one in the env file.
    environ = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "DOCKER_HOST"}}
    return subprocess.run(
        [*_compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=COMPOSE_DIR,
        env=environ,
        check=False,
    )


@pytest.fixture(scope="module")
def variables() -> dict[str, str]:
    return read_env_file(COMPOSE_ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(variables: dict[str, str]) -> dict[str, Any]:
    return load_compose(variables)


def test_compose_tool_validates_the_file() -> None:
    result = _run_config(COMPOSE_ENV_EXAMPLE, "--profile", "gpu", "config")
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == {
        "postgres",
        "rabbitmq",
        "node",
        "worker",
        "worker-gpu0",
        "orthanc",
        "prometheus",
        "grafana",
    }
    assert rendered["services"]["worker"]["deploy"]["replicas"] == 2
    # Only `--profile gpu` starts the GPU worker (v1's `config --services` lists it anyway).
    assert rendered["services"]["worker-gpu0"]["profiles"] == ["gpu"]
    assert "profiles" not in rendered["services"]["worker"]


def test_compose_tool_refuses_a_missing_password(tmp_path: Path) -> None:
    lines = COMPOSE_ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    env_file = tmp_path / "env"
    env_file.write_text(
        "\n".join(line for line in lines if not line.startswith("POSTGRES_PASSWORD=")) + "\n",
        encoding="utf-8",
    )
    result = _run_config(env_file, "config")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_every_variable_has_an_example(variables: dict[str, str]) -> None:
    # Each ${NAME} of the file without a default is in .env.example, so a copy of it suffices.
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    interpolate(text, variables)  # raises for a required variable that is missing
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(text, {k: v for k, v in variables.items() if k != "POSTGRES_PASSWORD"})


def test_node_image_is_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name in NODE_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == REPO_ROOT, name
        assert (context / build["dockerfile"]).is_file(), name
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "\nFROM debian:bookworm\n" in dockerfile
    assert "make install" in dockerfile
    # Every source the Dockerfile copies exists in the checkout (the .whl* wildcard is optional).
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                if "*" not in source:
                    assert (REPO_ROOT / source).exists() or source == "build/ohif/", source


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def test_services_reach_each_other_by_name(compose: dict[str, Any]) -> None:
    services = compose["services"]
    node_env = services["node"]["environment"]
    assert _host(node_env["PANCREAS_AI_DATABASE_URL"]) in services
    assert node_env["PANCREAS_AI_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert _host(node_env["PANCREAS_AI_BROKER_URL"]) in services
    assert node_env["PANCREAS_AI_BIND_ADDRESS"] == "0.0.0.0"
    destinations = yaml.safe_load(node_env["PANCREAS_AI_DESTINATIONS"])
    assert [d["host"] for d in destinations] == ["orthanc"]
    assert destinations[0]["port"] == int(node_env["PANCREAS_AI_ORTHANC_DICOM_PORT"])
    # Orthanc sends stable series to the node's service, on the node's DICOM port.
    orthanc_command = " ".join(services["orthanc"]["command"])
    assert "--node-host node " in orthanc_command
    # `exec` only for Orthanc: an exec'd renderer would end the container once it has written.
    assert orthanc_command.count("exec ") == 1
    assert "&& exec /usr/sbin/Orthanc " in orthanc_command
    assert "/opt/pancreas-ai/deploy/systemd/render-orthanc-config.py" in orthanc_command
    assert (REPO_ROOT / "deploy/systemd/render-orthanc-config.py").is_file()
    published = {p.rsplit(":", 1)[1] for p in services["node"]["ports"]}
    assert published == {node_env["PANCREAS_AI_PORT"]}
    # The data dir is the one volume that node, workers and Orthanc share.
    for name in NODE_SERVICES:
        assert "data:/var/lib/pancreas-ai" in services[name]["volumes"], name
        env = services[name]["environment"]
        assert env["PANCREAS_AI_DATA_DIR"] == "/var/lib/pancreas-ai", name


def test_ports_are_published_on_loopback_by_default(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_workers_scale_and_gpu_worker_reserves_a_gpu(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["worker"]["command"] == ["worker"]
    assert int(services["worker"]["deploy"]["replicas"]) >= 1
    assert services["worker"]["environment"]["PANCREAS_AI_DEVICE"] == "cpu"
    gpu = services["worker-gpu0"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["PANCREAS_AI_DEVICE"] == "cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["device_ids"] == ["0"]


def test_monitoring_is_wired(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in services["prometheus"]["volumes"]}
    scrape = yaml.safe_load((COMPOSE_DIR / "../prometheus/prometheus.yml").read_text())
    assert "../prometheus/prometheus.yml" in mounts
    port = services["node"]["environment"]["PANCREAS_AI_METRICS_PORT"]
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["pancreas-ai-node"]["static_configs"][0]["targets"] == [f"node:{port}"]
    worker_sd = jobs["pancreas-ai-worker"]["dns_sd_configs"][0]
    assert set(worker_sd["names"]) == {"worker", "worker-gpu0"}
    assert str(worker_sd["port"]) == port
    grafana = {m.split(":")[0]: m.split(":")[1] for m in services["grafana"]["volumes"]}
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    assert (provisioning / "datasources" / "prometheus.yml").is_file()
    providers = yaml.safe_load((provisioning / "dashboards" / "pancreas-ai.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == grafana["../grafana"]
