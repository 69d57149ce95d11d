"""The committed lymph-node demo bundle loads and says what it is."""

from __future__ import annotations

from inference.tasks.lymph_nodes.bundle import load_lymph_node_bundle
from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / "bundles" / "lymph-nodes-demo"


def test_the_demo_bundle_and_its_ablation_twin_load() -> None:
    bundle = load_lymph_node_bundle(DEMO)
    assert bundle.networks.segmenter.config.attention
    twin = load_lymph_node_bundle(DEMO / "ablation" / "no-attention")
    assert not twin.networks.segmenter.config.attention
    report = (DEMO / "report.md").read_text(encoding="utf-8")
    assert "show that the code runs, not that the model works" in report
