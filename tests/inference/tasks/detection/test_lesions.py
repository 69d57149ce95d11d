"""Lesion candidates from a probability map, and each lesion's centre, size and probability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.tasks.detection.lesions import ExtractionSettings, describe, extract_candidates
from inference.volume import Volume


def _two_blobs() -> np.ndarray:
    prob = np.zeros((20, 20, 20))
    prob[2:5, 2:5, 2:5] = 0.5
    prob[3, 3, 3] = 0.9  # peak of the first blob
    prob[12:16, 12:16, 12:16] = 0.6
    prob[0, 19, 0] = 0.05  # below the threshold: never a candidate
    return prob


def test_candidates_are_ordered_by_peak_with_their_extent() -> None:
    found = extract_candidates(_two_blobs())
    assert found.probabilities == (0.9, 0.6)
    assert int((found.components == 1).sum()) == 27  # 0.5 >= 0.4 * 0.9: the whole blob
    assert int((found.components == 2).sum()) == 64
    assert found.max_probability == 0.9
    assert found.detection_map().max() == pytest.approx(0.9)
    assert found.detection_map()[13, 13, 13] == pytest.approx(0.6)


def test_dynamic_extent_cuts_at_a_fraction_of_the_peak() -> None:
    prob = np.zeros((10, 10, 10))
    prob[2:8, 5, 5] = 0.2
    prob[5, 5, 5] = 1.0
    found = extract_candidates(prob, ExtractionSettings(threshold=0.1, extent_fraction=0.5,
                                                        min_voxels=1))  # fmt: skip
    # the 0.2 tail is below 0.5 * 1.0: the first candidate is the peak alone, the tail
    # splits into two further candidates at 0.2
    assert found.probabilities == (1.0, 0.2, 0.2)
    assert int((found.components == 1).sum()) == 1
    plain = extract_candidates(prob, ExtractionSettings(threshold=0.1, extent_fraction=0.0))
    assert plain.probabilities == (1.0,) and int((plain.components == 1).sum()) == 6


def test_limits_and_refusals() -> None:
    few = extract_candidates(_two_blobs(), ExtractionSettings(max_lesions=1))
    assert few.probabilities == (0.9,)
    big = extract_candidates(_two_blobs(), ExtractionSettings(min_voxels=30))
    assert big.probabilities == (0.6,)  # the 27-voxel blob is dropped
    assert extract_candidates(np.zeros((4, 4, 4))).probabilities == ()
    with pytest.raises(ValueError):
        extract_candidates(np.full((4, 4, 4), 1.5))
    with pytest.raises(ValueError):
        ExtractionSettings(threshold=0.0)


def test_describe_gives_centre_size_volume_in_ct_and_lps_coordinates() -> None:
    prob = np.zeros((10, 10, 10))
    prob[4:7, 4:7, 4:7] = 0.8
    found = extract_candidates(prob)
    grid_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    grid_affine[:3, 3] = (-10.0, 20.0, 30.0)
    grid = Volume(prob.astype(np.float32), grid_affine)
    ct = Volume(np.zeros((50, 50, 50), dtype=np.int16), np.diag([1.0, 1.0, 1.0, 1.0]))
    (lesion,) = describe(found, grid, ct)
    # centre voxel (5, 5, 5) of the grid is RAS (0, 30, 40): LPS (-0, -30, 40)
    assert lesion.centre_lps_mm == pytest.approx((0.0, -30.0, 40.0))
    assert lesion.centre_voxel == pytest.approx((0.0, 30.0, 40.0))
    assert lesion.volume_ml == pytest.approx(27 * 8 / 1000)
    assert lesion.diameter_mm == pytest.approx(math.sqrt(3) * 4 + 2, abs=0.01)
    assert lesion.probability == pytest.approx(0.8)
