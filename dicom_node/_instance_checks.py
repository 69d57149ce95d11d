"""Checks a received instance must pass before it is stored (issue 22, D5, D7, D11).

All of them read the received file in bounded chunks; none loads more than one instance's
own (size-limited) elements into memory.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

__all__ = [
    "PixelProblem",
    "check_pixel_module",
    "content_sha256",
    "inflated_size_exceeds",
    "same_content",
]

_CHUNK = 1 << 20
_PREAMBLE = 128 + 4  # File preamble and "DICM" (PS3.10 7.1)
_META_GROUP_LENGTH_ELEMENT = 12  # (0002,0000) UL element: tag, VR, length, value

#: What pydicom's decoders and the codec plug-ins raise on data they cannot decode.
_DECODE_ERRORS = (
    ValueError,
    RuntimeError,
    NotImplementedError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OverflowError,
)

#: Photometric interpretations by samples per pixel (PS3.3 C.7.6.3.1.2).
_PHOTOMETRIC = {
    1: frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"}),
    3: frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}),
}


@dataclass(frozen=True)
class PixelProblem:
    """Why an instance cannot be decoded; ``in_pixel_data``: the attributes are fine, the
    pixel data itself is truncated or corrupt."""

    reason: str
    in_pixel_data: bool = False


def content_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inflated_size_exceeds(path: Path, limit: int, transfer_syntax: str | None = None) -> bool:
    """Whether a Deflated Explicit VR Little Endian file's data set inflates past ``limit``.

    PS3.5 A.5: the data set after the File Meta Information is a raw deflate stream. It is
    inflated in bounded steps and only counted, so a deflate bomb costs no memory. Files in
    other transfer syntaxes are never over. ``transfer_syntax``, when the caller knows it (the
    presentation context a C-STORE arrived on), spares reading the File Meta Information of
    every file that is not deflated.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If the File Meta Information is unreadable or the deflate stream is corrupt.
    """
    if transfer_syntax is not None and UID(transfer_syntax) != DeflatedExplicitVRLittleEndian:
        return False
    meta = read_file_meta_info(path)
    if UID(str(meta.get("TransferSyntaxUID", ""))) != DeflatedExplicitVRLittleEndian:
        return False
    start = _PREAMBLE + _META_GROUP_LENGTH_ELEMENT + int(meta.FileMetaInformationGroupLength)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            while chunk := handle.read(64 * 1024):
                while chunk:
                    total += len(inflater.decompress(chunk, _CHUNK))
                    if total > limit:
                        return True
                    chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        raise ValueError("corrupt deflate stream") from exc
    return total > limit


def check_pixel_module(dataset: Dataset) -> PixelProblem | None:
    """What is wrong with the Image Pixel module (PS3.3 C.7.6.3), or ``None`` if decodable.

    Type 1 attributes present, values in range and consistent with each other, the photometric
    interpretation known for the samples per pixel, and the pixel data long enough (native) or
    one fragment per frame (encapsulated, PS3.5 A.4).
    """
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        allocated, stored = int(dataset.BitsAllocated), int(dataset.BitsStored)
        high_bit, representation = int(dataset.HighBit), int(dataset.PixelRepresentation)
        samples = int(dataset.SamplesPerPixel)
        photometric = str(dataset.PhotometricInterpretation).strip()
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (AttributeError, ValueError, TypeError, KeyError):
        return PixelProblem("missing or non-numeric Image Pixel attribute")
    if rows < 1 or columns < 1 or frames < 1:
        return PixelProblem("empty image")
    if allocated not in (8, 16, 32) or not 1 <= stored <= allocated:
        return PixelProblem("bits allocated/stored out of range")
    if high_bit != stored - 1 or representation not in (0, 1):
        return PixelProblem("high bit or pixel representation inconsistent")
    if photometric not in _PHOTOMETRIC.get(samples, frozenset()):
        return PixelProblem("photometric interpretation does not fit samples per pixel")
    if samples > 1 and dataset.get("PlanarConfiguration") not in (0, 1):
        return PixelProblem("planar configuration missing")
    return _check_pixel_data(dataset, rows * columns * samples * (allocated // 8) * frames, frames)


def _check_pixel_data(dataset: Dataset, native_length: int, frames: int) -> PixelProblem | None:
    if "PixelData" not in dataset:
        return PixelProblem("no pixel data", in_pixel_data=True)
    transfer_syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    if not transfer_syntax.is_compressed:
        # The element's length, read from its header: a deferred value stays on disk.
        length = getattr(dataset.get_item("PixelData"), "length", None)
        if length is None:  # already converted: the value is in memory anyway
            length = len(dataset.PixelData)
        return None if length >= native_length else PixelProblem("pixel data truncated", True)
    try:
        fragments = list(generate_frames(dataset.PixelData, number_of_frames=frames))
    except (ValueError, KeyError, TypeError, EOFError):
        return PixelProblem("encapsulated pixel data corrupt", in_pixel_data=True)
    if len(fragments) != frames or any(len(f) <= 2 for f in fragments):
        return PixelProblem("encapsulated pixel data corrupt", in_pixel_data=True)
    # A compressed frame can be well framed and still not decode (a flipped byte in a JPEG or
    # RLE header): decode the first frame, as analysis will.
    try:
        pixel_array(dataset, index=0)
    except _DECODE_ERRORS:
        return PixelProblem("compressed pixel data does not decode", in_pixel_data=True)
    return None


def same_content(stored: Path, received: Path) -> bool:
    """Whether two files hold the same instance in different encodings.

    Every data element outside the File Meta Information (group 0002, which names the
    transfer syntax) has the same value, and the decoded pixel data are equal: a lossless
    re-encoding (PS3.5 section 10), as a PACS sends when it re-sends a series in another
    transfer syntax. Lossy re-encodings differ in their pixels and are not the same content.
    Files that cannot be read or decoded are not the same.
    """
    try:
        first, second = (dcmread(path, force=True) for path in (stored, received))
        if _elements(first) != _elements(second):
            return False
        if "PixelData" not in first or "PixelData" not in second:
            return ("PixelData" in first) == ("PixelData" in second)
        return bool(np.array_equal(first.pixel_array, second.pixel_array))
    except (InvalidDicomError, OSError, *_DECODE_ERRORS):
        return False


def _elements(dataset: Dataset) -> dict[int, object]:
    return {
        int(element.tag): element.value
        for element in dataset
        if element.tag.group != 0x0002 and element.keyword != "PixelData"
    }
