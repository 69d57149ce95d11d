"""Which key vessels are present: the chunked histogram agrees with a per-label scan (issue 27)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.resectability.measurements import _present


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("seed", range(4))
def test_present_matches_a_scan_per_label(dtype: type[np.unsignedinteger], seed: int) -> None:
    rng = np.random.default_rng(seed)
    # More than one chunk (1 Mi values), labels only in some of them.
    values = np.zeros((130, 100, 90), dtype=dtype)
    for value in rng.choice(16, size=int(rng.integers(0, 8)), replace=False):
        values.flat[int(rng.integers(0, values.size))] = value
    signed = values.astype(np.int16)  # takes the per-label scan
    assert _present(values) == _present(signed)
