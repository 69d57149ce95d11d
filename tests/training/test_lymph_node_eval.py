"""The detection's FROC and operating point from the candidates, against hand counts."""

from __future__ import annotations

import pytest

from training._lymph_node_eval import CaseOutcome, choose_node_threshold, froc
from training.lymph_node_metrics import NodeCounts


def _outcome(truth: int, candidates: tuple[tuple[float, bool], ...]) -> CaseOutcome:
    hits = sum(hit for _, hit in candidates)
    return CaseOutcome(
        patient_id="P", n_status=0, counts=NodeCounts(hits, len(candidates) - hits, truth),
        kinds_found=(), truth_scores=(), detected_scores=(), probability=0.5,
        largest_positive_ml=0.0, tumor_used=False, candidates=candidates,
    )  # fmt: skip


# two patients, 4 truth nodes; candidates by node probability:
# 0.9 hit, 0.8 FP, 0.7 hit, 0.6 FP, 0.5 FP, 0.4 hit, 0.3 FP, 0.2 FP
_PATIENTS = [
    _outcome(3, ((0.9, True), (0.6, False), (0.4, True), (0.2, False))),
    _outcome(1, ((0.8, False), (0.7, True), (0.5, False), (0.3, False))),
]


def test_froc_is_the_best_recall_within_each_false_positive_rate() -> None:
    curve = froc(_PATIENTS)
    # FP per patient after each threshold: 0.9 -> 0, 0.8 -> 0.5, 0.7 -> 0.5, 0.6 -> 1,
    # 0.5 -> 1.5, 0.4 -> 1.5, 0.3 -> 2, 0.2 -> 2.5
    assert curve == {"0.5": pytest.approx(2 / 4), "1": pytest.approx(2 / 4),
                     "2": pytest.approx(3 / 4), "4": pytest.approx(3 / 4),
                     "8": pytest.approx(3 / 4)}  # fmt: skip
    assert froc([_outcome(2, ())])["8"] == 0.0


def test_the_node_threshold_is_the_lowest_within_the_false_positive_budget() -> None:
    assert choose_node_threshold(_PATIENTS, 2.0) == 0.3
    assert choose_node_threshold(_PATIENTS, 1.0) == 0.6
    assert choose_node_threshold(_PATIENTS, 0.0) == 0.9
    # ties share one threshold: both candidates at 0.5 come in together
    tied = [_outcome(1, ((0.5, True), (0.5, False)))]
    assert choose_node_threshold(tied, 0.0) == 1.0 and choose_node_threshold(tied, 1.0) == 0.5
