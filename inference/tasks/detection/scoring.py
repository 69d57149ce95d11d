"""The patient-level PDAC score and its ablation (METHOD.md section 2).

The paper (Yu et al., PANORAMA) scores a patient by "the classification probability combined
with the maximum value of the detection map" and reports classification alone (AUROC 0.967)
against the combination (0.983). It does not say how the two are combined; this task takes
their weighted mean, ``w * classification + (1 - w) * detection_max`` with ``w`` = 0.5 by
default (the bundle's ``scoring.classification_weight``): both are probabilities in [0, 1]
and the mean keeps the result one. All three scores are kept for every patient so that the
ablation (classification only, detection-map maximum only, combined) can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["SCORE_MODES", "PatientScores", "combine"]

#: The three patient scores of the ablation, in report order.
SCORE_MODES: Final = ("classification", "detection_max", "combined")


def combine(classification: float, detection_max: float, weight: float = 0.5) -> float:
    """``weight * classification + (1 - weight) * detection_max``.

    Raises
    ------
    ValueError
        If ``weight`` is outside [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the classification weight must lie in [0, 1], got {weight}")
    return weight * classification + (1.0 - weight) * detection_max


@dataclass(frozen=True)
class PatientScores:
    """One patient's three scores (each in [0, 1]).

    Attributes
    ----------
    classification
        Softmax PDAC probability of the classification head.
    detection_max
        Maximum of the detection map (the most probable lesion candidate; 0 when none).
    combined
        :func:`combine` of the two: the PDAC likelihood the task reports.
    """

    classification: float
    detection_max: float
    combined: float

    def __post_init__(self) -> None:
        for mode in SCORE_MODES:
            if not 0.0 <= getattr(self, mode) <= 1.0:
                raise ValueError(f"score {mode} must lie in [0, 1]")

    @classmethod
    def of(cls, classification: float, detection_max: float, weight: float = 0.5) -> PatientScores:
        """The three scores from the two network outputs."""
        combined = combine(classification, detection_max, weight)
        return cls(float(classification), float(detection_max), float(combined))

    def get(self, mode: str) -> float:
        """The score named ``mode`` (one of :data:`SCORE_MODES`)."""
        if mode not in SCORE_MODES:
            raise ValueError(f"unknown score {mode!r}; choose from {SCORE_MODES}")
        value: float = getattr(self, mode)
        return value
