"""The Kubernetes manifests (``deploy/kubernetes/``): Kubernetes' schemas, and their wiring.

Each object is validated (strictly: an unknown field is an error) against the JSON schemas
of Kubernetes' OpenAPI definitions that the PyPI package ``kubernetes-validate`` ships, so no
cluster and no network is needed. What a schema cannot see is checked here too: that every
Service selects a workload and names ports it has, that references (ConfigMap, Secret keys,
claims) resolve, that kustomization.yaml lists every manifest, and the GPU worker's request.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import unavailable
from tests.deploy._files import KUBERNETES_DIR, kubernetes_documents

#: Oldest Kubernetes release the manifests are checked against (still supported by the
#: major distributions when written); the newest the package knows is checked as well.
OLDEST_VERSION = "1.30.0"
NAMESPACE = "pancreas-ai"
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


@pytest.fixture(scope="module")
def documents() -> list[tuple[Path, dict[str, Any]]]:
    return kubernetes_documents()


@pytest.fixture(scope="module")
def objects(documents: list[tuple[Path, dict[str, Any]]]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for path, document in documents:
        if document["kind"] == "Kustomization":
            continue
        key = (document["kind"], document["metadata"]["name"])
        assert key not in out, f"{path.name}: {key} defined twice"
        out[key] = document
    return out


def _workloads(objects: dict[tuple[str, str], Any]) -> dict[str, Any]:
    return {name: obj for (kind, name), obj in objects.items() if kind in WORKLOAD_KINDS}


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def test_every_document_is_a_named_object(documents: list[tuple[Path, dict[str, Any]]]) -> None:
    assert documents
    for path, document in documents:
        assert {"apiVersion", "kind"} <= document.keys(), path.name
        if document["kind"] == "Kustomization":
            continue
        if document["kind"] not in {"Kustomization", "Namespace"}:
            assert document["metadata"]["namespace"] == NAMESPACE, path.name
        assert document["metadata"]["name"], path.name


@pytest.mark.parametrize("version", [OLDEST_VERSION, "latest"])
def test_objects_match_kubernetes_schemas(
    objects: dict[tuple[str, str], Any], version: str
) -> None:
    try:
        validator = importlib.import_module("kubernetes_validate")
    except ImportError:
        unavailable("kubernetes-validate is not installed (the dev extras: make install)")
        raise
    desired = validator.latest_version() if version == "latest" else version
    failures = []
    for (kind, name), obj in objects.items():
        try:
            validator.validate(obj, desired, strict=True)
        except validator.ValidationError as exc:
            failures.append(f"{kind}/{name}: {exc.message} at {list(exc.path)}")
    assert failures == []
    # The control: a misspelt field deep in a pod template is an error, not ignored.
    broken = copy.deepcopy(objects[("Deployment", "pancreas-ai-node")])
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["contanerPort"] = 1
    with pytest.raises(validator.ValidationError, match="contanerPort"):
        validator.validate(broken, desired, strict=True)


def test_kustomization_lists_every_manifest(documents: list[tuple[Path, dict[str, Any]]]) -> None:
    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    files = {p.name for p in KUBERNETES_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    # Our images are set in one place; the others are public images used as they are.
    ours = {entry["name"] for entry in kustomization["images"]}
    for path, document in documents:
        if document["kind"] in WORKLOAD_KINDS:
            for container in _containers(document):
                image = container["image"].split(":")[0]
                assert image in ours or image in {"postgres", "rabbitmq"}, (path.name, image)


def test_services_select_workloads_and_their_ports(objects: dict[tuple[str, str], Any]) -> None:
    workloads = _workloads(objects)
    services = {name: obj for (kind, name), obj in objects.items() if kind == "Service"}
    assert set(services) == {"pancreas-ai-node", "orthanc", "postgres", "rabbitmq"}
    for name, service in services.items():
        selector = service["spec"]["selector"]
        matched = [
            w
            for w in workloads.values()
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, f"Service {name} selects {len(matched)} workloads"
        port_names = {p["name"] for c in _containers(matched[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"Service {name}: {port['targetPort']}"
    for name, workload in workloads.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), name


def test_references_resolve(objects: dict[tuple[str, str], Any]) -> None:
    secret = objects[("Secret", "pancreas-ai-secrets")]["stringData"]
    for name, workload in _workloads(objects).items():
        pod = workload["spec"]["template"]["spec"]
        claims = {v["name"]: v for v in pod.get("volumes", [])}
        claim_templates = workload["spec"].get("volumeClaimTemplates", [])
        templates = {t["metadata"]["name"] for t in claim_templates}
        for volume in claims.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in objects, f"{name}: {claim}"
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in objects, name
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == "pancreas-ai-secrets", name
                    assert ref["key"] in secret, f"{name}: secret key {ref['key']}"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in claims or mount["name"] in templates, name


def test_shared_data_dir_is_read_write_many(objects: dict[tuple[str, str], Any]) -> None:
    claim = objects[("PersistentVolumeClaim", "pancreas-ai-data")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    data_dir = objects[("ConfigMap", "pancreas-ai-settings")]["data"]["PANCREAS_AI_DATA_DIR"]
    for name in ("pancreas-ai-node", "pancreas-ai-worker", "pancreas-ai-worker-gpu", "orthanc"):
        workload = objects[("Deployment", name)]
        volumes = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in workload["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {
            m["mountPath"]: volumes.get(m["name"])
            for c in _containers(workload)
            for m in c["volumeMounts"]
        }
        assert mounts[data_dir] == "pancreas-ai-data", name


def test_gpu_worker_requests_one_gpu(objects: dict[tuple[str, str], Any]) -> None:
    gpu = objects[("Deployment", "pancreas-ai-worker-gpu")]
    (container,) = _containers(gpu)
    assert container["args"] == ["worker"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["PANCREAS_AI_DEVICE"] == "cuda"
    tolerations = gpu["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    cpu = objects[("Deployment", "pancreas-ai-worker")]
    (cpu_container,) = _containers(cpu)
    assert cpu_container["args"] == ["worker"]
    assert "nvidia.com/gpu" not in cpu_container["resources"].get("limits", {})


def test_services_reach_each_other_by_name(objects: dict[tuple[str, str], Any]) -> None:
    settings = objects[("ConfigMap", "pancreas-ai-settings")]["data"]
    secret = objects[("Secret", "pancreas-ai-secrets")]["stringData"]
    services = {name for kind, name in objects if kind == "Service"}
    assert urlsplit(secret["PANCREAS_AI_DATABASE_URL"]).hostname in services
    assert urlsplit(secret["PANCREAS_AI_BROKER_URL"]).hostname in services
    destinations = yaml.safe_load(settings["PANCREAS_AI_DESTINATIONS"])
    assert [d["host"] for d in destinations] == ["orthanc"]
    orthanc = " ".join(_containers(objects[("Deployment", "orthanc")])[0]["args"])
    assert "--node-host pancreas-ai-node " in orthanc
    assert orthanc.count("exec ") == 1 and "&& exec /usr/sbin/Orthanc " in orthanc
    node = objects[("Service", "pancreas-ai-node")]
    ports = {p["name"]: p["port"] for p in node["spec"]["ports"]}
    assert ports == {
        "dicom": int(settings["PANCREAS_AI_PORT"]),
        "metrics": int(settings["PANCREAS_AI_METRICS_PORT"]),
    }


def test_pods_run_unprivileged(objects: dict[tuple[str, str], Any]) -> None:
    for name, workload in _workloads(objects).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
