"""The systemd units of ``deploy/systemd/`` checked by ``systemd-analyze``, and Orthanc's renderer.

``systemd-analyze verify`` needs no running systemd (it works in a container where systemd is
not PID 1), but it checks that every ``ExecStart=`` binary exists, so the units are first
rendered into a temporary folder with the install prefix ``/opt/pancreas-ai`` replaced by this
checkout and its virtual environment. ``verify`` exits 0 on a unit with an unknown key or a
value it cannot parse (it only prints a warning and ignores the line), so the tests fail on any
line it prints about our units; a deliberately broken unit shows that such lines are caught.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port, require_executable

SYSTEMD_DIR = REPO_ROOT / "deploy" / "systemd"
PREFIX = "/opt/pancreas-ai"
UNITS = ("pancreas-ai-node.service", "pancreas-ai-orthanc.service", "pancreas-ai-worker@.service")
#: What verify checks for the template: an instance of it (``verify`` of the template file
#: itself checks nothing of its [Service] section).
VERIFIED = (
    "pancreas-ai-node.service",
    "pancreas-ai-orthanc.service",
    "pancreas-ai-worker@0.service",
)
#: systemd-analyze security's overall exposure (0 = fully sandboxed, 10 = none); the units
#: reach 1.4-1.7. A change that drops a protection fails here rather than passing silently.
MAX_EXPOSURE = 2.0


def _render(folder: Path) -> Path:
    """Copy the units into ``folder`` with the install prefix pointed at this checkout.

    The node's drop-in ``local-services.conf`` goes where systemd reads drop-ins (verify picks
    up ``<unit>.d/`` beside the unit file), so it is verified with the node and the workers.
    """
    venv = Path(sys.prefix)
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text(encoding="utf-8")
        text = text.replace(f"{PREFIX}/.venv", str(venv)).replace(PREFIX, str(REPO_ROOT))
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "pancreas-ai-worker@0.service").symlink_to("pancreas-ai-worker@.service")
    for unit in ("pancreas-ai-node.service", "pancreas-ai-worker@.service"):
        dropins = folder / f"{unit}.d"
        dropins.mkdir()
        (dropins / "local-services.conf").write_bytes(
            (SYSTEMD_DIR / "local-services.conf").read_bytes()
        )
    return folder


def _verify(analyze: str, unit: Path) -> list[str]:
    """The lines ``systemd-analyze verify`` prints about our units (empty: clean)."""
    result = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    ours = [line for line in lines if str(unit.parent) in line or "pancreas-ai" in line]
    assert result.returncode == 0 or ours, f"verify failed on {unit.name}:\n" + "\n".join(lines)
    return ours


@pytest.fixture(scope="module")
def analyze() -> str:
    return require_executable("systemd-analyze")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (Path(sys.prefix) / "bin" / "pancreas-node").is_file():
        pytest.skip("the tests must run from the project's virtual environment (make install)")
    return _render(tmp_path_factory.mktemp("units"))


@pytest.mark.parametrize("unit", VERIFIED)
def test_unit_verifies_without_warnings(analyze: str, rendered: Path, unit: str) -> None:
    warnings = _verify(analyze, rendered / unit)
    assert warnings == [], f"systemd-analyze verify {unit}:\n" + "\n".join(warnings)


def test_a_broken_unit_is_caught(analyze: str, rendered: Path, tmp_path: Path) -> None:
    # The control: verify exits 0 on these mistakes; only its printed lines tell.
    text = (rendered / "pancreas-ai-node.service").read_text(encoding="utf-8")
    text = text.replace("ProtectSystem=strict", "ProtectSystem=strictest\nRestartt=always")
    broken = tmp_path / "pancreas-ai-node.service"
    broken.write_text(text, encoding="utf-8")
    warnings = _verify(analyze, broken)
    assert any("Restartt" in line for line in warnings), warnings
    assert any("strictest" in line for line in warnings), warnings


@pytest.mark.parametrize("unit", VERIFIED)
def test_unit_is_sandboxed(analyze: str, rendered: Path, unit: str) -> None:
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(rendered / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_units_share_one_user_and_data_dir() -> None:
    # The plugin and the workers read what the node writes: one account, one state directory.
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text(encoding="utf-8")
        assert "\nUser=pancreas-ai\n" in text, name
        assert "\nStateDirectory=pancreas-ai\n" in text, name
        assert "\nEnvironmentFile=/etc/pancreas-ai/node.env\n" in text, name
        assert "\nRestart=on-failure\n" in text, name
    worker = (SYSTEMD_DIR / "pancreas-ai-worker@.service").read_text(encoding="utf-8")
    assert "\nEnvironment=CUDA_VISIBLE_DEVICES=%i\n" in worker
    sysusers = (SYSTEMD_DIR / "pancreas-ai.sysusers.conf").read_text(encoding="utf-8")
    assert re.search(r"^u pancreas-ai - .* /var/lib/pancreas-ai ", sysusers, re.MULTILINE)


def _render_orthanc(tmp_path: Path, http_port: int, dicom_port: int) -> Path:
    out = tmp_path / "run" / "orthanc.json"
    environ = {
        **os.environ,
        "ORTHANC_ADMIN_PASSWORD": "admin-secret",
        "ORTHANC_VIEWER_PASSWORD": "viewer-secret",
        "PANCREAS_AI_DATA_DIR": str(tmp_path / "data"),
        "PANCREAS_AI_ORTHANC_HTTP_PORT": str(http_port),
        "PANCREAS_AI_ORTHANC_DICOM_PORT": str(dicom_port),
        "PANCREAS_AI_PORT": "11199",
    }
    subprocess.run(
        [
            sys.executable,
            str(SYSTEMD_DIR / "render-orthanc-config.py"),
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "orthanc"),
            "--node-host",
            "node.example",
            "--viewer-dir",
            str(tmp_path / "no-viewer"),
        ],
        env=environ,
        check=True,
        timeout=60,
    )
    return out


def test_orthanc_config_renders_for_a_service(tmp_path: Path) -> None:
    out = _render_orthanc(tmp_path, 18042, 14242)
    assert out.stat().st_mode & 0o777 == 0o600  # it holds the passwords
    config = json.loads(out.read_text(encoding="utf-8"))
    assert config["DicomModalities"]["pancreas_ai"] == ["PANCREAS_AI", "node.example", 11199]
    assert config["HttpPort"] == 18042 and config["DicomPort"] == 14242
    assert config["RegisteredUsers"] == {"admin": "admin-secret", "viewer": "viewer-secret"}
    assert config["RemoteAccessAllowed"] is False
    assert config["PancreasAI"]["VirtualEnv"] == sys.prefix
    assert config["ServeFolders"] == {}  # no built viewer there: nothing served


def test_orthanc_config_refuses_missing_passwords(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORTHANC_")}
    result = subprocess.run(
        [
            sys.executable,
            str(SYSTEMD_DIR / "render-orthanc-config.py"),
            "--out",
            str(tmp_path / "orthanc.json"),
            "--work-dir",
            str(tmp_path),
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ORTHANC_ADMIN_PASSWORD" in result.stderr
    assert not (tmp_path / "orthanc.json").exists()


@pytest.mark.integration
def test_orthanc_starts_with_the_rendered_config(tmp_path: Path) -> None:
    # What ExecStart= runs: Debian's Orthanc with the rendered file, plugin loaded.
    orthanc = require_executable("/usr/sbin/Orthanc")
    http_port, dicom_port = free_port(), free_port()
    config = _render_orthanc(tmp_path, http_port, dicom_port)
    environ = {**os.environ, "PANCREAS_AI_DATA_DIR": str(tmp_path / "data")}
    # The node migrates the database it shares with the plugin (`serve` does it at start).
    subprocess.run(
        [str(Path(sys.prefix) / "bin" / "pancreas-node"), "db", "upgrade"],
        env=environ,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (tmp_path / "orthanc.log").open("wb") as log:
        process = subprocess.Popen(
            [orthanc, str(config)], stdout=log, stderr=subprocess.STDOUT, env=environ
        )
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/pancreas-ai/queue")
        request.add_header("Authorization", "Basic YWRtaW46YWRtaW4tc2VjcmV0")  # admin:admin-secret
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    status = response.status
                    break
            except urllib.error.HTTPError as exc:
                status = exc.code
                if status != 404:  # 404: Orthanc is up, the plugin's routes not yet
                    break
            except OSError:
                pass
            time.sleep(0.2)
        log_text = (tmp_path / "orthanc.log").read_text(errors="replace")
        assert status == 200, f"/pancreas-ai/queue answered {status}:\n{log_text[-3000:]}"
    finally:
        process.terminate()
        process.wait(timeout=30)
