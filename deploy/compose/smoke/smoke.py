"""Start the compose stack for real and send it a CT: the deployment's smoke test.

Needs a running Docker daemon, the compose tool (``docker compose`` or ``docker-compose``),
DCMTK (``echoscu``, ``storescu``) and the project's virtual environment (run it with
``.venv/bin/python``). What it does, each step with a time limit:

1. optionally builds the node image from a clean context (``--build``: the checkout's files
   that git tracks or does not ignore, ``build/ohif`` and the wheels of ``--wheels``; never
   ``.venv`` or ``node_modules``), and the stand-ins of ``docker-compose.smoke.yml``;
2. ``up`` of PostgreSQL, RabbitMQ, the node, ``--workers`` CPU workers, Orthanc and Prometheus
   on free loopback ports, with a fresh env file (random passwords) and project name;
3. checks: the node answers C-ECHO, Orthanc's REST API and the plugin's queue answer,
   Prometheus scrapes the node and every worker;
4. sends a phantom CT to the node with ``storescu`` and waits until the plugin reports the
   study analysed (the node routed it, a worker analysed it, the node delivered to Orthanc);
5. ``down -v`` (unless ``--keep``), and prints what it measured.

Grafana is not started: it has no Debian package, and the machine this was written on reaches
no container registry (see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO / "deploy" / "compose"
FILES = [COMPOSE_DIR / "docker-compose.yml", COMPOSE_DIR / "smoke" / "docker-compose.smoke.yml"]
SERVICES = ["postgres", "rabbitmq", "node", "worker", "orthanc", "prometheus"]
STAND_INS = ("postgres", "rabbitmq", "prometheus")


class SmokeError(RuntimeError):
    """A step did not succeed in time."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        raise SmokeError("neither `docker compose` nor `docker-compose` is installed")
    return [legacy]


def _wait(what: str, timeout_s: float, probe: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``probe`` until it returns a true value; that value and the seconds it took."""
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < timeout_s:
        try:
            value = probe()
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            value, last = None, exc
        if value:
            return value, time.monotonic() - start
        time.sleep(1.0)
    raise SmokeError(f"{what}: not within {timeout_s:.0f} s (last: {last})")


def _context(folder: Path, wheels: Path | None) -> Path:
    """The node image's build context in ``folder``: the checkout without ignored files, the
    viewer and the wheels (a copy, so that ``.venv`` and ``node_modules`` never travel)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [REPO / p.decode() for p in listed if p]
    viewer = REPO / "build" / "ohif"
    if not (viewer / "index.html").is_file():
        raise SmokeError("build/ohif has no viewer: run `make viewer` first")
    paths += [p for p in viewer.rglob("*") if p.is_file()]
    for path in paths:
        if path.is_file():
            target = folder / path.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for wheel in sorted(wheels.glob("*.whl")) if wheels else []:
        (folder / ".whl").mkdir(exist_ok=True)
        shutil.copy2(wheel, folder / ".whl" / wheel.name)
    return folder


def _debian_base() -> None:
    """``debian:bookworm`` from Debian's mirror when no registry can give it (needs root).

    ``debootstrap`` (Debian package) writes a minimal Debian 12 into a folder and ``docker
    import`` makes the image the Dockerfiles start FROM.
    """
    present = subprocess.run(
        ["docker", "image", "inspect", "debian:bookworm"], capture_output=True, check=False
    )
    if present.returncode == 0:
        return
    if shutil.which("debootstrap") is None:
        raise SmokeError("debian:bookworm is missing and debootstrap is not installed")
    with tempfile.TemporaryDirectory(prefix="pancreas-ai-rootfs-") as folder:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "bookworm",
                folder,
                "http://deb.debian.org/debian",
            ],
            check=True,
            timeout=1800,
        )
        tar = subprocess.Popen(["tar", "-C", folder, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-", "debian:bookworm"], stdin=tar.stdout, check=True, timeout=900
        )
        if tar.wait(timeout=60) != 0:
            raise SmokeError("tar of the debootstrap folder failed")


def _build(args: argparse.Namespace, image: str) -> None:
    build_args = ["--build-arg", f"TORCH_INDEX_URL={args.torch_index_url}"]
    if args.extra_ca is not None:
        pem = args.extra_ca.read_text(encoding="utf-8")
        build_args += ["--build-arg", f"EXTRA_CA_CERT={pem}"]
    sys.stderr.write(f"building {image} (make install inside; tens of minutes the first time)\n")
    environ = dict(os.environ)
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False)
    if buildx.returncode != 0:
        # The docker CLI refuses to build without its buildx plugin unless told to use the
        # classic builder, which reads the same Dockerfile.
        environ["DOCKER_BUILDKIT"] = "0"
    with tempfile.TemporaryDirectory(prefix="pancreas-ai-context-") as folder:
        context = _context(Path(folder), args.wheels)
        dockerfile = context / "deploy" / "compose" / "Dockerfile"
        subprocess.run(
            ["docker", "build", "-f", str(dockerfile), *build_args, "-t", image, str(context)],
            check=True,
            timeout=3600,
            env=environ,
        )
    for name in STAND_INS:
        subprocess.run(
            [
                "docker",
                "build",
                "-q",
                "-f",
                str(COMPOSE_DIR / "smoke" / f"Dockerfile.{name}"),
                "-t",
                f"pancreas-ai-smoke-{name}:latest",
                str(COMPOSE_DIR / "smoke"),
            ],
            check=True,
            timeout=1800,
            env=environ,
        )


