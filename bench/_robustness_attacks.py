"""What the robustness campaign throws at the node: structure-aware data set mutations,
malformed PDU streams, half-open connections, decompression bombs and oversize instances
(``make bench-robustness``; issue 22, item 6).

Every generator is seeded, so a failing case can be replayed from its seed and index.
"""

from __future__ import annotations

import copy
import io
import socket
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

#: Values that break readers: multi-valued where one is expected, empty, huge, not a number,
#: non-ASCII, and identifiers that look like a patient's (they must never reach a log).
HOSTILE_VALUES: tuple[str, ...] = (
    "1\\2", "", "nan", "-1e308", "1e400", "-0", "abc", "9" * 64, "x" * 10_000,
    "DOE^JOHN", "19700101", "\u00e9\u00e8\u00ea", "1.2.3.4.5\\6.7", " ", "\x00",
)  # fmt: skip

#: Tags whose loss or corruption a CT reader must survive (PS3.3 C.7.6.2, C.7.6.3, C.8.2.1).
STRUCTURAL_TAGS: tuple[int, ...] = (
    0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103, 0x00280002,
    0x00280004, 0x00280030, 0x00200032, 0x00200037, 0x00180050, 0x00281052, 0x00281053,
    0x0020000E, 0x0020000D, 0x00080018, 0x00080016, 0x00080060, 0x7FE00010, 0x00100010,
    0x00100020, 0x00100030,
)  # fmt: skip

