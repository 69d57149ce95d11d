"""A small JPEG lossless (ITU-T T.81 process 14, selection value 1) encoder in numpy.

pydicom ships no encoder for the JPEG lossless transfer syntaxes and the installed pylibjpeg
plugins only decode them, so the phantom encodes them itself. Predictor 1 (left neighbour),
point transform 0, one component, one optimal Huffman table per frame (Annex K.2), no restart
intervals. The bit packing is vectorised, so a 512 x 512 frame takes tens of milliseconds.
"""

from __future__ import annotations

import heapq
import struct

import numpy as np
import numpy.typing as npt

_MAX_CODE_LENGTH = 16


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _code_lengths(frequencies: npt.NDArray[np.int64]) -> dict[int, int]:
    """Huffman code lengths per symbol, limited to 16 bits, all-ones code reserved (K.2)."""
    symbols = [int(s) for s in np.nonzero(frequencies)[0]]
    # A pseudo-symbol of frequency 1 takes the longest code, so no real code is all 1-bits.
    reserved = -1
    heap: list[tuple[int, int, list[int]]] = [(int(frequencies[s]), s, [s]) for s in symbols]
    heap.append((1, reserved, [reserved]))
    heapq.heapify(heap)
    depth = {s: 0 for s in [*symbols, reserved]}
    tie = len(frequencies)
    while len(heap) > 1:
        f1, _, a = heapq.heappop(heap)
        f2, _, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        tie += 1
        heapq.heappush(heap, (f1 + f2, tie, a + b))
    return _limit_lengths(depth, reserved)


def _limit_lengths(depth: dict[int, int], reserved: int) -> dict[int, int]:
    """Annex K.3 (Figure K.3): shorten codes longer than 16 bits, then drop the reserved one."""
    bits = [0] * 40
    for d in depth.values():
        bits[d] += 1
    i = len(bits) - 1
    while i > _MAX_CODE_LENGTH:
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
        i -= 1
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # the reserved pseudo-symbol always had the longest code
    ordered = sorted((s for s in depth if s != reserved), key=lambda s: (depth[s], s))
    lengths: dict[int, int] = {}
    position = 0
    for length in range(1, _MAX_CODE_LENGTH + 1):
        for _ in range(bits[length]):
            lengths[ordered[position]] = length
            position += 1
    return lengths


def _canonical_codes(lengths: dict[int, int]) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """DHT payload for table 0 and the ``symbol -> (code, length)`` map (Annex C)."""
    ordered = sorted(lengths, key=lambda s: (lengths[s], s))
    counts = [sum(1 for s in ordered if lengths[s] == n) for n in range(1, 17)]
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    previous = 0
    for symbol in ordered:
        code <<= lengths[symbol] - previous
        previous = lengths[symbol]
        codes[symbol] = (code, previous)
        code += 1
    payload = bytes([0x00]) + bytes(counts) + bytes(ordered)
    return payload, codes


def _differences(frame: npt.NDArray[np.integer], precision: int) -> npt.NDArray[np.int64]:
    """Prediction residuals for predictor 1 with the first-row/first-column rules (H.1.2.1)."""
    x = frame.astype(np.int64)
    prediction = np.empty_like(x)
    prediction[:, 1:] = x[:, :-1]
    prediction[1:, 0] = x[:-1, 0]
    prediction[0, 0] = 1 << (precision - 1)
    diff = (x - prediction) & 0xFFFF
    signed: npt.NDArray[np.int64] = np.where(diff >= 0x8000, diff - 0x10000, diff)
    return signed.ravel()


def _pack_bits(values: npt.NDArray[np.uint64], lengths: npt.NDArray[np.int64]) -> bytes:
    """Concatenate variable-length codes MSB first, pad with 1-bits and stuff 0xFF bytes."""
    keep = lengths > 0
    values, lengths = values[keep], lengths[keep]
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    owner = np.repeat(np.arange(len(lengths)), lengths)
    within = np.arange(total) - np.repeat(ends - lengths, lengths)
    shift = (lengths[owner] - 1 - within).astype(np.uint64)
    bits = ((values[owner] >> shift) & np.uint64(1)).astype(np.uint8)
    padding = (-total) % 8
    bits = np.concatenate([bits, np.ones(padding, dtype=np.uint8)])
    data = np.packbits(bits)
    stuffed = np.insert(data, np.nonzero(data == 0xFF)[0] + 1, 0)
    return stuffed.tobytes()


def encode_jpeg_lossless(frame: npt.NDArray[np.integer], precision: int) -> bytes:
    """Encode one greyscale frame as a JPEG lossless (process 14, SV1) bitstream.

    Parameters
    ----------
    frame
        2D array of unsigned samples below ``2 ** precision``.
    precision
        Sample precision P in bits, 2-16 (DICOM Bits Stored).

    Returns
    -------
    bytes
        A complete JPEG interchange stream (SOI ... EOI).
    """
    if frame.ndim != 2 or not 2 <= precision <= 16:
        raise ValueError("JPEG lossless needs a 2D frame and a precision of 2-16 bits")
    if frame.min() < 0 or int(frame.max()) >= 1 << precision:
        raise ValueError(f"sample values do not fit in {precision} bits")
    rows, columns = frame.shape
    diff = _differences(frame, precision)
    magnitude = np.abs(diff)
    ssss = np.where(
        magnitude == 0, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int64) + 1
    )
    ssss = np.minimum(ssss, 16)
    lengths = _code_lengths(np.bincount(ssss, minlength=17).astype(np.int64))
    table, codes = _canonical_codes(lengths)
    code_of = np.zeros(17, dtype=np.uint64)
    length_of = np.zeros(17, dtype=np.int64)
    for symbol, (code, length) in codes.items():
        code_of[symbol], length_of[symbol] = code, length
    extra_bits = np.where(ssss == 16, 0, ssss)
    extra = np.where(diff < 0, diff - 1, diff) & ((1 << extra_bits) - 1)
    values = (code_of[ssss] << extra_bits.astype(np.uint64)) | extra.astype(np.uint64)
    scan = _pack_bits(values, length_of[ssss] + extra_bits)
    header = b"\xff\xd8"
    header += _segment(0xFFC3, struct.pack(">BHHB", precision, rows, columns, 1) + b"\x01\x11\x00")
    header += _segment(0xFFC4, table)
    header += _segment(0xFFDA, b"\x01\x01\x00" + bytes([1, 0, 0]))
    return header + scan + b"\xff\xd9"
