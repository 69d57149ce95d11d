"""The Orthanc launcher against the real Debian Orthanc."""

from __future__ import annotations

import json

import pytest

from pancreas_node.orthanc_server import OrthancConfig, OrthancServer

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
