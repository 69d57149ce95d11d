"""Fixtures shared by the whole suite: real external services, never mocks.

In CI (``CI=true``) a required tool or service that cannot be found or started fails the test
loudly; on a developer machine it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pancreas_node.orthanc_server import OrthancConfig, OrthancError, OrthancServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only public CT examples beside the checkout."""
    if not SHARED_DATA.is_dir():
        unavailable(f"{SHARED_DATA} is absent")
    return SHARED_DATA


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
