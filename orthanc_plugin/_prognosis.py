"""The ``prognosis`` section of ``GET /pancreas-ai/studies/{study}/results`` (issue 25).

``result.json`` 1.7's :class:`pancreas_contracts.prognosis.SurvivalPrognosis` as JSON: the
fusion model's ``death_probability`` by 1, 2 and 3 years, the ``risk_group`` (``high`` /
``low``) with its ``risk_horizon_years`` and ``risk_cutoff``, the component models'
probabilities (``components``), the TNM inputs with their source (``staging``), the
Kaplan-Meier ``reference_curves`` of the bundle's training groups, ``inputs_used`` /
``inputs_missing`` and ``warnings``; plus ``survival_probability`` (``1 - death_probability``)
and ``text``: the one line the panel, the SR and the PDF show
(``high risk (death by 1/2/3 years 0.42/0.71/0.86; cut-off 0.80 at 3 years)``).
"""

from __future__ import annotations

from typing import Any

from pancreas_contracts.prognosis import SurvivalPrognosis

__all__ = ["prognosis_json"]


def prognosis_json(prognosis: SurvivalPrognosis | None) -> dict[str, Any] | None:
    """The route's ``prognosis`` section; ``None`` for a result without a survival model."""
    if prognosis is None:
        return None
    body = prognosis.model_dump(mode="json")
    body["survival_probability"] = list(prognosis.survival_probability)
    body["text"] = prognosis.describe()
    return body
