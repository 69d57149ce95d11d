"""The patient score and its ablation values."""

from __future__ import annotations

import pytest

from inference.tasks.detection.scoring import SCORE_MODES, PatientScores, combine


def test_combined_is_the_weighted_mean() -> None:
    assert combine(0.8, 0.4) == pytest.approx(0.6)
    assert combine(0.8, 0.4, weight=1.0) == pytest.approx(0.8)
    scores = PatientScores.of(0.9, 0.3, 0.25)
    assert scores.combined == pytest.approx(0.45)
    assert [scores.get(m) for m in SCORE_MODES] == [0.9, 0.3, pytest.approx(0.45)]


def test_refusals() -> None:
    with pytest.raises(ValueError):
        combine(0.5, 0.5, weight=1.5)
    with pytest.raises(ValueError):
        PatientScores(1.2, 0.0, 0.6)
    with pytest.raises(ValueError):
        PatientScores.of(0.5, 0.5).get("mean")
