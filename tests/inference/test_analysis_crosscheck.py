"""The learned localiser is checked against the anatomical landmarks (no CT needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from inference._analysis_localise import CrossCheckedLocaliser, LocalisationEstimate
from inference.volume import Volume


@dataclass(frozen=True)
class _Fixed:
    estimate: LocalisationEstimate

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        return self.estimate


def _estimate(x: float, *, found: bool = True, confidence: float = 0.9) -> LocalisationEstimate:
    box = (x - 60.0, -30.0, -30.0, x + 60.0, 30.0, 30.0)
    return LocalisationEstimate((x, 0.0, 0.0), box, confidence, found, "fixed")


_VOLUME = Volume(np.zeros((4, 4, 4), dtype=np.int16), np.eye(4))


def test_agreeing_localisers_keep_the_learned_estimate() -> None:
    loc = CrossCheckedLocaliser(_Fixed(_estimate(10.0)), _Fixed(_estimate(40.0)))(_VOLUME)
    assert loc.found and loc.centre_mm == (10.0, 0.0, 0.0) and loc.confidence == 0.9
    assert "checked against landmarks" in loc.method and not loc.warnings


def test_disagreement_beyond_the_limit_is_not_found() -> None:
    loc = CrossCheckedLocaliser(_Fixed(_estimate(0.0)), _Fixed(_estimate(160.0)))(_VOLUME)
    assert not loc.found
    assert loc.confidence == pytest.approx(0.9 * 40.0 / 160.0)
    assert any("disagree by 160 mm" in w for w in loc.warnings)
    assert loc.disagreement_mm == pytest.approx(160.0)


def test_without_landmarks_the_learned_estimate_stands_unchecked() -> None:
    landmarks = _estimate(300.0, found=False, confidence=0.0)
    loc = CrossCheckedLocaliser(_Fixed(_estimate(0.0)), _Fixed(landmarks))(_VOLUME)
    assert loc.found and loc.centre_mm == (0.0, 0.0, 0.0)
    assert any("unchecked" in w for w in loc.warnings)
