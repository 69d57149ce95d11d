"""``pancreas-node train-localiser``: a tiny cohort and bundle through the real CLI entry point.

Three small phantoms, one epoch: these tests check the command's structure (exit status, the
bundle section, the weights' hash, one-line errors), never accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.bundle import load_bundle, sha256_file
from pancreas_node.cli import main
from phantom import PhantomOptions, generate_cohort
from training.structure_bundle import build_test_bundle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    generate_cohort(root, 3, 2, PhantomOptions(pixel_spacing=2.5, slice_thickness=5.0))
    return root


def test_train_localiser_adds_a_verified_section(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = build_test_bundle(tmp_path / "b", members=1)
    before = json.loads((bundle / "bundle.json").read_text())
    argv = ["train-localiser", "--data", str(cohort), "--bundle", str(bundle), "--epochs", "1"]
    assert main([*argv, "--threads", "1", "--spacing", "6"]) == 0
    captured = capsys.readouterr()
    assert "localiser epoch 1/1" in captured.err and "held out 1 patients" in captured.out
    meta = json.loads((bundle / "bundle.json").read_text())
    section = meta["localiser"]
    assert section["sha256"] == sha256_file(bundle / "localiser.safetensors")
    assert section["config"]["spacing_mm"] == 6.0 and section["method"] == "learned-unet-6mm v1"
    assert section["training"]["fit_rows"] == 2 and section["training"]["heldout_rows"] == 1
    assert "no fold split" in section["training"]["rows"]  # the test bundle records none
    assert section["metrics"]["patients"] == 1 and "PHANTOM" not in json.dumps(section)
    assert {k: v for k, v in meta.items() if k != "localiser"} == before
    assert not list(bundle.glob("*.partial"))
    loaded = load_bundle(bundle)
    assert loaded.localiser is not None and loaded.localiser.config.spacing_mm == 6.0
    assert list((bundle / "cache").glob("*_loc6mm_v1_*.npz"))


def test_train_localiser_without_a_bundle_fails_in_one_line(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train-localiser", "--data", str(cohort), "--bundle", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pancreas-node: error:") and "bundle.json" in err
    assert "\n" not in err
