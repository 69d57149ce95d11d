"""Start the image branch from MONAI's published Swin-UNETR weights (``init_from = "x.pt"``).

METHOD.md's paper starts its Swin-UNETR from BTCV-pretrained weights. MONAI publishes two
kinds of checkpoint this module reads, by their key layout (``torch.load(...,
weights_only=True)``: a file holding a ``state_dict`` mapping, or the mapping itself):

``monai_swin_unetr``
    A whole :class:`monai.networks.nets.SwinUNETR` (the BTCV-finetuned model of MONAI's
    research contributions): keys ``swinViT.patch_embed.proj.weight``,
    ``swinViT.layers1.0.blocks.0.attn.qkv.weight``, ``encoder1.layer.conv1.conv.weight``, ...,
    ``out.conv.conv.weight``, possibly prefixed ``module.`` (saved from ``DataParallel``).
    Each maps onto ``swin.<key>`` of :class:`inference.tasks.resectability.model.
    ResectabilityNet`, whose ``swin`` is that same MONAI class.
``monai_swinvit_ssl``
    The self-supervised encoder ``model_swinvit.pt``: keys ``module.patch_embed.proj.weight``,
    ``module.layers1.0.blocks.0.mlp.fc1.weight``, ``module.layers1.0.downsample.reduction.
    weight``, ... and the pretraining heads. As MONAI's ``SwinUNETR.load_from`` does, the
    encoder keys map onto ``swin.swinViT.<key>`` with ``mlp.fc1``/``mlp.fc2`` renamed to
    MONAI's ``mlp.linear1``/``mlp.linear2``; the pretraining heads have no counterpart.

Every tensor whose mapped name exists and whose shape matches is copied. The output head may
differ (BTCV's 14 classes against our 16 labels): it is skipped and listed. Any other shape
mismatch means another network (feature size, input channels, window size) and is refused
with a one-line reason, as is an unknown layout or a file that copies nothing. What was
copied and skipped, with the file's sha256, goes into ``bundle.json``
(``training.init_from_monai``). The clinical MLP, the fusion head and the bottleneck
projection always keep their seeded initialisation, as do the decoder and segmentation head
of an encoder-only checkpoint.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch

from inference.bundle import sha256_file
from inference.tasks.resectability.model import ResectabilityNet

__all__ = [
    "MONAI_SUFFIXES",
    "MonaiCheckpoint",
    "MonaiLoad",
    "is_monai_checkpoint",
    "load_monai_weights",
    "read_monai_checkpoint",
]

#: File suffixes that make ``init_from`` a MONAI checkpoint instead of a bundle folder.
MONAI_SUFFIXES: Final = (".pt", ".pth")

_SWIN_UNETR_PARTS: Final = (
    "swinViT.", "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10.",
    "decoder1.", "decoder2.", "decoder3.", "decoder4.", "decoder5.", "out.",
)  # fmt: skip
_SSL_PARTS: Final = ("patch_embed.", "layers1.", "layers2.", "layers3.", "layers4.")
_HEAD: Final = "swin.out."
_PATCH_EMBED: Final = "swin.swinViT.patch_embed.proj.weight"


def is_monai_checkpoint(init_from: str | Path) -> bool:
    """Whether an ``init_from`` value names a MONAI checkpoint file (by its suffix)."""
    return Path(init_from).suffix.lower() in MONAI_SUFFIXES


@dataclass(frozen=True)
class MonaiCheckpoint:
    """A MONAI checkpoint's tensors under this project's state-dict names."""

    path: Path
    sha256: str
    layout: str
    tensors: Mapping[str, torch.Tensor]
    """Project name (``swin.…``) -> tensor."""
    unmapped: tuple[str, ...]
    """Source keys with no counterpart in the project's network (pretraining heads, ...)."""


@dataclass(frozen=True)
class MonaiLoad:
    """What :func:`load_monai_weights` copied into a network."""

    copied: int
    skipped: tuple[str, ...]
    """Source tensors not copied, each ``name (reason)``."""
    left: tuple[str, ...]
    """Image-branch modules (``swin.decoder1``, ...) left (partly) at their initialisation."""

    def provenance(self, checkpoint: MonaiCheckpoint) -> dict[str, Any]:
        """The ``bundle.json`` record (``training.init_from_monai``)."""
        return {
            "file": checkpoint.path.name,
            "sha256": checkpoint.sha256,
            "layout": checkpoint.layout,
            "tensors_copied": self.copied,
            "tensors_skipped": list(self.skipped),
            "modules_not_initialised": list(self.left),
        }


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensor mapping (``state_dict`` entry or the whole file)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = f"init_from {path.name}: cannot read it as a torch file: {reason}"
        raise ValueError(message) from exc
    if isinstance(saved, Mapping) and isinstance(saved.get("state_dict"), Mapping):
        saved = saved["state_dict"]
    if not isinstance(saved, Mapping) or not saved:
        raise ValueError(f"init_from {path.name}: no state_dict of tensors in it")
    tensors = {str(k): v for k, v in saved.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"init_from {path.name}: no state_dict of tensors in it")
    return tensors


