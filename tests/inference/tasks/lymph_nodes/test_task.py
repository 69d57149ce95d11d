"""analyse() end to end on a tiny random-weight bundle: shapes, types and what it says it used.

Random weights: nothing here says anything about accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.tasks.lymph_nodes.bundle import (
    LymphNodeNetworks,
    LymphNodeSettings,
    load_lymph_node_bundle,
    save_lymph_node_bundle,
)
from inference.tasks.lymph_nodes.model import NodeClassifierConfig, SegConfig, UNetConfig
from inference.tasks.lymph_nodes.patient import PatientNetConfig
from inference.tasks.lymph_nodes.task import LymphNode, LymphNodeModel, LymphNodeResult
from inference.tasks.protocol import AnalysisError
from inference.volume import Volume

torch.set_num_threads(1)
_STAGES = {"organs", "attention", "segmentation", "nodes", "classification", "patient"}


def _model(
    tmp_path: Path, node_bias: float, attention: bool = True, not_node_bias: float | None = None
) -> LymphNodeModel:
    """``not_node_bias``: a classifier with a not-node class, that class's logit bias."""
    torch.manual_seed(0)
    seg = SegConfig(cube_size=32, cube_mm=64.0, base_filters=4, max_filters=16,
                    attention=attention)  # fmt: skip
    classifier = NodeClassifierConfig(crop_size=16, not_node_class=not_node_bias is not None)
    networks = LymphNodeNetworks.build(
        UNetConfig(cube_size=32, cube_mm=128.0, base_filters=4, max_filters=16), seg,
        classifier, PatientNetConfig(patch_size=16, patch_mm=48.0),
    )  # fmt: skip
    with torch.no_grad():  # every voxel a node (one instance) or none at all
        output = networks.segmenter.head[1].conv.conv  # type: ignore[union-attr]
        output.bias.copy_(torch.tensor([0.0, node_bias]))  # type: ignore[union-attr, operator]
        if not_node_bias is not None:
            networks.classifier.fc.weight.zero_()
            networks.classifier.fc.bias.copy_(torch.tensor([not_node_bias, 0.0, 0.0]))
    settings = LymphNodeSettings(suspicious_threshold=0.0, node_threshold=0.5)
    save_lymph_node_bundle(
        tmp_path / "b", networks, settings, name="test",
        version="0", config_sha256="c" * 64, data_hash="d" * 64, metrics={},
        weights_dtype="float16",
    )  # fmt: skip
    return LymphNodeModel(load_lymph_node_bundle(tmp_path / "b"))


def _ct() -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    array = rng.normal(40.0, 30.0, (40, 40, 24)).astype(np.int16)
    affine = np.diag([-2.0, -2.0, 3.0, 1.0])  # LPS-like storage: flips are handled
    tumor = np.zeros(array.shape, dtype=np.uint8)
    tumor[18:24, 16:22, 10:14] = 1
    return Volume(array, affine), Volume(tumor, affine)


def test_analyse_with_a_tumor_mask(tmp_path: Path) -> None:
    ct, tumor = _ct()
    model = _model(tmp_path, node_bias=50.0)
    analysis = model.analyse_with_maps(ct, tumor)
    result = analysis.result
    assert isinstance(result, LymphNodeResult) and set(result.timings_s) == _STAGES
    assert result.inputs == ("ct", "attention", "tumor_mask") and result.model_version == "test 0"
    assert len(result.nodes) == 1 and isinstance(result.nodes[0], LymphNode)
    node = result.nodes[0]
    assert 0.0 <= node.metastasis_probability <= 1.0 and node.suspicious  # threshold 0
    assert 0.0 < node.short_axis_mm <= node.long_axis_mm and node.volume_ml > 0.0
    assert node.station is None or isinstance(node.station, str)
    assert result.largest_suspicious_volume_ml == node.volume_ml
    assert 0.0 <= result.n_positive_probability <= 1.0
    assert isinstance(result.n_positive, bool)
    assert analysis.probability.shape == analysis.instances.shape == (32, 32, 32)
    assert analysis.attention.shape == (32, 32, 32) and analysis.organs.shape == (32, 32, 32)
    assert analysis.attention.min() >= 0.0 and analysis.attention.max() <= 1.0


def test_analyse_without_a_tumor_mask_says_so(tmp_path: Path) -> None:
    ct, _ = _ct()
    result = _model(tmp_path, node_bias=-50.0, attention=False).analyse(ct)
    assert result.nodes == () and result.largest_suspicious_volume_ml == 0.0
    assert result.inputs == ("ct",) and set(result.timings_s) == _STAGES
    assert any("no tumor mask" in w for w in result.warnings)
    assert any("without attention" in w for w in result.warnings)
    assert 0.0 <= result.n_positive_probability <= 1.0


def test_non_finite_ct_is_refused(tmp_path: Path) -> None:
    ct, _ = _ct()
    broken = np.asarray(ct.array, dtype=np.float32)
    broken[0, 0, 0] = np.nan
    with pytest.raises(AnalysisError, match="non-finite"):
        _model(tmp_path, node_bias=0.0).analyse(Volume(broken, ct.affine))


@pytest.mark.parametrize(("not_node_bias", "kept"), [(8.0, 0), (-8.0, 1)])
def test_the_node_threshold_drops_what_the_classifier_calls_no_node(
    tmp_path: Path, not_node_bias: float, kept: int
) -> None:
    """False-positive reduction: a candidate below the bundle's node threshold (0.5) is gone."""
    ct, tumor = _ct()
    analysis = _model(tmp_path, node_bias=50.0, not_node_bias=not_node_bias).analyse_with_maps(
        ct, tumor
    )
    assert analysis.candidates.max() == 1 and len(analysis.candidate_node_probability) == 1
    node_p = analysis.candidate_node_probability[0]
    assert (node_p < 0.01) if kept == 0 else (node_p > 0.99)
    assert len(analysis.result.nodes) == kept == int(analysis.instances.max())
    # metastasis given a node: the two node logits are equal, so one half
    assert all(abs(n.metastasis_probability - 0.5) < 1e-3 for n in analysis.result.nodes)
