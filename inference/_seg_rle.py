"""RLE Lossless (PS3.5 Annex G) of a SEG's 8-bit frames, all rows at once with numpy.

:mod:`inference.seg_writer` writes FRACTIONAL SEGs of grids whose ``Rows x Columns`` is not a
multiple of 16 as RLE Lossless (its module notes say why); highdicom builds the native frames
and :func:`rle_encode_frames` re-encodes them, one encapsulated fragment per frame. pydicom's
own RLE encoder takes milliseconds per frame; these PackBits runs take a fraction of that for
the whole stack.
"""

from __future__ import annotations

from typing import Final

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

__all__ = ["rle_encode_frames"]


#: RLE header of a one-segment frame (PS3.5 G.5): one segment, starting at byte 64.
_RLE_HEADER: Final = np.array([1, 64] + [0] * 14, dtype="<u4").tobytes()


def rle_encode_frames(seg: hd.seg.Segmentation) -> None:
    """Re-encode ``seg``'s native 8-bit frames as RLE Lossless, one fragment per frame."""
    rows, columns = int(seg.Rows), int(seg.Columns)
    frames = np.frombuffer(seg.PixelData, dtype=np.uint8)[
        : int(seg.NumberOfFrames) * rows * columns
    ]
    data, row_offsets = _packbits_rows(frames.reshape(-1, columns))
    ends = np.append(row_offsets, len(data))
    fragments = [
        _RLE_HEADER + data[ends[f * rows] : ends[(f + 1) * rows]].tobytes()
        for f in range(int(seg.NumberOfFrames))
    ]
    seg.PixelData = encapsulate(fragments)
    seg["PixelData"].VR = "OB"
    seg.file_meta.TransferSyntaxUID = RLELossless


def _packbits_rows(
    rows: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """PackBits-encode each row on its own (PS3.5 G.3.1), all rows at once with numpy.

    Every run of equal bytes becomes replicate runs of at most 128 bytes (header ``257 - n``)
    and a lone byte a one-byte literal run (header 0): always two bytes per run, so each row's
    code has an even length. All-zero rows (most rows of a mask) share one code.

    Returns
    -------
    tuple of numpy.ndarray
        The concatenated codes, and the offset of each row's code in it.
    """
    count, columns = rows.shape
    busy = np.flatnonzero(rows.any(axis=1))
    sub = rows[busy]
    change = np.ones(sub.shape, dtype=bool)
    np.not_equal(sub[:, 1:], sub[:, :-1], out=change[:, 1:])
    run_row, run_col = np.nonzero(change)
    lengths = np.diff(np.append(run_row * columns + run_col, sub.size))
    run_index, busy_code = _replicate_runs(lengths, sub[run_row, run_col])
    busy_counts = np.bincount(run_row[run_index], minlength=len(busy)) * 2
    _, empty_code = _replicate_runs(np.array([columns]), np.zeros(1, dtype=np.uint8))
    counts = np.full(count, len(empty_code), dtype=np.int64)
    counts[busy] = busy_counts
    offsets = np.cumsum(counts) - counts
    data = np.empty(int(counts.sum()), dtype=np.uint8)
    idle = np.ones(count, dtype=bool)
    idle[busy] = False
    data[offsets[idle][:, None] + np.arange(len(empty_code))] = empty_code
    shift = offsets[busy] - (np.cumsum(busy_counts) - busy_counts)
    data[np.arange(len(busy_code)) + np.repeat(shift, busy_counts)] = busy_code
    return data, offsets


def _replicate_runs(
    lengths: npt.NDArray[np.int64], values: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Runs of ``lengths[i]`` times ``values[i]`` as (header, byte) pairs of <= 128 bytes each.

    Returns the run each pair belongs to and the pairs, flattened.
    """
    pieces = -(-lengths // 128)
    run_index = np.repeat(np.arange(len(lengths)), pieces)
    within = np.arange(len(run_index)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    size = np.minimum(lengths[run_index] - 128 * within, 128)
    code = np.empty(2 * len(run_index), dtype=np.uint8)
    code[0::2] = np.where(size == 1, 0, 257 - size)
    code[1::2] = values[run_index]
    return run_index, code
