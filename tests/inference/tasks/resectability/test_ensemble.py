"""Ensemble inference with test-time flips (issue 21): a spread for a one-model bundle.

The untrained test bundle (``training.structure_bundle``) segments its cube as one label; its
class head still depends on the input, so a flipped cube gives other class probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bundle import load_bundle
from inference.tasks.resectability._ensemble import run_ensemble
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(64, 64, 64)).astype(np.float32)
    values[:20] += 2.0  # not symmetric under any flip
    return values


def test_flips_give_one_model_a_spread_and_change_nothing_else(
    cube: np.ndarray, tmp_path: Path
) -> None:
    members = load_bundle(build_test_bundle(tmp_path / "b", members=1)).members
    device = torch.device("cpu")
    plain = run_ensemble(members, cube, None, device=device, roi=64)
    flipped = run_ensemble(members, cube, None, device=device, roi=64, flips=True)
    assert plain.passes == 1 and plain.uncertainty == 0.0
    assert flipped.passes == 4 and flipped.uncertainty > 0.0
    np.testing.assert_array_equal(flipped.probabilities, plain.probabilities)
    np.testing.assert_array_equal(flipped.member_probabilities, plain.member_probabilities)
    np.testing.assert_array_equal(flipped.seg_probabilities, plain.seg_probabilities)


def test_flips_span_every_member_and_pass(cube: np.ndarray, tmp_path: Path) -> None:
    members = load_bundle(build_test_bundle(tmp_path / "b", members=2)).members
    device = torch.device("cpu")
    plain = run_ensemble(members, cube, None, device=device, roi=64)
    flipped = run_ensemble(members, cube, None, device=device, roi=64, flips=True)
    assert flipped.passes == 4 and len(flipped.member_probabilities) == 2
    assert flipped.uncertainty != plain.uncertainty  # eight passes, not the two members
