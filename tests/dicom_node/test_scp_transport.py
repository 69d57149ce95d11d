"""SCP transport: TLS with DCMTK storescu, and every accepted transfer syntax decodable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from db import series_instance_paths
from dicom_node.node import Node
from inference.volume_io import read_dicom_series
from tests.conftest import require_executable
from tests.dicom_node.conftest import PhantomSeries, make_series, node_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require_executable("openssl")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "node.key", folder / "node.crt"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x"]
    subprocess.run(
        [openssl, *request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_tls_association_with_storescu(
    tmp_path: Path, ct_series: PhantomSeries, certificate: tuple[Path, Path]
) -> None:
    storescu = require_executable("storescu")
    key, cert = certificate
    settings = node_settings(tmp_path, tls_certificate=cert, tls_private_key=key)
    with Node(settings) as node:
        base = [storescu, "-aec", "PANCREAS_AI", "127.0.0.1", str(node.scp.port)]
        tls = ["+tls", str(key), str(cert), "+cf", str(cert)]
        plain = subprocess.run([*base, str(ct_series.files[0])], capture_output=True, timeout=60)
        assert plain.returncode != 0, "a plain TCP association must fail on a TLS port"
        secure = subprocess.run(
            [storescu, *tls, *base[1:], *map(str, ct_series.files[:3])],
            capture_output=True,
            timeout=60,
        )
        assert secure.returncode == 0, secure.stderr
        assert len(series_instance_paths(node.database, ct_series.SeriesInstanceUID)) == 3


def test_incomplete_tls_settings_are_refused(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    with pytest.raises(ValueError, match="TLS needs both"):
        Node(node_settings(tmp_path, tls_certificate=certificate[1])).start()


#: Phantom transfer syntax -> storescu option proposing it (besides the uncompressed ones).
PROPOSE = {
    "implicit": "-xi",
    "deflated": "-xd",
    "jpeg-lossless": "-xs",
    "jpegls": "-xt",
    "jpeg2000": "-xv",
    "rle": "-xr",
}


@pytest.mark.parametrize("syntax", sorted(PROPOSE))
def test_each_transfer_syntax_is_stored_and_decodable(tmp_path: Path, syntax: str) -> None:
    storescu = require_executable("storescu")
    series = make_series(
        tmp_path / "phantom", seed=4, fov_mm=(60.0, 60.0, 30.0), transfer_syntax=syntax
    )
    reference = read_dicom_series(series.folder).volume
    with Node(node_settings(tmp_path / "node")) as node:
        cmd = [storescu, PROPOSE[syntax], "-aec", "PANCREAS_AI", "127.0.0.1", str(node.scp.port)]
        result = subprocess.run([*cmd, *map(str, series.files)], capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
        spooled = [Path(p) for p in series_instance_paths(node.database, series.SeriesInstanceUID)]
    assert len(spooled) == len(series.files)
    sent_syntax = dcmread(series.files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    # The node keeps what it received: no silent transcoding on the association thread.
    assert {dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID for p in spooled} == {
        sent_syntax
    }
    received = read_dicom_series(spooled)
    assert received.volume.array.tobytes() == reference.array.tobytes()
