"""``pancreas-node train --task lymph-nodes``: a tiny run through the real CLI entry point.

Eight hand-made patients, one epoch per phase, tiny networks: the exit status, the bundle and
its ablation twin, the report; never accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.tasks.lymph_nodes.bundle import load_lymph_node_bundle
from pancreas_node.cli import main
from tests.training._lymph_node_cohort import write_cohort
from tests.training.test_lymph_nodes import TINY

torch.set_num_threads(1)


@pytest.mark.slow
def test_train_task_lymph_nodes_writes_its_bundles_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = write_cohort(tmp_path / "cohort", 8)
    config = tmp_path / "ln.toml"
    config.write_text(TINY, encoding="utf-8")
    out = tmp_path / "ln"
    argv = ["train", "--task", "lymph-nodes", "--data", str(cohort), "--out", str(out)]
    assert main([*argv, "--config", str(config), "--workers", "1"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "investigational, not for clinical use" in printed and "patient N+ AUC" in printed
    meta = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert meta["task"] == "lymph-nodes" and meta["training"]["config"]["workers"] == 1
    assert meta["metrics"]["test"]["patients"] == 4 and len(meta["config_sha256"]) == 64
    assert load_lymph_node_bundle(out / "ablation" / "no-attention").meta["task"] == "lymph-nodes"
    assert "ClsbyLNSeg w/ Attn" in (out / "report.md").read_text(encoding="utf-8")
    evaluated = tmp_path / "eval"
    argv = ["evaluate", "--task", "lymph-nodes", "--bundle", str(out), "--data", str(cohort)]
    assert main([*argv, "--out", str(evaluated)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "false positives per patient; patient N+ AUC" in printed and "(8 patients" in printed
    assert "## cohort cohort" in (evaluated / "eval-cohort.md").read_text(encoding="utf-8")


def test_train_task_lymph_nodes_refuses_resectability_options_and_bad_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "lymph-nodes", "--data", str(tmp_path), "--out", str(tmp_path)]
    assert main([*argv, "--max-epochs", "3"]) != 0
    assert "resectability only" in capsys.readouterr().err
    config = tmp_path / "bad.toml"
    config.write_text("stage1_epochs = 3\n", encoding="utf-8")
    assert main([*argv, "--config", str(config)]) != 0
    assert "unknown lymph-node config keys" in capsys.readouterr().err
