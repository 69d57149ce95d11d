"""Receipt checks of dicom_node._instance_checks that need no association."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicom_node._instance_checks import inflated_size_exceeds


def _deflated_file(path: Path, inflated_bytes: int) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    with path.open("wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(handle, meta)  # type: ignore[arg-type]
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        handle.write(deflater.compress(b"\0" * inflated_bytes) + deflater.flush())
    return path


def test_a_deflated_file_is_measured_whatever_the_caller_says(tmp_path: Path) -> None:
    bomb = _deflated_file(tmp_path / "bomb.dcm", 2_000_000)
    assert inflated_size_exceeds(bomb, 1_000_000)
    assert inflated_size_exceeds(bomb, 1_000_000, DeflatedExplicitVRLittleEndian)
    assert not inflated_size_exceeds(bomb, 3_000_000, DeflatedExplicitVRLittleEndian)


def test_a_known_native_transfer_syntax_skips_reading_the_file(tmp_path: Path) -> None:
    # The presentation context's transfer syntax is enough: the file is not even opened.
    assert not inflated_size_exceeds(tmp_path / "absent.dcm", 1, ExplicitVRLittleEndian)
    with pytest.raises(OSError):
        inflated_size_exceeds(tmp_path / "absent.dcm", 1)
