"""``pancreas-node train``: a minimal run through the real CLI entry point.

Six small phantoms (two per class), two outer folds of which one runs, one epoch, one grid
point and a one-epoch localiser: the test checks the command's structure (exit status, report,
figures, a bundle that loads with its localiser and its recorded config), never accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.bundle import load_bundle
from pancreas_node.cli import main
from phantom import PhantomOptions, generate_cohort

torch.set_num_threads(1)

_CONFIG = """
target_size = 64
outer_folds = 2
folds_to_run = 1
max_epochs = 1
patience = 1
lr = [1e-3]
feature_size = [12]
batch_size = [2]
window_size = 4
augment = false
localiser_epochs = 1
device = "cpu"
num_threads = 1
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    options = PhantomOptions(
        class_counts=(1.0, 1.0, 1.0), label_noise=0.0, pixel_spacing=2.5, slice_thickness=5.0
    )
    generate_cohort(out, 6, 4, options, workers=2)
    return out


def test_train_writes_a_report_and_a_loadable_bundle(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cpu.toml"
    config.write_text(_CONFIG, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(cohort), "--out", str(out), "--config", str(config)]
    assert main(argv) == 0
    assert "investigational, not for clinical use" in capsys.readouterr().out
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "6 patients, classes [2, 2, 2]" in report and "| multimodal Swin-UNETR | 0 |" in report
    assert (out / "roc_multimodal.png").stat().st_size > 0
    bundle = load_bundle(out)
    assert len(bundle.members) == 1 and bundle.localiser is not None
    assert bundle.members[0].model.config.window_size == 4
    meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert meta["training"]["config"]["max_epochs"] == 1 and meta["training"]["patients"] == 6


def test_parallel_budgeted_training_with_ablations_and_float16_weights(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "parallel.toml"
    text = _CONFIG.replace("localiser_epochs = 1", "localiser_epochs = 0")
    config.write_text(text + 'weights_dtype = "float16"\n', encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(cohort), "--out", str(out), "--config", str(config)]
    argv += ["--workers", "3", "--time-budget-min", "30"]
    argv += ["--ablation", "ct_only", "--ablation", "tabular_only"]
    assert main(argv) == 0, capsys.readouterr().err
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| CT only | 0 |" in report and "| tabular only | 0 |" in report
    fold0 = out / "checkpoints" / "fold0"
    checkpoints = sorted(p.name.split("_lr")[0] for p in fold0.glob("*.pt"))
    assert checkpoints == ["ct_only", "multimodal", "tabular_only"]
    for variant in ("ct_only", "tabular_only"):
        assert load_bundle(out / "ablations" / variant).meta["members"][0]["weights_dtype"] == (
            "float16"
        )
    meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert meta["members"][0]["weights_dtype"] == "float16" and "localiser" not in meta
    recorded = meta["training"]["config"]
    assert recorded["workers"] == 3 and recorded["time_budget_min"] == 30.0
    assert load_bundle(out).localiser is None


def test_train_rejects_an_unknown_config_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("epochs = 3\n", encoding="utf-8")
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    assert main([*argv, "--config", str(config)]) != 0
    assert "unknown config keys" in capsys.readouterr().err


_DETECTION_CONFIG = """
stage1_epochs = 1
seg_epochs = 1
cls_epochs = 1
finetune_epochs = 1
outer_folds = 2
device = "cpu"
num_threads = 1
[stage1]
cube_size = 32
base_filters = 4
max_filters = 16
max_pools = 3
[stage2]
cube_size = 32
base_filters = 4
max_filters = 16
max_pools = 3
fpn_channels = 8
"""


@pytest.mark.slow
def test_train_task_detection_writes_its_bundle_and_report(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inference.tasks.detection.bundle import load_detection_bundle

    config = tmp_path / "detection.toml"
    config.write_text(_DETECTION_CONFIG, encoding="utf-8")
    out = tmp_path / "det"
    argv = ["train", "--task", "detection", "--data", str(cohort), "--out", str(out)]
    assert main([*argv, "--config", str(config)]) == 0, capsys.readouterr().err
    assert "investigational, not for clinical use" in capsys.readouterr().out
    meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert meta["task"] == "detection" and meta["stages"]["stage1"]["weights_dtype"] == "float16"
    assert meta["metrics"]["test"]["patients"] == 3 and len(meta["config_sha256"]) == 64
    assert "| combined (reported likelihood) |" in (out / "report.md").read_text(encoding="utf-8")
    assert load_detection_bundle(out).stage2.config.fpn_channels == 8


def test_train_task_detection_refuses_resectability_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "detection", "--data", str(tmp_path), "--out", str(tmp_path)]
    assert main([*argv, "--ablation", "ct_only"]) != 0
    assert "resectability only" in capsys.readouterr().err
    assert main(["train", "--task", "staging", "--data", str(tmp_path), "--out", "x"]) != 0
