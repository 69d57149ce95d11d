"""``pancreas-node train --task survival`` and ``evaluate --task survival`` through the CLI.

A 30-patient hand-made cohort (``tests/training/_survival_cohort.py``), two epochs of a tiny
DenseNet, 20 trees: the exit status, what is printed, the bundle and the reports; never
accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.tasks.survival import load_survival_bundle
from pancreas_node.cli import main
from tests.training._survival_cohort import TINY_TOML, tiny_bundle, write_cohort

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("survival-cli") / "cohort", 30)


@pytest.mark.slow
def test_train_and_evaluate_task_survival(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "survival.toml"
    config.write_text(TINY_TOML, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--task", "survival", "--data", str(cohort), "--out", str(out)]
    assert main([*argv, "--config", str(config), "--workers", "1"]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "survival fusion (test split): time-dependent AUC 1/2/3 y" in captured.out
    assert "investigational, not for clinical use" in captured.out
    assert "cross-fit fold 1: radiomics (0/2)" in captured.err
    meta = json.loads((out / "bundle" / "bundle.json").read_text(encoding="utf-8"))
    assert meta["task"] == "survival" and meta["training"]["config"]["workers"] == 1
    assert meta["training"]["config"]["densenet"]["block_config"] == [2, 2, 2, 2]
    assert load_survival_bundle(out / "bundle").parts.forest.tree_offset.size == 21
    assert "| fusion (logistic regression) |" in (out / "report.md").read_text(encoding="utf-8")

    evaluation = tmp_path / "eval"
    argv = ["evaluate", "--task", "survival", "--bundle", str(out / "bundle"), "--data",
            str(cohort), "--out", str(evaluation), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    for model in ("radiomics", "densenet", "clinical", "fusion", "oracle"):
        assert f"{model}: time-dependent AUC 1/2/3 y" in printed
    assert "risk groups:" in printed and "eval-cohort.md" in printed
    text = (evaluation / "eval-cohort.md").read_text(encoding="utf-8")
    assert "## Cohort cohort" in text and "30 PDAC patients" in text


def test_train_task_survival_refuses_other_tasks_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--task", "survival", "--data", str(tmp_path), "--out", str(tmp_path)]
    assert main([*argv, "--max-epochs", "3"]) != 0
    assert "resectability only" in capsys.readouterr().err
    assert main([*argv, "--folds-to-run", "1"]) != 0
    assert "7:3 split" in capsys.readouterr().err
    config = tmp_path / "bad.toml"
    config.write_text("outer_folds = 3\n", encoding="utf-8")
    assert main([*argv, "--config", str(config)]) != 0
    assert "unknown survival config keys" in capsys.readouterr().err


def test_evaluate_task_survival_refuses_a_cohort_without_follow_up_or_a_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = write_cohort(tmp_path / "cohort", 2)
    truth = (cohort / "truth.csv").read_text(encoding="utf-8")
    (cohort / "truth.csv").write_text(truth.replace("os_months", "months"), encoding="utf-8")
    bundle = tiny_bundle(tmp_path / "bundle")
    argv = ["evaluate", "--task", "survival", "--bundle", str(bundle), "--data", str(cohort),
            "--out", str(tmp_path / "eval")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("pancreas-node: error:") and "--follow-up" in err
    (tmp_path / "empty").mkdir()
    assert main([*argv[:4], str(tmp_path / "empty"), *argv[5:]]) == 1
    assert "pancreas-node: error: bundle" in capsys.readouterr().err
    assert main([*argv[:2], "detection", *argv[3:]]) != 0
    assert "resectability, survival or lymph-nodes" in capsys.readouterr().err
