"""The survival model's answer through the plugin (issue 25): worklist and results section."""

from __future__ import annotations

import pytest

from db import WorklistEntry
from orthanc_plugin._prognosis import prognosis_json
from orthanc_plugin._worklist import parse_worklist_query, worklist_page
from pancreas_contracts import JobState
from pancreas_contracts.prognosis import (
    KaplanMeierCurve,
    ModelProbabilities,
    StageInput,
    SurvivalPrognosis,
)
from tests.orthanc_plugin.unit_helpers import entry

#: A hand-made high-risk answer (result.json 1.7), as the survival model would write it.
PROGNOSIS = SurvivalPrognosis(
    model_version="survival-phantom 0.1.0",
    death_probability=(0.42, 0.71, 0.86),
    risk_group="high",
    risk_cutoff=0.8,
    components={
        "radiomics": ModelProbabilities(death_probability=(0.40, 0.66, 0.81)),
        "clinical": ModelProbabilities(death_probability=(0.35, 0.62, 0.79)),
    },
    staging={
        "T": StageInput(value="T3", source="node"),
        "N": StageInput(value="N+", source="lymph-node-model"),
        "M": StageInput(source="missing"),
    },
    reference_curves=(
        KaplanMeierCurve(label="high risk", months=(0.0, 12.0, 24.0), survival=(1.0, 0.5, 0.2)),
        KaplanMeierCurve(label="low risk", months=(0.0, 12.0, 24.0), survival=(1.0, 0.9, 0.7)),
    ),
    inputs_used=("ct", "tumor_mask", "T", "N"),
    inputs_missing=("M", "ca19_9_baseline"),
)


def _entries() -> list[WorklistEntry]:
    return [
        entry("1", JobState.DONE, category=0, probabilities=(0.8, 0.1, 0.1),
              risk_group="high", death_probability_1y=0.42, death_probability_3y=0.86),
        entry("2", JobState.DELIVERED, category=1, probabilities=(0.1, 0.8, 0.1),
              risk_group="low", death_probability_1y=0.10, death_probability_3y=0.35),
        entry("3", JobState.DONE, category=1, probabilities=(0.1, 0.8, 0.1)),  # no survival model
        entry("4", JobState.DONE, category=2, probabilities=(0.1, 0.1, 0.8),
              risk_group="high", death_probability_1y=0.60, death_probability_3y=0.95),
    ]  # fmt: skip


def _uids(**query: str) -> list[str]:
    page = worklist_page(_entries(), parse_worklist_query(query))
    return [item["study_instance_uid"] for item in page["items"]]


def test_worklist_items_carry_the_risk_group() -> None:
    items = worklist_page(_entries(), parse_worklist_query({}))["items"]
    shown = {
        i["study_instance_uid"]: (
            i["risk_group"], i["death_probability_1y"], i["death_probability_3y"]
        )
        for i in items
    }  # fmt: skip
    assert shown == {
        "1": ("high", 0.42, 0.86),
        "2": ("low", 0.10, 0.35),
        "3": (None, None, None),
        "4": ("high", 0.60, 0.95),
    }


@pytest.mark.parametrize(
    ("risk", "expected"),
    [("high", ["1", "4"]), ("LOW", ["2"]), ("high,low", ["1", "2", "4"]), (" low ", ["2"])],
)
def test_worklist_filters_by_the_risk_group(risk: str, expected: list[str]) -> None:
    assert sorted(_uids(risk=risk)) == expected


def test_worklist_sorts_by_the_three_year_death_probability() -> None:
    # Highest risk first by default; a study without a survival result always last.
    assert _uids(sort="risk") == ["4", "1", "2", "3"]
    assert _uids(sort="risk", order="asc") == ["2", "1", "4", "3"]


@pytest.mark.parametrize("query", [{"risk": "medium"}, {"risk": "high,N0"}, {"sort": "risks"}])
def test_worklist_rejects_bad_risk_queries(query: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"^(risk|sort):"):
        parse_worklist_query(query)


def test_results_section_carries_the_prognosis() -> None:
    assert prognosis_json(None) is None
    body = prognosis_json(PROGNOSIS)
    assert body is not None
    assert body["risk_group"] == "high" and body["death_probability"] == [0.42, 0.71, 0.86]
    assert body["risk_cutoff"] == 0.8 and body["risk_horizon_years"] == 3
    assert body["survival_probability"] == pytest.approx([0.58, 0.29, 0.14])
    assert (
        body["text"] == "high risk (death by 1/2/3 years 0.42/0.71/0.86; cut-off 0.80 at 3 years)"
    )
    assert body["staging"]["N"] == {"value": "N+", "source": "lymph-node-model"}
    assert body["staging"]["M"] == {"value": None, "source": "missing"}
    assert body["components"]["radiomics"]["death_probability"] == [0.40, 0.66, 0.81]
    assert [c["label"] for c in body["reference_curves"]] == ["high risk", "low risk"]
    assert body["inputs_missing"] == ["M", "ca19_9_baseline"]
    # The section round-trips into the contract (the viewer reads the same fields).
    fields = {k: body[k] for k in SurvivalPrognosis.model_fields}
    assert SurvivalPrognosis.model_validate(fields) == PROGNOSIS
