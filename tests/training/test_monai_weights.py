"""``init_from`` a MONAI Swin-UNETR checkpoint: both published key layouts land in our network.

Nothing is downloaded: MONAI's ``SwinUNETR`` is built with the project's sizes and its
``state_dict`` saved in each layout (the BTCV model with 14 output classes, with and without
``DataParallel``'s ``module.`` prefix; the self-supervised encoder as ``model_swinvit.pt``
names its keys).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from inference.bundle import load_bundle
from inference.tasks.resectability._model_swin import build_swin_unetr
from inference.tasks.resectability.model import ModelConfig, ResectabilityNet
from tests.training._training_arrays import tiny_arrays, tiny_config, train_in_memory
from training._init_from import load_image_branch, monai_init
from training._monai_weights import load_monai_weights, read_monai_checkpoint

torch.set_num_threads(2)

BTCV_CLASSES = 14


def _btcv(feature_size: int = 12, seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = build_swin_unetr(feature_size, BTCV_CLASSES, 0.0, window_size=7)
    return {k: v.clone() for k, v in net.state_dict().items()}


def _ssl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder in ``model_swinvit.pt``'s names, with its pretraining heads."""
    out = {
        "module."
        + k.removeprefix("swinViT.").replace(".linear1.", ".fc1.").replace(".linear2.", ".fc2."): v
        for k, v in state.items()
        if k.startswith("swinViT.")
    }
    out["module.rotation_head.weight"] = torch.zeros(4, 8)
    out["module.contrastive_head.weight"] = torch.zeros(8, 8)
    return out


def _model(feature_size: int = 12) -> ResectabilityNet:
    torch.manual_seed(0)
    return ResectabilityNet(ModelConfig(clinical_features=3, feature_size=feature_size))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_a_btcv_swin_unetr_lands_in_the_swin_unetr_but_its_head(
    tmp_path: Path, prefix: str
) -> None:
    state = _btcv()
    path = tmp_path / "swin_unetr_btcv.pt"
    torch.save({"state_dict": {prefix + k: v for k, v in state.items()}, "epoch": 5000}, path)
    checkpoint = read_monai_checkpoint(path)
    assert checkpoint.layout == "monai_swin_unetr"
    assert checkpoint.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = load_monai_weights(model, checkpoint)
    own = model.state_dict()
    for key, value in state.items():
        if key.startswith("out."):
            assert torch.equal(own["swin." + key], before["swin." + key])
        else:
            assert torch.equal(own["swin." + key], value), key
    assert loaded.copied == len(state) - 2
    assert sorted(s.split(" ")[0] for s in loaded.skipped) == [
        "swin.out.conv.conv.bias", "swin.out.conv.conv.weight",
    ]  # fmt: skip
    assert "output head (14" in loaded.skipped[0] and loaded.left == ("swin.out",)
    outside = [k for k in own if not k.startswith("swin.")]
    assert outside and all(torch.equal(own[k], before[k]) for k in outside)


def test_the_self_supervised_encoder_lands_in_the_swin_vit(tmp_path: Path) -> None:
    state = _btcv(seed=2)
    path = tmp_path / "model_swinvit.pt"
    torch.save({"state_dict": _ssl(state)}, path)
    model = _model()
    decoder = model.state_dict()["swin.decoder1.transp_conv.conv.weight"].clone()
    copied = load_image_branch(model, path)  # the training loop's entry point
    own = model.state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("swinViT.")}
    assert copied == len(encoder)
    assert all(torch.equal(own["swin." + k], v) for k, v in encoder.items())
    assert any(".mlp.linear1." in k for k in encoder)  # fc1 -> linear1 was mapped
    assert torch.equal(own["swin.decoder1.transp_conv.conv.weight"], decoder)
    loaded = load_monai_weights(_model(), read_monai_checkpoint(path))
    assert loaded.skipped == (
        "module.contrastive_head.weight (no counterpart)",
        "module.rotation_head.weight (no counterpart)",
    )
    assert "swin.decoder1" in loaded.left and "swin.encoder1" in loaded.left


def test_another_feature_size_or_an_unknown_layout_is_refused(tmp_path: Path) -> None:
    wide = tmp_path / "swin_unetr_f24.pt"
    torch.save({"state_dict": _btcv(24)}, wide)
    with pytest.raises(ValueError, match=r"size 24 and 1 input channel\(s\), this network 12"):
        load_monai_weights(_model(), read_monai_checkpoint(wide))
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"resnet\.pth: unknown checkpoint layout"):
        read_monai_checkpoint(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pt: cannot read it"):
        read_monai_checkpoint(junk)
    with pytest.raises(ValueError, match=r"f24\.pt: its Swin-UNETR has feature size 24"):
        monai_init(tiny_config(init_from=str(wide)))
    with pytest.raises(ValueError, match="freeze_image_branch needs a bundle"):
        tiny_config(init_from=str(wide), freeze_image_branch=True)


@pytest.mark.slow
def test_a_run_starts_from_monai_weights_and_records_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model_swinvit.pt"
    state = _btcv(seed=3)
    torch.save({"state_dict": _ssl(state)}, path)
    config = tiny_config(init_from=str(path), lr=(1e-12,))
    run = train_in_memory(monkeypatch, tiny_arrays(), config, tmp_path / "out")
    meta = json.loads(run.bundle_json.read_text(encoding="utf-8"))
    record = meta["training"]["init_from_monai"]
    assert record["file"] == "model_swinvit.pt" and record["layout"] == "monai_swinvit_ssl"
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["tensors_copied"] > 0 and len(record["tensors_skipped"]) == 2
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "- pretrained weights: `model_swinvit.pt` (monai_swinvit_ssl" in report
    # At a learning rate of 1e-12 the trained encoder is still the checkpoint's.
    trained = load_bundle(run.bundle_json.parent).members[0].model.state_dict()
    key = "swin.swinViT.layers1.0.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(trained[key], state[key.removeprefix("swin.")])