#: Value representation of a replacement value for each structural tag (lenient: the point
#: is to send what a strict writer would refuse).
_VR_OF: dict[int, str] = {
    0x00280010: "US", 0x00280011: "US", 0x00280100: "US", 0x00280101: "US",
    0x00280102: "US", 0x00280103: "US", 0x00280002: "US",
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    """One mutated instance: what was done, and the Part 10 bytes to send."""

    operation: str
    data: bytes


def _part10(ds: Dataset) -> bytes:
    # The file meta stays as set (not rebuilt from the mutated data set): it is what the
    # sender's network layer reads, and the node must judge the data set itself.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def _delete(ds: Dataset, rng: np.random.Generator) -> str:
    tag = int(rng.choice(STRUCTURAL_TAGS))
    if tag in ds:
        del ds[tag]
    return f"delete {tag:08X}"


def _hostile_value(ds: Dataset, rng: np.random.Generator) -> str:
    tag = int(rng.choice(STRUCTURAL_TAGS[8:19] + STRUCTURAL_TAGS[20:]))
    value = str(rng.choice(HOSTILE_VALUES)).encode("utf-8")
    value += b" " * (len(value) % 2)
    vr = ds[tag].VR if tag in ds else "LO"
    # Raw bytes: written as they are, as a faulty sender would, without pydicom's checks.
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    return f"value {tag:08X}"


def _pixel_module(ds: Dataset, rng: np.random.Generator) -> str:
    tag = int(rng.choice(list(_VR_OF)))
    value = int(rng.choice([0, 1, 3, 7, 12, 17, 64, 65535]))
    ds[tag] = DataElement(tag, _VR_OF[tag], value)
    return f"pixel {tag:08X}={value}"


def _photometric(ds: Dataset, rng: np.random.Generator) -> str:
    ds.PhotometricInterpretation = str(rng.choice(["XYZ", "RGB", "PALETTE COLOR", "YBR_FULL", ""]))
    return "photometric"


def _truncate_pixels(ds: Dataset, rng: np.random.Generator) -> str:
    data = ds.get("PixelData")
    if not isinstance(data, bytes):
        return "truncate pixels (none)"
    ds.PixelData = data[: int(rng.integers(0, max(1, len(data))))]
    return "truncate pixels"


def _bad_uid(ds: Dataset, rng: np.random.Generator) -> str:
    keyword = str(rng.choice(["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setattr(ds, keyword, str(rng.choice(["DOE^JOHN", "", "1..2", "0" * 80])))
    return f"uid {keyword}"


_DATASET_OPERATIONS: tuple[Callable[[Dataset, np.random.Generator], str], ...] = (
    _delete, _hostile_value, _pixel_module, _photometric, _truncate_pixels, _bad_uid,
)  # fmt: skip


def _byte_flips(data: bytes, rng: np.random.Generator) -> bytes:
    mutated = bytearray(data)
    for _ in range(int(rng.integers(1, 16))):
        at = int(rng.integers(132, len(mutated)))
        mutated[at] = int(rng.integers(0, 256))
    return bytes(mutated)


def mutants(template: Path, count: int, seed: int) -> Iterator[Mutant]:
    """``count`` mutations of the CT instance ``template``, each with a new SOPInstanceUID.

    Two in three are structure-aware (one to three data set operations: a structural element
    deleted, a hostile value, an inconsistent pixel module, truncated pixel data, a malformed
    UID); one in three flips bytes of the encoded file after its preamble.
    """
    rng = np.random.default_rng(seed)
    base = dcmread(template)
    for _ in range(count):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if rng.random() < 1 / 3:
            yield Mutant("byte flips", _byte_flips(_part10(ds), rng))
            continue
        operations = [
            _DATASET_OPERATIONS[int(rng.integers(len(_DATASET_OPERATIONS)))](ds, rng)
            for _ in range(int(rng.integers(1, 4)))
        ]
        try:
            data = _part10(ds)
        except (ValueError, TypeError, struct.error, OverflowError):
            continue  # not encodable even leniently: nothing to send
        yield Mutant(", ".join(operations), data)


def _ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16)


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(called: str = "PANCREAS_AI", calling: str = "FUZZER") -> bytes:
    """A well-formed A-ASSOCIATE-RQ PDU for CT Image Storage (PS3.8 9.3.2)."""
    context = _item(0x10, b"1.2.840.10008.3.1.1.1")
    presentation = _item(
        0x20,
        bytes([1, 0, 0, 0])
        + _item(0x30, str(CTImageStorage).encode())
        + _item(0x40, str(ExplicitVRLittleEndian).encode()),
    )
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384)))
    body = struct.pack(">HH", 1, 0) + _ae(called) + _ae(calling) + bytes(32)
    body += context + presentation + user
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def pdu_streams(count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` malformed PDU streams: garbage, truncated and lying headers, unknown PDU
    types, P-DATA and A-RELEASE without an association, and byte-flipped A-ASSOCIATE-RQs."""
    rng = np.random.default_rng(seed)
    valid = associate_rq()
    kinds = ("garbage", "truncated", "huge length", "unknown type", "p-data first",
             "release first", "flipped rq", "rq twice")  # fmt: skip
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind == "garbage":
            data = rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes()
        elif kind == "truncated":
            data = valid[: int(rng.integers(1, len(valid)))]
        elif kind == "huge length":
            data = valid[:2] + struct.pack(">I", 0xFFFFFFFF) + valid[6:]
        elif kind == "unknown type":
            data = bytes([int(rng.integers(8, 256))]) + valid[1:]
        elif kind == "p-data first":
            data = struct.pack(">BBI", 0x04, 0, 6) + struct.pack(">IBB", 2, 1, 3)
        elif kind == "release first":
            data = struct.pack(">BBI", 0x05, 0, 4) + bytes(4)
        elif kind == "flipped rq":
            flipped = bytearray(valid)
            for _ in range(int(rng.integers(1, 8))):
                flipped[int(rng.integers(0, len(flipped)))] = int(rng.integers(0, 256))
            data = bytes(flipped)
        else:
            data = valid + valid
        yield kind, data


def send_raw(port: int, data: bytes, wait_s: float = 0.2) -> None:
    """Send ``data`` on a new TCP connection, read what comes back for ``wait_s``, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as conn:
        try:
            conn.sendall(data)
            conn.settimeout(wait_s)
            conn.recv(65536)
        except OSError:
            pass  # reset, refused or silent: each is an acceptable answer to garbage


def half_open(port: int, count: int, seed: int) -> list[socket.socket]:
    """``count`` connections that hold a slot without ever completing an association:
    silent after connect, three bytes of a PDU header, or a full A-ASSOCIATE-RQ then silence."""
    rng = np.random.default_rng(seed)
    sockets = []
    for index in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        choice = index % 3 if rng.random() < 0.9 else int(rng.integers(0, 3))
        if choice == 1:
            conn.sendall(associate_rq()[:3])
        elif choice == 2:
            conn.sendall(associate_rq())
        sockets.append(conn)
    return sockets


def _header(sop_uid: str, transfer_syntax: UID) -> tuple[FileMetaDataset, Dataset]:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = UID(sop_uid)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    return meta, ds


def _encoded_header(meta: FileMetaDataset, ds: Dataset) -> tuple[bytes, bytes]:
    """The Part 10 preamble + file meta, and the data set body without pixel data (explicit
    VR little endian)."""
    buffer = io.BytesIO()
    ds.file_meta = meta
    ds.save_as(buffer, enforce_file_format=True)
    whole = buffer.getvalue()
    meta_end = 132 + 12 + struct.unpack("<I", whole[140:144])[0]
    if meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        body = zlib.decompress(whole[meta_end:], -zlib.MAX_WBITS)
        return whole[:meta_end], body
    return whole[:meta_end], whole[meta_end:]


def _pixel_element_header(rows: int, columns: int) -> tuple[bytes, int]:
    length = rows * columns * 2
    header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)
    return header, length


def _with_pixel_module(ds: Dataset, rows: int, columns: int) -> None:
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1


def write_deflate_bomb(path: Path, inflated_mb: int) -> Path:
    """A CT instance in Deflated Explicit VR Little Endian (PS3.5 A.5) whose pixel data inflate
    to ``inflated_mb`` MB of zeros from about a thousandth of that on the wire."""
    meta, ds = _header(generate_uid(), DeflatedExplicitVRLittleEndian)
    columns = 4096
    rows = inflated_mb * 1024 * 1024 // (2 * columns)
    _with_pixel_module(ds, rows, columns)
    preamble, body = _encoded_header(meta, ds)
    element, length = _pixel_element_header(rows, columns)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(preamble)
        out.write(deflate.compress(body + element))
        for _ in range(length // len(chunk)):
            out.write(deflate.compress(chunk))
        out.write(deflate.compress(bytes(length % len(chunk))))
        out.write(deflate.flush())
    return path


def write_oversize(path: Path, size_mb: int) -> Path:
    """An uncompressed CT instance of ``size_mb`` MB of pixel data, written in chunks."""
    meta, ds = _header(generate_uid(), ExplicitVRLittleEndian)
    columns = 4096
    rows = size_mb * 1024 * 1024 // (2 * columns)
    _with_pixel_module(ds, rows, columns)
    preamble, body = _encoded_header(meta, ds)
    element, length = _pixel_element_header(rows, columns)
    chunk = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(preamble + body + element)
        for _ in range(length // len(chunk)):
            out.write(chunk)
        out.write(bytes(length % len(chunk)))
    return path
