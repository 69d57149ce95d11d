"""Orthanc (Debian, with its DICOMweb plugin) serves every frame of the node's SEG (issue 20).

OHIF and other DICOMweb clients fetch a SEG's frames one by one through
``/dicom-web/studies/<s>/series/<se>/instances/<i>/frames/<n>``; Orthanc cuts frame ``n`` out of
the stored pixel data and answers 400 "Bad file format" when the value's length is not the one
the frames make (a BINARY SEG of 427 x 427 pixels x 36 frames packs into an odd number of bytes,
padded by one: the old writer's SEG of ``ODD_GRID``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.seg_writer import write_seg
from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from tests.conftest import free_port, require_executable
from tests.ohif_extension.processed_study import BUNDLE
from tests.ohif_extension.seg_grid import EVEN_GRID, ODD_GRID, grid_case

pytestmark = [pytest.mark.integration]


def _single_part(body: bytes) -> bytes:
    """The one body part of a ``multipart/related`` answer (its boundary is its first line)."""
    boundary, _, rest = body.partition(b"\r\n")
    assert boundary.startswith(b"--"), body[:200]
    _, _, content = rest.partition(b"\r\n\r\n")
    part, separator, _ = content.partition(b"\r\n" + boundary)
    assert separator, "unterminated multipart answer"
    return part


@pytest.mark.parametrize("grid", [ODD_GRID, EVEN_GRID], ids=["427x427x12", "512x512x300"])
def test_orthanc_serves_the_first_and_last_seg_frames(
    grid: tuple[int, int, int], tmp_path: Path
) -> None:
    require_executable("/usr/sbin/Orthanc")
    case = grid_case(*grid)
    seg_path = tmp_path / "seg.dcm"
    write_seg(case.label, list(case.headers), BUNDLE, seg_path)
    seg = pydicom.dcmread(seg_path)
    count, rows, columns = int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns)
    frames = seg.pixel_array.reshape(count, rows, columns)
    if int(seg.BitsAllocated) == 1:  # PS3.5 8.1.1: first pixel in the lowest bit
        expected = [np.packbits(f.reshape(-1), bitorder="little").tobytes() for f in frames]
    else:
        expected = [f.astype(np.uint8).tobytes() for f in frames]
    config = OrthancConfig(
        work_dir=tmp_path / "orthanc", http_port=free_port(), dicom_port=free_port()
    )
    with OrthancServer(config) as server:
        status, body = server.request(
            "/instances",
            method="POST",
            data=seg_path.read_bytes(),
            content_type="application/dicom",
        )
        assert status == 200, body
        instance = (
            f"/dicom-web/studies/{seg.StudyInstanceUID}/series/{seg.SeriesInstanceUID}"
            f"/instances/{seg.SOPInstanceUID}"
        )
        # Frame 1 and the last frame, as raw little-endian pixels (what viewers ask for).
        for number in (1, count):
            status, body = server.request(f"{instance}/frames/{number}")
            assert status == 200, (number, body[:300])
            pixels = _single_part(body)
            assert len(pixels) == len(expected[number - 1]), (number, len(pixels))
            assert pixels == expected[number - 1], f"frame {number} differs"
            assert any(pixels), f"frame {number} is empty"
