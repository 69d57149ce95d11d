"""The PDF's key slices, chosen in the tumor's box, are those the whole-grid rule chose (issue 27).

:func:`inference.pdf_report.key_slices` dilates the tumor and counts vessel contact only in the
tumor's bounding box (+1 voxel in-plane); this compares it with the rule computed on the whole
grid, tumors at the grid's edge included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from inference.pdf_report import key_slices
from inference.volume import Volume
from pancreas_contracts.labels import label_by_name

TUMOR = label_by_name("tumor").value
VESSELS = ("sma", "portal_vein", "smv")


def _whole_grid(array: npt.NDArray[np.uint8], vessels: Sequence[str]) -> list[int]:
    """The tumor branch of the rule on the whole grid (the reference)."""
    mask = array == TUMOR
    areas = mask.sum(axis=(0, 1))
    picks = {int(np.argmax(areas)): ""}
    rim = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 1), dtype=bool))
    for vessel in vessels:
        touch = (rim & (array == label_by_name(vessel).value)).sum(axis=(0, 1))
        if touch.any():
            picks.setdefault(int(np.argmax(touch)), "")
    present = np.flatnonzero(areas)
    lo, hi = int(present[0]), int(present[-1])
    for fraction in (0.25, 0.75, 0.5, 0.1, 0.9):
        picks.setdefault(round(lo + fraction * (hi - lo)), "")
    return sorted(list(picks)[:3], reverse=True)


@pytest.mark.parametrize("seed", range(20))
def test_key_slices_match_the_whole_grid_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    array = np.zeros((22, 18, 26), dtype=np.uint8)
    for vessel in VESSELS:
        array[rng.random(array.shape) < 0.05] = label_by_name(vessel).value
    for _ in range(int(rng.integers(1, 4))):
        lo = rng.integers(0, [20, 16, 24])
        size = rng.integers(1, 6, 3)
        array[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = TUMOR
    label = Volume(array, np.eye(4))  # canonical already: no reorientation
    assert key_slices(label, vessels=VESSELS) == _whole_grid(array, VESSELS)
