"""The lymph-node training: config, cohort arrays, a tiny end-to-end run and its bundle.

Structure only (the run finishes, the bundle loads and scores every patient, the report holds
the ablation), never accuracy: 8 hand-made patients, one epoch per phase, tiny networks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bundle import BundleError
from inference.tasks.lymph_nodes.bundle import load_lymph_node_bundle
from phantom import PhantomOptions, generate_cohort
from tests.training._lymph_node_cohort import write_cohort
from training._lymph_node_data import CaseArrays, discover_lymph_node_cases, load_case_arrays
from training._lymph_node_fit import _patch_origin, node_voxels, tversky_ce_loss
from training.lymph_node_config import LymphNodeConfig, load_lymph_node_config
from training.lymph_nodes import ABLATION_DIR, evaluate_lymph_nodes, train_lymph_nodes

torch.set_num_threads(1)

TINY = """
organ_epochs = 1
seg_epochs = 1
classifier_epochs = 1
patient_epochs = 1
outer_folds = 2
patch_size = 16
device = "cpu"
num_threads = 1
[organs]
cube_size = 32
cube_mm = 192.0
base_filters = 4
max_filters = 16
max_pools = 3
[segmenter]
cube_size = 32
cube_mm = 128.0
base_filters = 4
max_filters = 16
max_pools = 3
head_channels = 4
deep_supervision = 1
[classifier]
crop_size = 16
not_node_class = true
[patient]
patch_size = 16
patch_mm = 64.0
channels = [4, 8]
codewords = 2
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("ln-cohort"), 8)


def tiny_config(tmp_path: Path) -> LymphNodeConfig:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return load_lymph_node_config(path)


def test_config_tables_defaults_and_refusals(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    assert config.segmenter.cube_size == 32 and config.segmenter.attention
    assert config.patient.channels == (4, 8) and config.patch == 16
    assert (config.tversky_alpha, config.tversky_beta) == (0.5, 1.5)
    assert len(config.sha256()) == 64 and config.sha256() != LymphNodeConfig().sha256()
    bad = tmp_path / "bad.toml"
    for text, match in (("epochs = 3\n", "unknown lymph-node"),
                        ("[segmenter]\nattention = false\n", "unknown segmenter"),
                        ("patch_size = 20\n", "patch_size")):  # fmt: skip
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=match):
            load_lymph_node_config(bad)
    demo = Path(__file__).parents[2] / "bundles" / "demo" / "train-config-lymph-nodes.toml"
    assert load_lymph_node_config(demo).weights_dtype == "float16"


def test_tversky_ce_is_dice_like_and_weighs_misses_more() -> None:
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 1
    perfect = torch.where(target.bool(), 20.0, -20.0).float()
    logits = torch.cat([-perfect, perfect], dim=1)
    assert float(tversky_ce_loss(logits, target)) < 1e-3
    half = logits.clone()
    half[:, :, 0] = torch.tensor([20.0, -20.0])[None, :, None, None]  # misses half the node
    extra = logits.clone()
    extra[:, :, 2] = torch.tensor([-20.0, 20.0])[None, :, None, None]  # as many false voxels
    assert float(tversky_ce_loss(half, target)) > float(tversky_ce_loss(extra, target))


