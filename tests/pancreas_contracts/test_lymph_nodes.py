"""The lymph-node contracts: the paper's Table II and valid node truth."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pancreas_contracts.lymph_nodes import (
    ATTENTION_STRUCTURES,
    JPS_STATIONS,
    NodeTruth,
    structure_by_name,
)


def test_table_ii_of_the_paper() -> None:
    ranges = {s.name: (s.d_min_mm, s.d_max_mm) for s in ATTENTION_STRUCTURES}
    assert ranges == {
        "spleen": (0, 16), "esophagus": (0, 25), "stomach": (-2, 18), "aorta": (0, 28),
        "pancreas": (-5, 20), "duodenum": (-5, 22), "sma": (-1, 20),
        "celiac_splenic": (-2, 18), "left_gastric": (0, 21), "hepatic_artery": (0, 20),
    }  # fmt: skip
    assert [s.value for s in ATTENTION_STRUCTURES] == list(range(1, 11))
    assert structure_by_name("aorta").value == 4
    with pytest.raises(KeyError):
        structure_by_name("liver")
    assert "15" not in {s.code for s in JPS_STATIONS}


def _node(**changes: object) -> NodeTruth:
    values: dict[str, object] = {
        "node_id": 1, "station": "8a", "kind": "benign", "metastatic": False,
        "centre_lps_mm": (1.0, 2.0, 3.0), "short_axis_mm": 5.0, "long_axis_mm": 9.0,
        "volume_ml": 0.2,
    }  # fmt: skip
    return NodeTruth.model_validate(values | changes)


def test_node_truth_is_valid_at_construction() -> None:
    assert _node().station == "8a"
    assert _node(kind="small-metastatic", metastatic=True).metastatic
    for changes, message in (
        ({"station": "15"}, "unknown JPS station"),
        ({"kind": "metastatic"}, "cannot have metastatic=False"),
        ({"kind": "inflammatory", "metastatic": True}, "cannot have metastatic=True"),
        ({"short_axis_mm": 12.0}, "short axis longer"),
        ({"centre_lps_mm": (float("nan"), 0.0, 0.0)}, "finite"),
    ):
        with pytest.raises(ValidationError, match=message):
            _node(**changes)
