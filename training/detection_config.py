"""Configuration of ``pancreas-node train --task detection`` (TOML or JSON).

Top-level keys are :class:`DetectionConfig` fields; ``[stage1]`` and ``[stage2]`` tables are
:class:`inference.tasks.detection.model.NetConfig` fields (cube and network size). The defaults
are CPU-sized; a GPU run scales up by config alone (``bundles/demo/train-config-detection.toml``
names the paper-sized values in its comments).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference.tasks.detection.bundle import DetectionSettings
from inference.tasks.detection.lesions import ExtractionSettings
from inference.tasks.detection.model import NetConfig
from training._config_file import build_config, merge_table

__all__ = ["DetectionConfig", "load_detection_config"]


def _stage1() -> NetConfig:
    return NetConfig(cube_size=32, cube_mm=256.0, base_filters=8, max_filters=64, max_pools=3)


def _stage2() -> NetConfig:
    return NetConfig(cube_size=64, cube_mm=128.0, base_filters=8, max_filters=64, max_pools=4)


@dataclass(frozen=True)
class DetectionConfig:
    """Everything the detection training can be told (defaults: CPU-sized).

    Training order (Yu et al.): stage 1 for ``stage1_epochs`` (Dice + cross-entropy on the
    pancreas); stage 2's segmentation for ``seg_epochs`` (Dice + cross-entropy on the lesion,
    classification head not trained), its classification head for ``cls_epochs`` (weighted
    cross-entropy ``class_weights``, non-PDAC : PDAC = 1 : 3, encoder frozen), then the whole
    network end to end for ``finetune_epochs`` at ``finetune_lr`` (sum of both losses).
    Adam with cosine annealing within each phase. Stage 2 trains on cubes centred on the
    truth pancreas, shifted by up to ``roi_jitter_mm`` per axis (drawn once per patient) so it
    meets the stage-1 centres it will see; evaluation uses stage 1's centres.

    The outer folds are :func:`training._splits.nested_splits` stratified by PDAC; each fold
    trains on its inner training rows and is evaluated on its outer test rows (its validation
    rows are scored and reported, nothing is selected on them). The first fold's model is the
    bundle.
    """

    stage1: NetConfig = field(default_factory=_stage1)
    stage2: NetConfig = field(default_factory=_stage2)
    stage1_epochs: int = 20
    seg_epochs: int = 30
    cls_epochs: int = 10
    finetune_epochs: int = 10
    stage1_lr: float = 1e-3
    stage2_lr: float = 1e-3
    finetune_lr: float = 2e-4
    weight_decay: float = 1e-5
    batch_size: int = 2
    class_weights: tuple[float, float] = (1.0, 3.0)
    roi_jitter_mm: float = 8.0
    augment: bool = True
    outer_folds: int = 5
    folds_to_run: int = 1
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    workers: int = 1
    weights_dtype: str = "float16"
    candidate_threshold: float = 0.1
    extent_fraction: float = 0.4
    max_lesions: int = 5
    min_voxels: int = 2
    report_threshold: float = 0.5
    classification_weight: float = 0.5

    def __post_init__(self) -> None:
        epochs = (self.stage1_epochs, self.seg_epochs, self.cls_epochs, self.finetune_epochs)
        if min(epochs) < 0 or self.stage1_epochs < 1 or self.seg_epochs < 1:
            raise ValueError("epochs must be >= 0, stage1_epochs and seg_epochs >= 1")
        if min(self.stage1_lr, self.stage2_lr, self.finetune_lr) <= 0 or self.batch_size < 1:
            raise ValueError("learning rates must be positive and batch_size >= 1")
        if len(self.class_weights) != 2 or min(self.class_weights) <= 0:
            raise ValueError("class_weights needs two positive weights (non-PDAC, PDAC)")
        if not 1 <= self.folds_to_run <= self.outer_folds or self.outer_folds < 2:
            raise ValueError("need outer_folds >= 2 and 1 <= folds_to_run <= outer_folds")
        if self.device not in ("auto", "cpu", "cuda") or self.workers < 1:
            raise ValueError("device must be auto, cpu or cuda and workers >= 1")
        if self.weights_dtype not in ("float32", "float16") or self.roi_jitter_mm < 0:
            raise ValueError("weights_dtype must be float32 or float16, roi_jitter_mm >= 0")
        self.settings()  # refuses bad extraction and scoring values now

    def settings(self) -> DetectionSettings:
        """The lesion extraction and scoring the bundle records."""
        extraction = ExtractionSettings(
            self.candidate_threshold, self.extent_fraction, self.max_lesions, self.min_voxels
        )
        return DetectionSettings(extraction, self.report_threshold, self.classification_weight)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def sha256(self) -> str:
        """Hex sha256 of the canonical JSON form (the bundle's ``config_sha256``)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _value(key: str, value: Any) -> Any:
    if key in ("stage1", "stage2"):
        defaults = (_stage1() if key == "stage1" else _stage2()).to_dict()
        return NetConfig.from_dict(merge_table(key, value, defaults))
    return tuple(value) if isinstance(value, list) else value


def load_detection_config(path: Path | None, **overrides: Any) -> DetectionConfig:
    """Read a TOML or JSON detection config; ``overrides`` (not ``None``) win.

    Raises
    ------
    ValueError
        On unknown keys, wrong types or an unparsable file.
    OSError
        If the file cannot be read.
    """
    return build_config(path, overrides, DetectionConfig, "detection", _value)
