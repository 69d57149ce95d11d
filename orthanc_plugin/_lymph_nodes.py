"""The ``lymph_nodes`` section of ``GET /pancreas-ai/studies/{study}/results`` (issue 24).

``result.json`` 1.6's :class:`pancreas_contracts.lymph_nodes.LymphNodeAssessment` as JSON:
the N estimate (``N0`` / ``N+``) with its probability and threshold, the nodes (``node_id``,
JPS ``station`` and its ``station_description``, ``centre_lps_mm``, short and long axis in mm,
``volume_ml``, ``probability``, ``suspicious``), the inputs the patient model had and its
warnings, plus ``text``: the one line the panel, the SR and the PDF show
(``N+ (probability 0.71, threshold 0.50): 2 suspicious of 5 nodes``).
"""

from __future__ import annotations

from typing import Any

from pancreas_contracts.lymph_nodes import JPS_STATIONS, LymphNodeAssessment

__all__ = ["lymph_nodes_json"]

_STATIONS = {station.code: station.description for station in JPS_STATIONS}


def lymph_nodes_json(assessment: LymphNodeAssessment | None) -> dict[str, Any] | None:
    """The route's ``lymph_nodes`` section; ``None`` for a result without a lymph-node model."""
    if assessment is None:
        return None
    body = assessment.model_dump(mode="json")
    for node in body["nodes"]:
        node["station_description"] = _STATIONS.get(node["station"] or "")
    body["suspicious_count"] = len(assessment.suspicious_nodes)
    body["text"] = assessment.describe()
    return body