def test_cohort_arrays_follow_the_contract(cohort: Path, tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    cases = discover_lymph_node_cases(cohort)
    assert [c.n_status for c in cases] == [0, 1] * 4 and len(cases[1].truth) == 3
    arrays = load_case_arrays(cases[:2], config, tmp_path / "cache")
    again = load_case_arrays(cases[:2], config, tmp_path / "cache")  # from the cache
    first = arrays[1]
    assert np.array_equal(first.seg_attention, again[1].seg_attention)
    assert set(np.unique(first.organ_labels)) <= set(range(11)) and first.organ_labels.max() > 0
    assert first.seg_nodes.any() and 0.0 <= first.seg_attention.min() <= 1.0
    assert first.seg_attention.max() == 1.0  # nodes lie where the attention is
    assert first.crops.shape == (3, 16, 16, 16) and first.crop_labels.tolist() == [0, 0, 1]
    assert first.slice_images.shape[1:] == (16, 16) and len(first.slice_images) > 0


@pytest.mark.slow
def test_phantom_patients_follow_the_contract(tmp_path: Path) -> None:
    """Two wide phantoms with nodes (phantom/, issue 24 item 2): every array the run needs."""
    options = PhantomOptions(variation="wide", lymph_nodes=True, pixel_spacing=2.5,
                             slice_thickness=5.0)  # fmt: skip
    generate_cohort(tmp_path / "phantoms", 2, 3, options)
    cases = discover_lymph_node_cases(tmp_path / "phantoms")
    arrays = load_case_arrays(cases, tiny_config(tmp_path), tmp_path / "cache")
    for case, row in zip(cases, arrays, strict=True):
        assert row.crops.shape == (len(case.truth), 16, 16, 16) and row.seg_nodes.any()
        assert set(np.unique(row.organ_labels)) == set(range(11))  # all ten structures
        assert (row.seg_attention[row.seg_nodes > 0] > 0).all()  # nodes lie in the attention
        assert row.crop_labels.sum() == sum(n.metastatic for n in case.truth)


def test_a_cohort_without_nodes_is_refused_with_the_reason(cohort: Path, tmp_path: Path) -> None:
    lines = (cohort / "truth.csv").read_text(encoding="utf-8").splitlines()
    other = tmp_path / "plain"
    other.mkdir()
    (other / "truth.csv").write_text(
        "\n".join(",".join(line.split(",")[:3]) for line in lines) + "\n", encoding="utf-8"
    )
    (other / "clinical.csv").write_bytes((cohort / "clinical.csv").read_bytes())
    for case in discover_lymph_node_cases(cohort):
        (other / case.patient_id).mkdir()
        (other / case.patient_id / "image.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="--generator holdout"):
        discover_lymph_node_cases(other)


@pytest.mark.slow
def test_tiny_run_ships_bundles_report_and_evaluation(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = train_lymph_nodes(cohort, out, tiny_config(tmp_path))
    bundle = load_lymph_node_bundle(out)
    assert bundle.meta["task"] == "lymph-nodes"
    assert bundle.meta["stages"]["segmenter"]["weights_dtype"] == "float16"
    assert bundle.networks.segmenter.config.attention
    plain = load_lymph_node_bundle(out / ABLATION_DIR)
    assert not plain.networks.segmenter.config.attention
    fold = run.summary["folds"][0]
    test = fold["test"]
    assert test["patients"] == 4 and test["n_positive"] == 2
    assert set(test) >= {"patient", "attention", "no_attention"}
    assert test["attention"]["detection"]["truth_nodes"] == 10
    rows = fold["patients"]["test"] + fold["patients"]["validation"]
    assert all(np.isfinite(row["probability"]) for row in rows)  # float16 volume statistics
    recorded = bundle.meta["metrics"]["thresholds"]
    threshold = recorded["patient"]
    assert bundle.settings.patient_threshold == (threshold if threshold == threshold else 0.5)
    assert set(plain.meta["metrics"]["thresholds"]) == {"patient", "nodes_only", "node"}
    # the false-positive reduction: a not-node class and the node threshold chosen on validation
    assert bundle.meta["classes"]["nodes"] == ["not-node", "negative", "positive"]
    assert bundle.settings.node_threshold == recorded["node"]
    assert plain.settings.node_threshold == plain.meta["metrics"]["thresholds"]["node"]
    assert bundle.meta["training"]["attention_at_training"] == "predicted organs"
    assert set(test["attention"]["detection"]["froc"]) == {"0.5", "1", "2", "4", "8"}
    saved = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert saved["folds"][0]["test"]["patients"] == 4
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "show that the code runs, not that the model works" in report
    assert "Ablation: patient N status" in report and "ClsbyLNSeg w/o Attn" in report
    assert "| 0.633 | 0.682 |" in report and "without attention (nnU-Net baseline)" in report
    assert "(FROC)" in report and "| with attention |" in report
    again = evaluate_lymph_nodes(out, cohort, tmp_path / "eval.md", "fresh phantoms")
    assert again["patients"] == 8 and "no_attention" in again
    assert "## fresh phantoms" in (tmp_path / "eval.md").read_text(encoding="utf-8")


def test_evaluation_refuses_a_foreign_bundle(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        evaluate_lymph_nodes(tmp_path, cohort)


def test_foreground_patches_pick_a_node_not_a_voxel() -> None:
    """A 2-voxel node beside a 1000-voxel one still gets about half the foreground patches."""
    nodes = np.zeros((48, 48, 48), np.uint8)
    nodes[2:12, 2:12, 2:12] = 1
    nodes[40:42, 40, 40] = 2
    empty = np.zeros((0, 16, 16, 16), np.float32)
    case = CaseArrays(
        organ_image=np.zeros((1, 1, 1), np.float32), organ_labels=np.zeros((1, 1, 1), np.uint8),
        seg_image=np.zeros(nodes.shape, np.float32), seg_attention=np.ones(nodes.shape, np.float32),
        seg_nodes=nodes, seg_centre=np.zeros(3), crops=empty, crop_labels=np.zeros(0, np.int64),
        slice_images=empty[:, 0], slice_masks=empty[:, 0],
    )  # fmt: skip
    rng = np.random.default_rng(0)
    small = 0
    for _ in range(200):
        i, j, k = _patch_origin(case, 16, True, True, rng)
        patch = nodes[i : i + 16, j : j + 16, k : k + 16]
        assert patch.any()
        small += bool((patch == 2).any())
    assert 70 <= small <= 130


def test_node_voxels_lists_each_node_once() -> None:
    nodes = np.zeros((4, 4, 4), np.uint8)
    nodes[0, 0, :2] = 3
    nodes[3, 3, 3] = 1
    found = node_voxels(nodes)
    assert [sorted(v.tolist()) for v in found] == [[63], [0, 1]]
    assert node_voxels(np.zeros((2, 2, 2), np.uint8)) == []
