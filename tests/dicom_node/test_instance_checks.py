"""Receipt checks of dicom_node._instance_checks that need no association."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from dicom_node._instance_checks import inflated_size_exceeds, same_content


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


def _ct(path: Path, transfer_syntax: UID, *, window_center: float = 40.0) -> Path:
    ds = Dataset()
    ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    ds.SOPInstanceUID = UID("1.2.3.4")
    ds.WindowCenter = window_center
    ds.Rows, ds.Columns = 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    pixels = np.arange(16, dtype=np.int16).reshape(4, 4) - 8
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, pixels, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(
        path, enforce_file_format=True, implicit_vr=transfer_syntax == ImplicitVRLittleEndian
    )
    return path


def test_a_lossless_re_encoding_is_the_same_content(tmp_path: Path) -> None:
    explicit = _ct(tmp_path / "explicit.dcm", ExplicitVRLittleEndian)
    for syntax in (ImplicitVRLittleEndian, RLELossless):
        other = _ct(tmp_path / f"{syntax.name}.dcm", syntax)
        assert other.read_bytes() != explicit.read_bytes()
        assert same_content(explicit, other), syntax.name
    assert not same_content(
        explicit, _ct(tmp_path / "w.dcm", ImplicitVRLittleEndian, window_center=1)
    )
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    assert not same_content(explicit, tmp_path / "junk.dcm")
