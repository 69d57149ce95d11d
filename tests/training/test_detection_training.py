"""The detection training: config, a 2-patient one-epoch smoke run, the shipped bundle.

Structure only (the run finishes, the bundle loads and scores every patient), never accuracy;
the smoke run takes about 5 s on an idle CPU core.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.tasks.detection.bundle import load_detection_bundle, save_detection_bundle
from inference.tasks.detection.task import DetectionModel
from phantom import PhantomOptions, generate_cohort
from training._detection_data import load_detection_arrays
from training._detection_eval import evaluate_cases, summarise
from training._detection_fit import fit_stage1, fit_stage2
from training.dataset import discover_cases
from training.detection import evaluate_detection
from training.detection_config import DetectionConfig, load_detection_config

torch.set_num_threads(1)

_TINY = """
stage1_epochs = 1
seg_epochs = 1
cls_epochs = 1
finetune_epochs = 1
device = "cpu"
[stage1]
cube_size = 32
cube_mm = 256.0
base_filters = 4
max_filters = 16
max_pools = 3
[stage2]
cube_size = 32
cube_mm = 128.0
base_filters = 4
max_filters = 16
max_pools = 3
fpn_channels = 8
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("detection-cohort")
    options = PhantomOptions(variation="wide", tumor_free_fraction=0.5, pixel_spacing=2.5,
                             slice_thickness=5.0)  # fmt: skip
    generate_cohort(out, 2, 3, options)  # one PDAC, one without
    return out


def _config(tmp_path: Path) -> DetectionConfig:
    path = tmp_path / "tiny.toml"
    path.write_text(_TINY, encoding="utf-8")
    return load_detection_config(path)


def test_config_loads_tables_and_refuses_unknown_keys(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.stage2.cube_size == 32 and config.stage2.fpn_channels == 8
    assert config.class_weights == (1.0, 3.0) and config.weights_dtype == "float16"
    assert len(config.sha256()) == 64 and config.sha256() != DetectionConfig().sha256()
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown"):
        load_detection_config(bad)
    bad.write_text("[stage2]\nwidth = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown stage2"):
        load_detection_config(bad)
    with pytest.raises(ValueError):
        load_detection_config(None, class_weights=(1.0,))


def test_two_patient_one_epoch_run_ships_a_bundle_that_scores_them(
    cohort: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    cases = discover_cases(cohort)
    arrays = load_detection_arrays(cases, config, tmp_path / "cache")
    assert arrays.positive.tolist() == [1, 0]
    assert arrays.stage2_masks[0].any() and not arrays.stage2_masks[1].any()
    assert arrays.stage1_masks.any(axis=(1, 2, 3)).all()  # both pancreases in the coarse cube
    rows = np.arange(2)
    device = torch.device("cpu")
    stage1, log1 = fit_stage1(arrays, rows, config, device)
    stage2, logs = fit_stage2(arrays, rows, config, device)
    assert [log.phase for log in logs] == ["segmentation", "classification", "finetune"]
    assert len(log1.losses) == 1 and all(np.isfinite(log.losses).all() for log in logs)
    save_detection_bundle(
        tmp_path / "bundle", (stage1, config.stage1), stage2, config.settings(), name="smoke",
        version="0", config_sha256=config.sha256(), data_hash="0" * 64, metrics={},
        weights_dtype="float16",
    )  # fmt: skip
    model = DetectionModel(load_detection_bundle(tmp_path / "bundle"))
    summary = summarise(evaluate_cases(model, cases))
    assert summary["patients"] == 2 and summary["positives"] == 1
    assert [row["score"] for row in summary["ablation"]] == [
        "classification", "detection_max", "combined"]  # fmt: skip
    assert summary["truth_lesions"] >= 1 and set(summary["froc"]) == {"0.5", "1", "2"}
    report = tmp_path / "eval.md"
    again = evaluate_detection(tmp_path / "bundle", cohort, report, "fresh phantoms")
    assert again["ablation"] == summary["ablation"]
    assert "## fresh phantoms" in report.read_text(encoding="utf-8")


def test_phase_epochs_come_from_the_config() -> None:
    config = load_detection_config(
        None, stage1_epochs=1, seg_epochs=1, cls_epochs=0, finetune_epochs=0
    )
    assert (config.cls_epochs, config.finetune_epochs) == (0, 0)
    with pytest.raises(ValueError):
        load_detection_config(None, seg_epochs=0)
