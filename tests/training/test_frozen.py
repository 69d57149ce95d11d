"""``freeze_image_branch``: heads trained on an earlier bundle's frozen image branch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bundle import load_bundle
from inference.tasks.resectability.model import ResectabilityNet
from tests.training._training_arrays import tiny_arrays, tiny_config, train_in_memory
from training._frozen import classify_pooled, encode_cohort, pooled_cache
from training._loop import CohortArrays, predict

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def arrays() -> CohortArrays:
    return tiny_arrays()


_config = tiny_config


@pytest.fixture(scope="module")
def source(arrays: CohortArrays, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = train_in_memory(monkeypatch, arrays, _config(), tmp_path_factory.mktemp("source"))
    return run.bundle_json.parent


def _part(model: ResectabilityNet, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def test_only_the_heads_train_and_the_cohort_is_encoded_once(
    monkeypatch: pytest.MonkeyPatch, arrays: CohortArrays, source: Path, tmp_path: Path
) -> None:
    config = _config(
        init_from=str(source), freeze_image_branch=True, image_pooling="contact",
        max_epochs=10, patience=10, lr=(1e-2,), ablations=("ct_only", "tabular_only"),
        clinical_dropout=0.5,
    )  # fmt: skip
    run = train_in_memory(monkeypatch, arrays, config, tmp_path / "frozen")
    before = load_bundle(source).members[0].model
    for bundle in (run.bundle_json.parent, run.ablation_bundles["ct_only"].parent):
        model = load_bundle(bundle).members[0].model
        assert model.config.image_pooling == "contact"
        frozen, start = _part(model, "swin."), _part(before, "swin.")
        assert frozen.keys() == start.keys()
        assert all(torch.equal(frozen[k], start[k]) for k in start)
        trained = _part(model, "image_projection.")
        assert any(not torch.equal(v, _part(before, "image_projection.")[k])
                   for k, v in trained.items())  # fmt: skip
    report = (run.out / "report.md").read_text()
    assert "contact pooling" in report and "image branch frozen" in report
    assert "fusion: concatenated image and clinical vectors" in report
    multimodal = load_bundle(run.bundle_json.parent).members[0].model.config
    tabular = load_bundle(run.ablation_bundles["tabular_only"].parent).members[0].model.config
    assert (multimodal.clinical_dropout, tabular.clinical_dropout) == (0.5, 0.0)
    caches = list((tmp_path / "frozen" / "checkpoints" / "pooled").glob("*.npz"))
    assert len(caches) == 1  # the multimodal and the CT-only fit share one encoding
    with np.load(caches[0]) as saved:
        assert saved["pooled"].shape[0] == len(arrays.targets)

    caches[0].unlink()
    again = train_in_memory(monkeypatch, arrays, config, tmp_path / "frozen")
    assert not caches[0].exists()  # finished checkpoints are reloaded, not re-encoded
    first = load_bundle(run.bundle_json.parent).members[0].model.state_dict()
    second = load_bundle(again.bundle_json.parent).members[0].model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_freezing_needs_a_warm_start() -> None:
    with pytest.raises(ValueError, match="freeze_image_branch needs init_from"):
        _config(freeze_image_branch=True)
    with pytest.raises(ValueError, match="image_pooling must be global or contact"):
        _config(image_pooling="max")
    with pytest.raises(ValueError, match="clinical_dropout must lie"):
        _config(clinical_dropout=1.0)


def test_cached_encodings_classify_as_the_whole_model_does(
    arrays: CohortArrays, source: Path, tmp_path: Path
) -> None:
    member = load_bundle(source).members[0]
    model, cpu = member.model, torch.device("cpu")
    rows = np.arange(len(arrays.targets))
    cache = pooled_cache(tmp_path, next(source.glob("model-*.safetensors")))
    encode_cohort(model, arrays.images, arrays.labels, rows[:2], cpu, cache)
    features = member.preprocessor.transform(arrays.clinical).features
    for clinical in (features, None):  # None: the knock-out path
        whole = predict(model, arrays, rows[2:], clinical, cpu).probs
        cached = classify_pooled(model, cache, rows[2:], clinical, cpu)
        np.testing.assert_allclose(cached, whole, atol=1e-5)
