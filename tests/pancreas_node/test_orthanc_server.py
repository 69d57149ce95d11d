"""The Orthanc launcher against the real Debian Orthanc."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from pancreas_node.orthanc_server import OrthancConfig, OrthancError, OrthancServer
from tests.conftest import free_port, require_executable

pytestmark = pytest.mark.integration


def test_rest_api_requires_authentication(orthanc: OrthancServer) -> None:
    status, _ = orthanc.request("/system", auth=False)
    assert status == 401
    status, body = orthanc.request("/system")
    assert status == 200
    assert json.loads(body)["DicomAet"] == "ORTHANC"


def test_dicomweb_plugin_is_loaded(orthanc: OrthancServer) -> None:
    plugins = orthanc.get_json("/plugins")
    assert "dicom-web" in plugins
    assert orthanc.get_json("/dicom-web/studies") == [] or isinstance(
        orthanc.get_json("/dicom-web/studies"), list
    )


def test_node_is_registered_as_modality(orthanc: OrthancServer) -> None:
    modalities = orthanc.get_json("/modalities?expand")
    assert modalities["pancreas_ai"]["AET"] == "PANCREAS_AI"


def test_config_renders_valid_json(tmp_path: object) -> None:
    from pathlib import Path

    config = OrthancConfig(work_dir=Path(str(tmp_path)), http_port=1, dicom_port=2)
    rendered = json.loads(config.render())
    assert rendered["AuthenticationEnabled"] is True
    assert rendered["RemoteAccessAllowed"] is False
    assert rendered["HttpPort"] == 1


@pytest.mark.parametrize("kind", ["HTTP", "DICOM"])
def test_a_taken_port_is_named_at_once(kind: str, tmp_path: Path) -> None:
    require_executable("/usr/sbin/Orthanc")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        # Listening but never answering: a stranger on the port, not an Orthanc.
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = int(holder.getsockname()[1])
        config = OrthancConfig(
            work_dir=tmp_path,
            http_port=held if kind == "HTTP" else free_port(),
            dicom_port=held if kind == "DICOM" else free_port(),
        )
        server = OrthancServer(config, startup_timeout_s=30.0)
        start = time.monotonic()
        with pytest.raises(OrthancError, match=f"its {kind} port {held} \\(already in use"):
            server.start()
        # Orthanc's exit is noticed, not the whole start-up timeout waited for.
        assert time.monotonic() - start < 20.0
