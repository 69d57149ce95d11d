"""The lymph-node contracts: the paper's Table II and valid node truth."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pancreas_contracts.lymph_nodes import (
    ATTENTION_STRUCTURES,
    JPS_STATIONS,
    LymphNodeAssessment,
    LymphNodeFinding,
    NodeTruth,
    structure_by_name,
)
from pancreas_contracts.result import RESULT_SCHEMA_VERSION, AnalysisResult


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


def _finding(node_id: int, probability: float) -> LymphNodeFinding:
    return LymphNodeFinding(
        node_id=node_id, station="14p", centre_lps_mm=(0.0, 1.0, 2.0), short_axis_mm=11.0,
        long_axis_mm=13.0, volume_ml=0.9, probability=probability, suspicious=probability >= 0.5,
    )  # fmt: skip


def test_assessment_is_the_threshold_s_answer() -> None:
    nodes = (_finding(1, 0.8), _finding(2, 0.2))
    answer = LymphNodeAssessment(
        model_version="ln 0.1.0", n_positive_probability=0.71, threshold=0.5, n_estimate="N+",
        nodes=nodes, inputs_used=("ct", "attention"), inputs_missing=("tumor_mask",),
    )  # fmt: skip
    assert answer.suspicious_nodes == nodes[:1]
    assert answer.describe() == "N+ (probability 0.71, threshold 0.50): 1 suspicious of 2 nodes"
    with pytest.raises(ValidationError, match="n_estimate"):
        answer.model_validate(answer.model_dump() | {"n_estimate": "N0"})
    with pytest.raises(ValidationError, match="unique"):
        answer.model_validate(answer.model_dump() | {"nodes": [nodes[0], nodes[0]]})
    with pytest.raises(ValidationError, match="unknown JPS station"):
        LymphNodeFinding.model_validate(nodes[0].model_dump() | {"station": "99"})
    assert (
        LymphNodeFinding.model_validate(nodes[0].model_dump() | {"station": None}).station is None
    )


def test_a_result_carries_the_lymph_node_section() -> None:
    answer = LymphNodeAssessment(
        model_version="ln 0.1.0", n_positive_probability=0.2, threshold=0.5, n_estimate="N0"
    )
    result = AnalysisResult.model_validate(
        {
            "study_uid": "1.2.3",
            "series_uid": "1.2.3.4",
            "bundle": {"name": "demo", "version": "1", "sha256": "0" * 64},
            "category": {
                "label": "resectable",
                "probabilities": (0.8, 0.1, 0.1),
                "uncertainty": 0.0,
            },
            "localisation": {"found": True, "confidence": 0.9},
            "lymph_nodes": answer.model_dump(),
        }
    )
    again = AnalysisResult.model_validate_json(result.to_json())
    assert again.lymph_nodes == answer and again.schema_version == RESULT_SCHEMA_VERSION