def _http(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _env_file(folder: Path, args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    values = {
        "COMPOSE_PROJECT_NAME": args.project,
        "NODE_IMAGE": args.image,
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "RABBITMQ_PASSWORD": secrets.token_hex(12),
        "ORTHANC_ADMIN_PASSWORD": secrets.token_hex(12),
        "ORTHANC_VIEWER_PASSWORD": secrets.token_hex(12),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(12),
        "WORKER_REPLICAS": str(args.workers),
        "NODE_DICOM_PORT": str(_free_port()),
        "ORTHANC_HTTP_PORT": str(_free_port()),
        "ORTHANC_DICOM_PORT": str(_free_port()),
        "PROMETHEUS_PORT": str(_free_port()),
        "GRAFANA_PORT": str(_free_port()),
    }
    path = folder / "smoke.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path, values


def _targets(prometheus: str) -> dict[str, list[str]]:
    status, body = _http(f"{prometheus}/api/v1/targets")
    if status != 200:
        return {}
    health: dict[str, list[str]] = {}
    for target in json.loads(body)["data"]["activeTargets"]:
        health.setdefault(target["labels"]["job"], []).append(target["health"])
    return health


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start, check and (unless ``--keep``) remove the stack; the measurements."""
    compose = _compose_command()
    if args.build:
        if args.debootstrap:
            _debian_base()
        _build(args, args.image)
    work = Path(tempfile.mkdtemp(prefix="pancreas-ai-smoke-"))
    env_file, values = _env_file(work, args)
    base = [*compose, "--env-file", str(env_file)]
    for path in FILES:
        base += ["-f", str(path)]
    report: dict[str, Any] = {"compose": " ".join(compose[-2:]), "workers": args.workers}
    started = time.monotonic()
    try:
        subprocess.run([*base, "up", "-d", "--no-build", *SERVICES], check=True, timeout=900)
        report["up_s"] = round(time.monotonic() - started, 1)
        node_port = values["NODE_DICOM_PORT"]
        _, report["node_echo_s"] = _wait(
            "C-ECHO to the node",
            args.timeout,
            lambda: (
                subprocess.run(
                    ["echoscu", "-aec", "PANCREAS_AI", "127.0.0.1", node_port],
                    capture_output=True,
                    timeout=30,
                    check=False,
                ).returncode
                == 0
            ),
        )
        orthanc = f"http://127.0.0.1:{values['ORTHANC_HTTP_PORT']}"
        admin = ("admin", values["ORTHANC_ADMIN_PASSWORD"])
        _, report["orthanc_s"] = _wait(
            "Orthanc's REST API", args.timeout, lambda: _http(f"{orthanc}/system", admin)[0] == 200
        )
        _, report["plugin_queue_s"] = _wait(
            "the plugin's /pancreas-ai/queue",
            args.timeout,
            lambda: _http(f"{orthanc}/pancreas-ai/queue", admin)[0] == 200,
        )
        status, _ = _http(f"{orthanc}/ohif/index.html", admin)
        report["ohif_http_status"] = status
        prometheus = f"http://127.0.0.1:{values['PROMETHEUS_PORT']}"
        wanted = {"pancreas-ai-node": 1, "pancreas-ai-worker": args.workers}

        def scraped() -> dict[str, list[str]] | None:
            health = _targets(prometheus)
            ok = all(health.get(job, []).count("up") == n for job, n in wanted.items())
            return health if ok else None

        report["prometheus_targets"], report["prometheus_s"] = _wait(
            "Prometheus scraping the node and every worker", args.timeout, scraped
        )
        if not args.no_study:
            ports = {"ORTHANC": values["ORTHANC_DICOM_PORT"], "PANCREAS_AI": node_port}
            report.update(_send_study(work, ports, orthanc, admin, args.study_timeout))
        report["result"] = "passed"
    except (SmokeError, subprocess.SubprocessError) as exc:
        report["result"] = f"failed: {exc}"
        for service in SERVICES:  # one by one: a chatty service hides no other's lines
            logs = subprocess.run(
                [*base, "logs", "--no-color", "--tail", "25", service],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            sys.stderr.write(logs.stdout[-6000:])
    finally:
        if args.keep:
            sys.stderr.write(f"kept: {' '.join(base)} ps\n")
        else:
            subprocess.run([*base, "down", "-v", "--remove-orphans"], check=False, timeout=300)
            shutil.rmtree(work, ignore_errors=True)
    report["total_s"] = round(time.monotonic() - started, 1)
    return report


def _send_study(
    work: Path, ports: dict[str, str], orthanc: str, admin: tuple[str, str], timeout_s: float
) -> dict[str, Any]:
    """A phantom CT to the node; wait for the plugin to report the study analysed."""
    from pydicom import dcmread

    cohort = work / "phantom"
    subprocess.run(
        [str(Path(sys.prefix) / "bin" / "pancreas-node"), "phantom", "--out", str(cohort)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    first = next(p for p in sorted(cohort.rglob("*.dcm")))
    study_uid = str(dcmread(first, stop_before_pixels=True).StudyInstanceUID)
    series_dir = first.parent
    sent = time.monotonic()
    storescu = shutil.which("storescu", path="/usr/bin:/usr/local/bin")
    if storescu is None:
        raise SmokeError("DCMTK's storescu is not installed")
    # To Orthanc (the PACS) and to the node, as a scanner routing to both would.
    for called, port in ports.items():
        subprocess.run(
            [storescu, "-aet", "SMOKE_SCU", "-aec", called, "+sd", "+r", "127.0.0.1", port,
             str(series_dir)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    done = {"ai-done", "ai-no-tumor", "ai-no-pdac", "ai-refused", "ai-failed", "ai-skipped"}

    def finished() -> dict[str, Any] | None:
        status, body = _http(f"{orthanc}/pancreas-ai/studies/{study_uid}/results", admin)
        if status != 200:
            return None
        answer: dict[str, Any] = json.loads(body)
        return answer if answer.get("status") in done else None

    answer, waited = _wait("the study's analysis reported by the plugin", timeout_s, finished)
    return {
        "study_status": answer.get("status"),
        "study_reason": answer.get("reason"),
        "study_labels": answer.get("labels"),
        "study_done_s": round(time.monotonic() - sent, 1),
        "study_wait_s": round(waited, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="build the images first")
    parser.add_argument("--image", default="pancreas-ai-node:latest")
    parser.add_argument("--wheels", type=Path, default=None, help="wheels for .whl/ (offline)")
    parser.add_argument("--torch-index-url", default="https://download.pytorch.org/whl/cpu")
    parser.add_argument("--extra-ca", type=Path, default=None, help="PEM of a TLS proxy's CA")
    parser.add_argument(
        "--debootstrap",
        action="store_true",
        help="make debian:bookworm with debootstrap when it is missing (no registry)",
    )
    parser.add_argument("--project", default="pancreas-ai-smoke")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per check")
    parser.add_argument("--study-timeout", type=float, default=900.0)
    parser.add_argument("--no-study", action="store_true", help="skip the phantom CT")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--report", type=Path, default=None, help="write the report (JSON)")
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    sys.stdout.write(text + "\n")
    if args.report is not None:
        args.report.write_text(text + "\n", encoding="utf-8")
    return 0 if report["result"] == "passed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