def _ssl_name(key: str) -> str:
    return "swin.swinViT." + key.replace(".mlp.fc1.", ".mlp.linear1.").replace(
        ".mlp.fc2.", ".mlp.linear2."
    )


def read_monai_checkpoint(path: Path) -> MonaiCheckpoint:
    """Read a MONAI Swin-UNETR checkpoint and map its keys (layouts: module docstring).

    Raises
    ------
    ValueError
        With a one-line reason when the file cannot be read or its layout is unknown.
    """
    if not path.is_file():
        raise ValueError(f"init_from {path}: no such file")
    state = _state_dict(path)
    keys = {k.removeprefix("module."): k for k in state}
    tensors: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    if any(k.startswith("swinViT.") for k in keys):
        layout = "monai_swin_unetr"
        for key, source in keys.items():
            if key.startswith(_SWIN_UNETR_PARTS):
                tensors["swin." + key] = state[source]
            else:
                unmapped.append(source)
    elif any(k.startswith("patch_embed.") for k in keys) and any(
        k.startswith("layers1.") for k in keys
    ):
        layout = "monai_swinvit_ssl"
        for key, source in keys.items():
            if key.startswith(_SSL_PARTS):
                tensors[_ssl_name(key)] = state[source]
            else:
                unmapped.append(source)
    else:
        first = ", ".join(sorted(state)[:3])
        raise ValueError(
            f"init_from {path.name}: unknown checkpoint layout (keys {first}, ...); expected a "
            "MONAI SwinUNETR state_dict (swinViT.*) or MONAI's self-supervised Swin ViT "
            "(module.patch_embed.*, module.layers1.*)"
        )
    return MonaiCheckpoint(path, sha256_file(path), layout, tensors, tuple(sorted(unmapped)))


def _refusal(checkpoint: MonaiCheckpoint, name: str, model: ResectabilityNet) -> str:
    """The one-line reason a tensor of another shape than the network's refuses the file."""
    own = model.state_dict()
    theirs = checkpoint.tensors.get(_PATCH_EMBED)
    if theirs is not None and theirs.shape != own[_PATCH_EMBED].shape:
        return (
            f"init_from {checkpoint.path.name}: its Swin-UNETR has feature size "
            f"{theirs.shape[0]} and {theirs.shape[1]} input channel(s), this network "
            f"{model.config.feature_size} and 1"
        )
    got, want = tuple(checkpoint.tensors[name].shape), tuple(own[name].shape)
    return (
        f"init_from {checkpoint.path.name}: {name} has shape {got}, this network's {want} "
        "(another feature size, input channels or window size)"
    )


def load_monai_weights(model: ResectabilityNet, checkpoint: MonaiCheckpoint | Path) -> MonaiLoad:
    """Copy a MONAI checkpoint's matching tensors into ``model``'s Swin-UNETR.

    Returns
    -------
    MonaiLoad
        How many tensors were copied, which were skipped and which modules were not reached.

    Raises
    ------
    ValueError
        If ``model`` has no image branch, a tensor other than the output head's has another
        shape (another network), or nothing would be copied.
    """
    if model.swin is None:
        raise ValueError("this model has no image branch to start from MONAI weights")
    if isinstance(checkpoint, Path):
        checkpoint = read_monai_checkpoint(checkpoint)
    own = model.state_dict()
    copy: list[str] = []
    skipped = [f"{k} (no counterpart)" for k in checkpoint.unmapped]
    for name, tensor in sorted(checkpoint.tensors.items()):
        if name not in own:
            skipped.append(f"{name} (not in this network)")
        elif tensor.shape == own[name].shape:
            copy.append(name)
        elif name.startswith(_HEAD):
            got, want = tuple(tensor.shape), tuple(own[name].shape)
            skipped.append(f"{name} (output head {got}, this network's {want})")
        else:
            raise ValueError(_refusal(checkpoint, name, model))
    if not copy:
        raise ValueError(f"init_from {checkpoint.path.name}: no tensor fits this network")
    with torch.no_grad():
        for name in copy:
            own[name].copy_(checkpoint.tensors[name].to(own[name].dtype))
    copied = set(copy)
    left = sorted(
        {".".join(k.split(".")[:2]) for k in own if k.startswith("swin.") and k not in copied}
    )
    return MonaiLoad(len(copy), tuple(skipped), tuple(left))
