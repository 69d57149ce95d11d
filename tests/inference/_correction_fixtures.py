"""Helpers of the correction tests: the viewer's payload built from an AI SEG, edited by hand.

The AI SEG comes from the real writer (:mod:`tests.inference._writers_fixtures`); its label
images are read back per CT SOPInstanceUID with highdicom, a few voxels are changed the way a
radiologist would (tumor grown on one slice, one structure erased), and the result is encoded
as the plugin stores it (``docs/tumor-board.md``, "Correction").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset


@dataclass(frozen=True)
class Edit:
    """An edited label map: per CT SOPInstanceUID (``uids`` order) the label image."""

    uids: tuple[str, ...]
    before: npt.NDArray[np.uint8]
    after: npt.NDArray[np.uint8]
    grown: int  # segment number painted onto background
    erased: int  # segment number removed everywhere


def rle_runs(image: npt.NDArray[np.uint8]) -> list[list[int]]:
    """``[segment, run length]`` pairs of ``image`` in row-major order (row 0 first)."""
    flat = np.asarray(image).reshape(-1)
    bounds = [0, *(np.flatnonzero(np.diff(flat)) + 1).tolist(), flat.size]
    return [[int(flat[a]), int(b - a)] for a, b in pairwise(bounds)]


def ai_label_images(ai_seg: Dataset, uids: Sequence[str]) -> npt.NDArray[np.uint8]:
    """The AI SEG's segment numbers on the CT images ``uids`` (one image each, that order)."""
    seg = hd.seg.Segmentation.from_dataset(ai_seg, copy=True)
    pixels = seg.get_pixels_by_source_instance(list(uids), combine_segments=True, relabel=False)
    return np.asarray(pixels, dtype=np.uint8)


def segment_number(ai_seg: Dataset, tracking_id: str) -> int:
    """The AI SEG's segment number of a structure (``"tumor"``, ``"pancreas"``, ...)."""
    for item in ai_seg.SegmentSequence:
        if str(item.TrackingID) == tracking_id:
            return int(item.SegmentNumber)
    raise KeyError(tracking_id)


def edit(ai_seg: Dataset, uids: Sequence[str]) -> Edit:
    """Grow the tumor by a 6 x 9 block of background on one slice; erase the bile duct."""
    before = ai_label_images(ai_seg, uids)
    after = before.copy()
    tumor = segment_number(ai_seg, "tumor")
    erased = segment_number(ai_seg, "bile_duct")
    # A slice without tumor near one end, so a frame landing on the wrong image shows.
    slice_index = next(k for k in range(len(uids)) if not (before[k] == tumor).any())
    block = after[slice_index, 3:9, 5:14]
    block[block == 0] = tumor
    after[after == erased] = 0
    assert (after != before).any()
    return Edit(tuple(uids), before, after, tumor, erased)


def payload(ai_seg: Dataset, series_uid: str, edited: Edit, **overrides: Any) -> dict[str, Any]:
    """The correction body for ``edited`` (frames in ``edited.uids`` order)."""
    rows, columns = edited.after.shape[1:]
    body: dict[str, Any] = {
        "reason": "tumor extends into the uncinate process",
        "category": None,
        "based_on_seg_sop_instance_uid": str(ai_seg.SOPInstanceUID),
        "referenced_series_instance_uid": series_uid,
        "rows": int(rows),
        "columns": int(columns),
        "frames": [
            {"sop_instance_uid": uid, "rle": rle_runs(edited.after[k])}
            for k, uid in enumerate(edited.uids)
        ],
    }
    body.update(overrides)
    return body
