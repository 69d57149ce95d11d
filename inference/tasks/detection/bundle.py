"""Detection bundles: ``bundle.json`` and the two stages' safetensors weights.

The layout is the resectability bundle's (:mod:`inference.bundle`): one folder, a
``bundle.json`` with the format version, the notice, the model name and version, the training
data and config sha256, metrics and the sha256 of every weight file, which
:func:`load_detection_bundle` verifies before anything runs. Its ``task`` is ``"detection"``;
``stages`` holds ``stage1`` (the pancreas segmenter) and ``stage2`` (the multi-task network),
each with its :class:`~inference.tasks.detection.model.NetConfig` and nnU-Net plan;
``settings`` holds the lesion extraction and scoring (:class:`DetectionSettings`). Weights may
be stored as float16 (``weights_dtype``); loading casts them back to float32.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from torch import nn

from inference.bundle import (
    BUNDLE_FORMAT,
    NOTICE,
    BundleError,
    load_module_weights,
    read_task_meta,
    save_module_weights,
    write_bundle_meta,
)
from inference.tasks.detection.lesions import ExtractionSettings
from inference.tasks.detection.model import MultiTaskNet, NetConfig, build_stage1

__all__ = [
    "CLASSES",
    "TASK",
    "DetectionBundle",
    "DetectionSettings",
    "load_detection_bundle",
    "save_detection_bundle",
    "update_detection_metrics",
]

#: ``bundle.json``'s ``task``.
TASK: Final = "detection"
#: The classification head's two classes, in logit order.
CLASSES: Final = ("non_pdac", "pdac")
_META = "bundle.json"
_ARCHITECTURE = (
    "two-stage: low-resolution DynUNet pancreas ROI (nnU-Net planning rules), then a DynUNet "
    "lesion segmenter with an FPN PDAC classifier over the last three encoder levels"
)


@dataclass(frozen=True)
class DetectionSettings:
    """How the networks' outputs become lesions and a patient score.

    Attributes
    ----------
    extraction
        Lesion candidate extraction (:class:`ExtractionSettings`).
    report_threshold
        Lesions at or above this probability are reported; all candidates are scored.
    classification_weight
        Weight of the classification probability in the combined score
        (:func:`inference.tasks.detection.scoring.combine`).
    """

    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    report_threshold: float = 0.5
    classification_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.report_threshold <= 1.0 or not 0.0 <= self.classification_weight <= 1:
            raise ValueError("report_threshold and classification_weight must lie in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectionSettings:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["extraction"] = ExtractionSettings(**dict(values.get("extraction", {})))
        return cls(**values)


@dataclass(frozen=True)
class DetectionBundle:
    """A verified detection bundle, its networks in eval mode on the CPU."""

    path: Path
    meta: dict[str, Any]
    stage1_config: NetConfig
    stage1: nn.Module
    stage2: MultiTaskNet
    settings: DetectionSettings

    @property
    def version(self) -> str:
        """``name version`` of the model, as recorded."""
        model = self.meta.get("model", {})
        return f"{model.get('name', '?')} {model.get('version', '?')}"


def save_detection_bundle(
    out: Path,
    stage1: tuple[nn.Module, NetConfig],
    stage2: MultiTaskNet,
    settings: DetectionSettings,
    *,
    name: str,
    version: str,
    config_sha256: str,
    data_hash: str,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write a detection bundle into ``out`` (created; files replaced).

    Returns
    -------
    Path
        The ``bundle.json`` path.

    Raises
    ------
    ValueError
        On an unknown ``weights_dtype`` (nothing written).
    OSError
        If the folder cannot be written.
    """
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, got {weights_dtype!r}")
    out.mkdir(parents=True, exist_ok=True)
    network1, config1 = stage1
    stages = {}
    for key, module, config in (("stage1", network1, config1), ("stage2", stage2, stage2.config)):
        entry = save_module_weights(module, out / f"{key}.safetensors", weights_dtype)
        stages[key] = {**entry, "net_config": config.to_dict(), "plan": config.plan().to_dict()}
    meta = {
        "format_version": BUNDLE_FORMAT,
        "task": TASK,
        "model": {"name": name, "version": version, "architecture": _ARCHITECTURE},
        "notice": NOTICE,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": list(CLASSES),
        "config_sha256": config_sha256,
        "training_data_sha256": data_hash,
        "stages": stages,
        "settings": settings.to_dict(),
        "metrics": dict(metrics),
        "training": dict(training or {}),
    }
    return write_bundle_meta(out, meta)


def load_detection_bundle(path: Path) -> DetectionBundle:
    """Read and verify a detection bundle folder (or its ``bundle.json``).

    Raises
    ------
    BundleError
        With a one-line reason: unreadable or foreign metadata, a missing notice, a missing
        or altered weight file, or weights that do not fit the recorded networks.
    """
    root = path.parent if path.name == _META else path
    meta = read_task_meta(root, TASK)
    try:
        stages = meta["stages"]
        config1 = NetConfig.from_dict(dict(stages["stage1"]["net_config"]))
        config2 = NetConfig.from_dict(dict(stages["stage2"]["net_config"]))
        settings = DetectionSettings.from_dict(meta["settings"])
        stage1, stage2 = build_stage1(config1), MultiTaskNet(config2)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"bundle {root}: incomplete metadata ({exc})") from exc
    load_module_weights(root, stages["stage1"], stage1)
    load_module_weights(root, stages["stage2"], stage2)
    return DetectionBundle(root, meta, config1, stage1, stage2, settings)


def update_detection_metrics(root: Path, metrics: Mapping[str, Any]) -> Path:
    """Replace the ``metrics`` of the bundle in ``root`` (only ``bundle.json`` is rewritten).

    Raises
    ------
    BundleError
        If ``root`` holds no detection bundle.
    """
    meta = read_task_meta(root, TASK)
    meta["metrics"] = dict(metrics)
    return write_bundle_meta(root, meta)
