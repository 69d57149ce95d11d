"""Fixtures shared by the whole suite: real external services, never mocks.

In CI (``CI=true``) a required tool or service that cannot be found or started fails the test
loudly; on a developer machine it skips with the reason. The same holds for the read-only
public CT examples (``../shared/data`` beside the checkout, or ``$PANCREAS_AI_SHARED_DATA``):
CI machines always have them, so there a missing folder is a broken setup, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pancreas_node.orthanc_server import OrthancConfig, OrthancError, OrthancServer
from pancreas_node.rabbitmq_server import RabbitMQConfig, RabbitMQError, RabbitMQServer

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The variable that points the tests at the shared public CT examples.
SHARED_DATA_VARIABLE = "PANCREAS_AI_SHARED_DATA"
#: Where they are without it: beside the checkout.
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def in_ci() -> bool:
    """Whether the suite runs under ``.ci/run``."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_executable(name: str) -> str:
    """Return the path of ``name`` or fail (CI) / skip (elsewhere)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (run `make system-deps`)")
        raise AssertionError("unreachable")
    return path


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shared_data_dir() -> Path:
    """The folder of the shared public CT examples: ``$PANCREAS_AI_SHARED_DATA`` or the default.

    Read at each call, not at import, so a test (or a shell) can point it elsewhere.
    """
    value = os.environ.get(SHARED_DATA_VARIABLE, "").strip()
    return Path(value).expanduser() if value else DEFAULT_SHARED_DATA


def require_shared_data(case: str | None = None) -> Path:
    """The shared data folder, or one case folder in it; skip where absent, fail in CI.

    The message names the folder looked for and the variable to set; it cannot point at the
    data's own README, which is inside the missing folder.
    """
    root = shared_data_dir()
    path = root if case is None else root / case
    if not path.is_dir():
        what = "the shared public CT data" if case is None else f"shared case {case!r}"
        holding = "the folder holding pancreas-ct-0001/ and totalsegmentator-example/"
        origin = (
            f"from ${SHARED_DATA_VARIABLE}, which should name {holding}"
            if os.environ.get(SHARED_DATA_VARIABLE, "").strip()
            else f"the default, beside the checkout; set {SHARED_DATA_VARIABLE} to {holding}"
        )
        unavailable(f"{what} not found at {path.resolve()} ({origin})")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only public CT examples (see :func:`require_shared_data`)."""
    return require_shared_data()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A real Orthanc (Debian package) with DICOMweb on free loopback ports."""
    require_executable("/usr/sbin/Orthanc")
    config = OrthancConfig(
        work_dir=tmp_path_factory.mktemp("orthanc"),
        http_port=free_port(),
        dicom_port=free_port(),
        stable_age=2,
    )
    server = OrthancServer(config)
    try:
        server.start()
    except OrthancError as exc:
        unavailable(f"Orthanc did not start: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A private RabbitMQ (Debian package) on free loopback ports, never the machine's own."""
    require_executable("erl")
    server = RabbitMQServer(RabbitMQConfig(work_dir=tmp_path_factory.mktemp("rabbitmq")))
    try:
        server.start()
    except RabbitMQError as exc:
        unavailable(f"RabbitMQ did not start: {exc}")
    yield server
    server.stop()
