"""``train_cohort`` keeps its ablation models as bundles under ``OUT/ablations/<variant>/``.

A tiny in-memory cohort (``load_cohort`` patched) and one epoch per fit: structure and the
resume path, never accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.bundle import load_bundle
from inference.tasks.resectability.model import ModelMode
from tests.training._training_arrays import tiny_arrays, train_in_memory
from training._loop import CohortArrays
from training._metrics import classification_metrics
from training._splits import nested_splits
from training.config import TrainConfig

torch.set_num_threads(2)

# fixed_weights takes the same path (a multimodal network of its own); left out for time.
VARIANTS = ("ct_only", "tabular_only")


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    return TrainConfig(
        outer_folds=2, folds_to_run=1, max_epochs=1, patience=1, batch_size=(2,),
        augment=False, ablations=(*VARIANTS, "knockout"), device="cpu", localiser_epochs=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def arrays() -> CohortArrays:
    return tiny_arrays()


def test_ablation_bundles_load_predict_like_training_and_survive_resume(
    monkeypatch: pytest.MonkeyPatch, arrays: CohortArrays, config: TrainConfig, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run = train_in_memory(monkeypatch, arrays, config, out)
    assert set(run.ablation_bundles) == set(VARIANTS)
    main = json.loads(run.bundle_json.read_text())
    assert main["model"]["architecture"] == "multimodal Swin-UNETR"
    test = nested_splits(arrays.targets.tolist(), 2, config.seed)[0].test
    for variant in VARIANTS:
        path = run.ablation_bundles[variant]
        assert path == out / "ablations" / variant / "bundle.json"
        bundle = load_bundle(path.parent)
        meta = bundle.meta
        assert meta["model"]["name"] == f"pancreas-resectability-{variant}"
        assert meta["training_data_sha256"] == main["training_data_sha256"]
        assert meta["preprocessing"] == main["preprocessing"]
        assert meta["training"]["variant"] == variant
        assert set(meta["metrics"]) == {variant}
        assert len(bundle.members) == config.folds_to_run
        model = bundle.members[0].model
        mode = ModelMode(variant)
        assert model.config.model_mode is mode
        assert (model.swin is None) == (mode is ModelMode.TABULAR_ONLY)
        assert (model.clinical_mlp is None) == (mode is ModelMode.CT_ONLY)
        image = None if mode is ModelMode.TABULAR_ONLY else arrays.images[test]
        probs = bundle.predict(image, arrays.clinical[test])
        metrics = classification_metrics(arrays.targets[test].tolist(), probs)
        row = run.folds[variant][0]
        assert metrics["confusion"] == row["confusion"]
        assert metrics["accuracy"] == pytest.approx(row["accuracy"])
    assert not (out / "ablations" / "knockout").exists()

    # Re-running on the finished folder resumes every fit from its checkpoint's best state.
    before = {v: json.loads(p.read_text())["members"] for v, p in run.ablation_bundles.items()}
    again = train_in_memory(monkeypatch, arrays, config, out)
    for variant, path in again.ablation_bundles.items():
        members = json.loads(path.read_text())["members"]
        assert [m["sha256"] for m in members] == [m["sha256"] for m in before[variant]]
