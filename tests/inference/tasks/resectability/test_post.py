"""Tumor components on the CT grid: specks and fragments away from the pancreas are no tumor."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from inference.bundle import BundleError, LoadedBundle
from inference.tasks.resectability._post import DEFAULT_MIN_TUMOR_ML, filter_tumor
from inference.tasks.resectability.measurements import measure
from inference.tasks.resectability.task import min_tumor_ml
from inference.volume import Volume
from pancreas_contracts.labels import label_by_name

PANCREAS = label_by_name("pancreas").value
TUMOR = label_by_name("tumor").value
SMA = label_by_name("sma").value
# 1 mm voxels: 1000 voxels are 1 mL, 100 voxels the default minimum.
AFFINE = np.eye(4)


def _map() -> npt.NDArray[np.uint8]:
    array = np.zeros((60, 30, 30), dtype=np.uint8)
    array[5:35, 5:25, 5:25] = PANCREAS  # 12 mL of gland
    return array


def _filter(array: npt.NDArray[np.uint8], min_ml: float = 0.1) -> tuple[npt.NDArray[Any], int]:
    out, removed = filter_tumor(Volume(array, AFFINE), min_ml)
    return np.asarray(out.array), removed


def test_a_tumor_in_the_pancreas_is_kept_unchanged() -> None:
    array = _map()
    array[10:20, 10:20, 10:20] = TUMOR  # 1 mL inside the gland
    out, removed = _filter(array)
    assert removed == 0
    np.testing.assert_array_equal(out, array)


def test_a_speck_in_the_pancreas_becomes_pancreas() -> None:
    array = _map()
    array[10:20, 10:20, 10:20] = TUMOR
    array[28, 15, 15] = TUMOR  # one voxel: 0.001 mL (the specks of 0.005 mL seen on real CTs)
    array[30:33, 8:10, 8:10] = TUMOR  # 12 voxels: 0.012 mL
    out, removed = _filter(array)
    assert removed == 2
    assert out[28, 15, 15] == PANCREAS and (out[30:33, 8:10, 8:10] == PANCREAS).all()
    assert int((out == TUMOR).sum()) == 1000


def test_a_fragment_away_from_the_pancreas_becomes_background() -> None:
    array = _map()
    array[10:20, 10:20, 10:20] = TUMOR
    array[45:55, 10:20, 10:20] = TUMOR  # 1 mL, 10 mm beyond the gland: not a pancreatic tumor
    out, removed = _filter(array)
    assert removed == 1
    assert (out[45:55, 10:20, 10:20] == 0).all()
    assert int((out == TUMOR).sum()) == 1000


def test_a_tumor_touching_the_pancreas_from_outside_is_kept() -> None:
    array = _map()
    array[35:40, 10:20, 10:20] = TUMOR  # 0.5 mL, its first slice next to the gland's last
    out, removed = _filter(array)
    assert removed == 0 and int((out == TUMOR).sum()) == 500
    apart = _map()
    apart[36:41, 10:20, 10:20] = TUMOR  # one background slice between: it does not touch
    out, removed = _filter(apart)
    assert removed == 1 and not (out == TUMOR).any()


def test_scattered_specks_leave_no_tumor_and_no_angles() -> None:
    array = _map()
    array[2:58, 27, 27] = SMA
    for z in range(6, 34, 4):  # seven single voxels spread over 28 mm of gland
        array[z, 6 + z % 7, 6] = TUMOR
    before = measure(Volume(array.copy(), AFFINE))
    # Unfiltered, the specks would be a 0.007 mL tumor with an SMA contact of 0 degrees.
    assert before.tumor_volume_ml == pytest.approx(0.007) and before.contact_deg["SMA"] == 0.0
    out, removed = _filter(array)
    assert removed == 7 and not (out == TUMOR).any()
    after = measure(Volume(out, AFFINE))
    assert after.tumor_volume_ml is None and after.tumor_max_diameter_mm is None
    assert all(angle is None for angle in after.contact_deg.values())


def test_without_pancreas_a_tumor_is_the_organ() -> None:
    array = np.zeros((30, 30, 30), dtype=np.uint8)
    array[5:25, 5:25, 5:25] = TUMOR  # the whole gland segmented as tumor
    array[27, 27, 27] = TUMOR  # a speck: background (there is no gland to give it to)
    out, removed = _filter(array)
    assert removed == 1 and out[27, 27, 27] == 0
    assert int((out == TUMOR).sum()) == 8000


def test_the_minimum_is_a_parameter() -> None:
    array = _map()
    array[10:14, 10:14, 10:14] = TUMOR  # 0.064 mL
    assert _filter(array, 0.05)[1] == 0
    assert _filter(array, 0.1)[1] == 1
    assert _filter(array, 0.0)[1] == 0


def _bundle(meta: dict[str, Any]) -> LoadedBundle:
    return cast(LoadedBundle, SimpleNamespace(meta=meta, path=Path("b")))


def test_the_bundle_sets_the_minimum_default_0_1_ml() -> None:
    assert DEFAULT_MIN_TUMOR_ML == 0.1
    assert min_tumor_ml(_bundle({})) == 0.1
    assert min_tumor_ml(_bundle({"inference": {"roi_size": 96}})) == 0.1
    assert min_tumor_ml(_bundle({"inference": {"min_tumor_ml": 0.25}})) == 0.25
    for bad in (-1.0, "0.1", True, float("nan"), None):
        with pytest.raises(BundleError, match="min_tumor_ml"):
            min_tumor_ml(_bundle({"inference": {"min_tumor_ml": bad}}))


def _filter_on_the_whole_grid(values: npt.NDArray[np.uint8], min_ml: float) -> npt.NDArray[Any]:
    """The rule of :func:`filter_tumor` computed on the whole grid (the reference)."""
    from scipy import ndimage

    full = np.ones((3, 3, 3), dtype=bool)
    tumor = values == TUMOR
    components, count = ndimage.label(tumor, structure=full)
    sizes_ml = np.bincount(components.ravel(), minlength=count + 1) / 1000.0
    pancreas = values == PANCREAS
    touching = np.ones(count + 1, dtype=bool)
    if pancreas.any():
        near = ndimage.binary_dilation(pancreas, structure=full)
        touching = np.zeros(count + 1, dtype=bool)
        touching[np.unique(components[near & tumor])] = True
    keep = (sizes_ml >= min_ml) & touching
    keep[0] = True
    out = values.copy()
    dropped = ~keep[components] & tumor
    out[dropped] = 0
    if pancreas.any():
        out[dropped & touching[components]] = PANCREAS
    return out


@pytest.mark.parametrize("seed", range(12))
def test_the_tumor_window_gives_the_whole_grid_answer(seed: int) -> None:
    # filter_tumor labels only the tumor's bounding box (+1 voxel); it must not change a voxel
    # of the answer, tumors at the grid's edge and pancreas just outside the box included.
    rng = np.random.default_rng(seed)
    array = np.zeros((24, 20, 16), dtype=np.uint8)
    array[rng.random(array.shape) < 0.25] = PANCREAS
    array[rng.random(array.shape) < 0.04] = SMA
    for _ in range(int(rng.integers(1, 6))):
        lo = rng.integers(0, [22, 18, 14])
        size = rng.integers(1, 5, 3)
        array[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = TUMOR
    if seed % 4 == 0:
        array[array == PANCREAS] = 0  # no gland at all
    expected = _filter_on_the_whole_grid(array, 0.01)
    out, _ = _filter(array, 0.01)
    np.testing.assert_array_equal(out, expected)
