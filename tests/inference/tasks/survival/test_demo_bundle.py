"""The committed survival demo bundle loads, predicts, and ranks stage as it was trained to."""

from __future__ import annotations

import numpy as np
import torch

from inference.tasks.survival import SurvivalModel, load_survival_bundle
from inference.volume import Volume
from pancreas_contracts.prognosis import StageInput
from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / "bundles" / "survival-demo"


def _ct_with_sphere(radius_mm: float) -> tuple[Volume, Volume]:
    """A soft-tissue block at 1 mm with a hypo-attenuating sphere (the 'tumor')."""
    n = 96
    grid = np.indices((n, n, n)).astype(np.float32) - n / 2
    sphere = np.sqrt((grid**2).sum(axis=0)) <= radius_mm
    rng = np.random.default_rng(0)
    ct = np.where(sphere, 60.0, 110.0) + rng.normal(0.0, 8.0, sphere.shape)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    return Volume(ct.astype(np.float32), affine), Volume(sphere.astype(np.uint8), affine)


def _staging(t: str) -> dict[str, StageInput]:
    return {"T": StageInput(value=t, source="node"), "N": StageInput(value="N0", source="registry"),
            "M": StageInput(value=None, source="missing")}  # fmt: skip


def test_the_demo_bundle_loads_and_gives_a_valid_prognosis() -> None:
    bundle = load_survival_bundle(DEMO)
    assert len(bundle.parts.densenets) == 3 and bundle.parts.risk.cutoff == 0.8
    assert len(bundle.parts.projection.feature_names) == 1037
    assert {c.label for c in bundle.parts.reference_curves} == {"high risk", "low risk"}
    model = SurvivalModel(bundle, torch.device("cpu"))
    ct, tumor = _ct_with_sphere(15.0)
    values = {"sex": 1.0, "age": 66.0, "ca19_9_baseline": None}
    answer = model.predict(ct, tumor, values, _staging("T2"))
    prognosis = answer.prognosis
    assert set(prognosis.components) == {"radiomics", "densenet", "clinical"}
    assert prognosis.inputs_missing == ("M", "ca19_9_baseline")
    assert prognosis.model_version == "pancreas-ai-survival 0.1.0"
    assert answer.timings_s["survival_radiomics"] > 0


def test_the_demo_clinical_model_ranks_stage_and_ca19_9_as_the_phantom_hazard_does() -> None:
    clinical = load_survival_bundle(DEMO).parts.clinical
    base = np.array([1.0, 66.0, 2.0, 0.0, 0.0, np.log10(37.0)])
    later_t, node_positive, high_ca = base.copy(), base.copy(), base.copy()
    later_t[2], node_positive[3], high_ca[5] = 4.0, 1.0, np.log10(3700.0)
    p = clinical.predict(np.stack([base, later_t, node_positive, high_ca]))[:, 2]
    assert p[1] > p[0] and p[2] > p[0] and p[3] > p[0]


def test_the_demo_report_states_what_its_numbers_mean() -> None:
    report = (DEMO / "report.md").read_text(encoding="utf-8")
    assert "show that the code runs, not that the model works" in report
    assert "held-out generator" in report
