"""``init_from``: a run's image branches start from an earlier bundle of the same rows.

A tiny in-memory cohort (``load_cohort`` patched, as in ``test_training_ablations``). The
second run trains at a learning rate of 1e-12, so its weights stay where they started: equal
to the first run's image branch when the warm start works, and to the seeded initialisation
(which the first run trained away from) when it does not.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from inference.bundle import load_bundle
from inference.tasks.resectability.model import ResectabilityNet
from tests.training._training_arrays import tiny_arrays, tiny_config, train_in_memory
from training._init_from import (
    IMAGE_BRANCH,
    image_branch_cohorts,
    image_branch_weights,
    load_image_branch,
)
from training._loop import CohortArrays

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def arrays() -> CohortArrays:
    return tiny_arrays()


_config = tiny_config


def _branch(model: ResectabilityNet) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(IMAGE_BRANCH)}


@pytest.fixture(scope="module")
def first(arrays: CohortArrays, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = train_in_memory(monkeypatch, arrays, _config(), tmp_path_factory.mktemp("first"))
    return run.bundle_json.parent


def test_every_image_branch_starts_from_the_bundle(
    monkeypatch: pytest.MonkeyPatch, arrays: CohortArrays, first: Path, tmp_path: Path
) -> None:
    source = _branch(load_bundle(first).members[0].model)
    config = _config(lr=(1e-12,), ablations=("ct_only", "tabular_only"), init_from=str(first))
    run = train_in_memory(monkeypatch, arrays, config, tmp_path / "warm")
    cold = train_in_memory(monkeypatch, arrays, _config(lr=(1e-12,)), tmp_path / "cold")
    warm_models = [
        load_bundle(run.bundle_json.parent).members[0].model,
        load_bundle(run.ablation_bundles["ct_only"].parent).members[0].model,
    ]
    for model in warm_models:
        branch = _branch(model)
        assert branch.keys() == source.keys()
        for key, value in source.items():
            # float32 weights stored in float32: only the 1e-12 steps separate them.
            assert torch.allclose(branch[key], value, atol=1e-6), key
    cold_branch = _branch(load_bundle(cold.bundle_json.parent).members[0].model)
    assert any(not torch.allclose(cold_branch[k], v, atol=1e-6) for k, v in source.items())
    meta = json.loads(run.bundle_json.read_text())
    assert meta["training"]["config"]["init_from"] == str(first)


def test_a_bundle_of_other_rows_is_refused(
    monkeypatch: pytest.MonkeyPatch, arrays: CohortArrays, first: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="seed 0 differs from this run's 1"):
        train_in_memory(monkeypatch, arrays, _config(seed=1, init_from=str(first)), tmp_path / "a")
    digest = json.loads((first / "bundle.json").read_text())["training_data_sha256"]
    with pytest.raises(ValueError, match="other data"):
        image_branch_weights(first, "0" * 64, _config())
    with pytest.raises(ValueError, match="2 fold"):
        image_branch_weights(first, digest, _config(folds_to_run=2))
    with pytest.raises(ValueError, match="feature size"):
        image_branch_weights(first, digest, _config(feature_size=(24,)))
    with pytest.raises(ValueError, match="not the grid's"):
        image_branch_weights(first, digest, _config(feature_size=(12, 24)))
    assert image_branch_weights(first, digest, _config()) == [first / "model-0.safetensors"]
    with pytest.raises(ValueError, match=r"init_from: .*cannot read bundle\.json"):
        image_branch_weights(tmp_path / "absent", digest, _config())


def test_load_image_branch_copies_only_the_image_branch(first: Path) -> None:
    config = load_bundle(first).members[0].model.config
    torch.manual_seed(123)
    model = ResectabilityNet(config)
    head = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(IMAGE_BRANCH)}
    copied = load_image_branch(model, first / "model-0.safetensors")
    assert copied == len(_branch(model))
    source = _branch(load_bundle(first).members[0].model)
    assert all(torch.equal(_branch(model)[k], v) for k, v in source.items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in head.items())
    tabular = ResectabilityNet(dataclasses.replace(config, mode="tabular_only"))
    with pytest.raises(ValueError, match="no image branch"):
        load_image_branch(tabular, first / "model-0.safetensors")


def test_an_independent_cohort_starts_every_fold_from_its_first_member(
    first: Path, tmp_path: Path
) -> None:
    digest = json.loads((first / "bundle.json").read_text())["training_data_sha256"]
    independent = _config(init_from_cohort="independent", seed=7, outer_folds=3, folds_to_run=2)
    # Another cohort's rows: seed and folds are free, every fold starts from member 0.
    weights = image_branch_weights(first, "f" * 64, independent)
    assert weights == [first / "model-0.safetensors"] * 2
    with pytest.raises(ValueError, match="this very cohort"):
        image_branch_weights(first, digest, independent)
    with pytest.raises(ValueError, match="target_size"):
        image_branch_weights(
            first, "f" * 64, _config(init_from_cohort="independent", target_size=32)
        )
    with pytest.raises(ValueError, match="init_from_cohort must be same or independent"):
        _config(init_from_cohort="other")


def test_the_branch_lineage_decides_not_the_heads_cohort(first: Path, tmp_path: Path) -> None:
    """Heads over a frozen branch keep the branch's cohorts; a later run checks those."""
    meta = json.loads((first / "bundle.json").read_text())
    digest = meta["training_data_sha256"]
    own = {"training_data_sha256": digest, "seed": 0, "outer_folds": 2}
    assert meta["training"]["image_branch_cohorts"] == [own]
    frozen = _config(init_from=str(first), init_from_cohort="independent", freeze_image_branch=True)
    assert image_branch_cohorts(frozen, "e" * 64, meta) == [own]
    tuned = dataclasses.replace(frozen, freeze_image_branch=False)
    tuned_cohorts = image_branch_cohorts(tuned, "e" * 64, meta)
    assert tuned_cohorts == [own, {**own, "training_data_sha256": "e" * 64}]
    assert image_branch_cohorts(_config(init_from=str(first)), digest, meta) == [own]
    assert image_branch_cohorts(_config(), "e" * 64, None) == [
        {**own, "training_data_sha256": "e" * 64}
    ]
    # A bundle of heads trained on cohort "e" over that branch: "e" may use it as independent,
    # the branch's own cohort may not, nor may "e" claim it learned from "e" (same).
    heads = {**meta, "training_data_sha256": "e" * 64}
    heads["training"] = {**meta["training"], "image_branch_cohorts": [own]}
    copy = tmp_path / "heads"
    copy.mkdir()
    for item in first.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    (copy / "bundle.json").write_text(json.dumps(heads))
    independent = _config(init_from_cohort="independent")
    assert image_branch_weights(copy, "e" * 64, independent) == [copy / "model-0.safetensors"]
    with pytest.raises(ValueError, match="this very cohort"):
        image_branch_weights(copy, digest, independent)
    with pytest.raises(ValueError, match="other data"):
        image_branch_weights(copy, "e" * 64, _config())
