"""The lymph-node model's answer through the plugin (issue 24): worklist and results section."""

from __future__ import annotations

import pytest

from db import WorklistEntry
from orthanc_plugin._lymph_nodes import lymph_nodes_json
from orthanc_plugin._worklist import parse_worklist_query, worklist_page
from pancreas_contracts import JobState
from pancreas_contracts.lymph_nodes import LymphNodeAssessment, LymphNodeFinding
from tests.orthanc_plugin.unit_helpers import entry


def _entries() -> list[WorklistEntry]:
    return [
        entry("1", JobState.DONE, category=0, probabilities=(0.8, 0.1, 0.1),
              n_estimate="N+", n_positive_probability=0.71),
        entry("2", JobState.DELIVERED, category=1, probabilities=(0.1, 0.8, 0.1),
              n_estimate="N0", n_positive_probability=0.22),
        entry("3", JobState.DONE, category=1, probabilities=(0.1, 0.8, 0.1)),  # no node model
        entry("4", JobState.DONE, category=2, probabilities=(0.1, 0.1, 0.8),
              n_estimate="N+", n_positive_probability=0.93),
    ]  # fmt: skip


def _uids(**query: str) -> list[str]:
    page = worklist_page(_entries(), parse_worklist_query(query))
    return [item["study_instance_uid"] for item in page["items"]]


def test_worklist_items_carry_the_n_estimate() -> None:
    items = worklist_page(_entries(), parse_worklist_query({}))["items"]
    shown = {i["study_instance_uid"]: (i["n_estimate"], i["n_positive_probability"]) for i in items}
    assert shown == {
        "1": ("N+", 0.71),
        "2": ("N0", 0.22),
        "3": (None, None),
        "4": ("N+", 0.93),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("n_status", "expected"),
    [
        ("N+", ["1", "4"]),
        ("n0", ["2"]),
        ("N0,N+", ["1", "2", "4"]),
        ("N ", ["1", "4"]),
        ("N%2B", ["1", "4"]),
    ],
)
def test_worklist_filters_by_the_n_estimate(n_status: str, expected: list[str]) -> None:
    # "N " is "N+" with the "+" left unencoded in the query string (a space once decoded);
    # Orthanc hands the plugin "N%2B" as the browser sent it.
    assert sorted(_uids(n_status=n_status)) == expected


def test_worklist_sorts_by_the_probability_of_n_positive() -> None:
    assert _uids(sort="n_probability") == ["4", "1", "2", "3"]  # no estimate last
    assert _uids(sort="n_probability", order="asc") == ["2", "1", "4", "3"]


def _assessment() -> LymphNodeAssessment:
    nodes = (
        LymphNodeFinding(node_id=1, station="8a", centre_lps_mm=(10.0, 20.0, -30.0),
                         short_axis_mm=12.5, long_axis_mm=16.0, volume_ml=1.1,
                         probability=0.81, suspicious=True),
        LymphNodeFinding(node_id=2, station=None, centre_lps_mm=(-5.0, 25.0, -40.0),
                         short_axis_mm=6.0, long_axis_mm=9.0, volume_ml=0.2,
                         probability=0.12, suspicious=False),
    )  # fmt: skip
    return LymphNodeAssessment(
        model_version="lymph-nodes-phantom 0.1.0", n_positive_probability=0.71, threshold=0.5,
        n_estimate="N+", nodes=nodes, inputs_used=("ct", "attention"),
    )  # fmt: skip


def test_results_section_carries_the_assessment() -> None:
    assert lymph_nodes_json(None) is None
    body = lymph_nodes_json(_assessment())
    assert body is not None
    assert body["n_estimate"] == "N+" and body["n_positive_probability"] == 0.71
    assert body["threshold"] == 0.5 and body["suspicious_count"] == 1
    assert body["text"] == "N+ (probability 0.71, threshold 0.50): 1 suspicious of 2 nodes"
    first, second = body["nodes"]
    assert first["station"] == "8a" and first["centre_lps_mm"] == [10.0, 20.0, -30.0]
    assert first["station_description"] == "anterosuperior, along the common hepatic artery"
    assert first["short_axis_mm"] == 12.5 and first["suspicious"] is True
    assert second["station"] is None and second["station_description"] is None
    # The section round-trips into the contract (the viewer reads the same fields).
    fields = {k: body[k] for k in LymphNodeAssessment.model_fields}
    fields["nodes"] = [
        {k: v for k, v in node.items() if k != "station_description"} for node in body["nodes"]
    ]
    assert LymphNodeAssessment.model_validate(fields) == _assessment()
