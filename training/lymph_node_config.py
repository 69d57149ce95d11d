"""Configuration of ``pancreas-node train --task lymph-nodes`` (TOML or JSON).

Top-level keys are :class:`LymphNodeConfig` fields; the ``[organs]``, ``[segmenter]``,
``[classifier]`` and ``[patient]`` tables are the fields of
:class:`~inference.tasks.lymph_nodes.model.UNetConfig`,
:class:`~inference.tasks.lymph_nodes.model.SegConfig` (without ``attention``: the run trains
the network with it and, for the ablation, without it),
:class:`~inference.tasks.lymph_nodes.model.NodeClassifierConfig` and
:class:`~inference.tasks.lymph_nodes.patient.PatientNetConfig`. The defaults are CPU-sized;
``bundles/demo/train-config-lymph-nodes.toml`` gives the paper's sizes in its comments.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference.tasks.lymph_nodes.bundle import LymphNodeSettings
from inference.tasks.lymph_nodes.model import NodeClassifierConfig, SegConfig, UNetConfig
from inference.tasks.lymph_nodes.patient import PatientNetConfig
from training._config_file import build_config, merge_table

__all__ = ["LymphNodeConfig", "load_lymph_node_config"]


def _organs() -> UNetConfig:
    return UNetConfig(cube_size=48, cube_mm=240.0, base_filters=8, max_filters=64, max_pools=3)


def _segmenter() -> SegConfig:
    return SegConfig(cube_size=64, cube_mm=128.0, base_filters=8, max_filters=64, max_pools=3,
                     head_channels=8)  # fmt: skip


def _classifier() -> NodeClassifierConfig:
    return NodeClassifierConfig(crop_size=16, dropout=0.0)


def _patient() -> PatientNetConfig:
    return PatientNetConfig(patch_size=32, patch_mm=96.0, channels=(8, 16, 32), codewords=4)


@dataclass(frozen=True)
class LymphNodeConfig:
    """Everything the lymph-node training can be told (defaults: CPU-sized).

    Training order (the paper's, :mod:`training.lymph_nodes`): the organ & vessel segmenter
    for ``organ_epochs`` (Dice + cross-entropy on the ten structures); the node segmenter for
    ``seg_epochs`` (Tversky with ``tversky_alpha`` / ``tversky_beta`` plus cross-entropy,
    equal weights) on ``seg_patches`` patches of ``patch_size`` voxels per patient and epoch
    cut from its cube (a third, ``foreground_fraction``, holding a node; with attention the
    negative patches must hold attention > 0: informative negative selection); the same
    network without attention for the ablation (same seed and epochs) when ``ablation``;
    the node classifier for ``classifier_epochs`` (cross-entropy on crops around the truth
    nodes, its encoder initialised from the segmenter); the patient model for
    ``patient_epochs`` (cross-entropy on the N status; the tumor branch dropped for a patient
    with probability ``tumor_dropout`` so that the node branch alone means something).

    Adam with cosine annealing in every phase (the paper: SGD with Nesterov momentum 0.95,
    lr 5e-4, weight decay 1e-4 for the classifiers; Adam converges in the few CPU epochs).
    The node segmenter's cube is centred on the truth structures' bounding box, shifted by
    up to ``roi_jitter_mm`` per axis (drawn once per patient), as the analysis centres it on
    the predicted ones. ``patch_size`` 0: the whole cube.

    With ``predicted_attention`` the node segmenter trains on the attention of the trained
    organ segmenter's structures (the paper's way, and what the analysis gives it), else on
    the truth structures'. With ``[classifier] not_node_class`` the classifier also learns
    *not a node* from up to ``false_positives_per_case`` of the segmenter's false positives
    per training row, and the node threshold is chosen on the validation rows as the lowest
    with at most ``target_fp_per_patient`` false positives per patient.
    """

    organs: UNetConfig = field(default_factory=_organs)
    segmenter: SegConfig = field(default_factory=_segmenter)
    classifier: NodeClassifierConfig = field(default_factory=_classifier)
    patient: PatientNetConfig = field(default_factory=_patient)
    organ_epochs: int = 30
    seg_epochs: int = 40
    classifier_epochs: int = 20
    patient_epochs: int = 20
    organ_lr: float = 2e-3
    seg_lr: float = 2e-3
    classifier_lr: float = 5e-4
    patient_lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 2
    patch_size: int = 32
    seg_patches: int = 2
    foreground_fraction: float = 1.0 / 3.0
    tversky_alpha: float = 0.5
    tversky_beta: float = 1.5
    tumor_dropout: float = 0.2
    roi_jitter_mm: float = 8.0
    augment: bool = True
    ablation: bool = True
    outer_folds: int = 5
    folds_to_run: int = 1
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    workers: int = 1
    weights_dtype: str = "float16"
    seg_threshold: float = 0.5
    min_voxels: int = 3
    max_nodes: int = 30
    suspicious_threshold: float = 0.5
    predicted_attention: bool = True
    false_positives_per_case: int = 40
    target_fp_per_patient: float = 2.0

    def __post_init__(self) -> None:
        epochs = (self.organ_epochs, self.seg_epochs, self.classifier_epochs,
                  self.patient_epochs)  # fmt: skip
        if min(epochs) < 1:
            raise ValueError("every phase needs at least one epoch")
        lrs = (self.organ_lr, self.seg_lr, self.classifier_lr, self.patient_lr)
        if min(lrs) <= 0 or self.batch_size < 1 or self.seg_patches < 1:
            raise ValueError("learning rates must be positive, batch_size and seg_patches >= 1")
        if not self.segmenter.attention:
            raise ValueError("[segmenter] has no attention key: the run trains both variants")
        self._check_patch()
        if min(self.tversky_alpha, self.tversky_beta) < 0 or not 0 <= self.tumor_dropout < 1:
            raise ValueError("Tversky weights must be >= 0 and tumor_dropout in [0, 1)")
        if not 0.0 <= self.foreground_fraction <= 1.0 or self.roi_jitter_mm < 0:
            raise ValueError("foreground_fraction must lie in [0, 1] and roi_jitter_mm >= 0")
        if not 1 <= self.folds_to_run <= self.outer_folds or self.outer_folds < 2:
            raise ValueError("need outer_folds >= 2 and 1 <= folds_to_run <= outer_folds")
        if self.device not in ("auto", "cpu", "cuda") or self.workers < 1:
            raise ValueError("device must be auto, cpu or cuda and workers >= 1")
        if self.weights_dtype not in ("float32", "float16"):
            raise ValueError("weights_dtype must be float32 or float16")
        if self.false_positives_per_case < 0 or self.target_fp_per_patient < 0:
            raise ValueError("false_positives_per_case and target_fp_per_patient must be >= 0")
        self.settings()  # refuses bad thresholds now

    def _check_patch(self) -> None:
        if self.patch_size == 0:
            return
        divisor = self.segmenter.plan().divisor()
        if self.patch_size > self.segmenter.cube_size or any(self.patch_size % d for d in divisor):
            raise ValueError(
                f"patch_size must be 0 or a multiple of {divisor} no larger than the cube"
            )

    @property
    def patch(self) -> int:
        """Voxels per side of a node-segmenter training patch."""
        return self.patch_size or self.segmenter.cube_size

    def settings(
        self, patient_threshold: float = 0.5, node_threshold: float = 0.0
    ) -> LymphNodeSettings:
        """The thresholds the bundle records (patient and node ones: chosen on validation)."""
        return LymphNodeSettings(self.seg_threshold, self.min_voxels, self.max_nodes,
                                 self.suspicious_threshold, patient_threshold,
                                 node_threshold)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["patient"] = self.patient.to_dict()
        return data

    def sha256(self) -> str:
        """Hex sha256 of the canonical JSON form (the bundle's ``config_sha256``)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_TABLES: dict[str, tuple[Any, Any]] = {
    "organs": (_organs, UNetConfig),
    "segmenter": (_segmenter, SegConfig),
    "classifier": (_classifier, NodeClassifierConfig),
    "patient": (_patient, PatientNetConfig),
}


def _value(key: str, value: Any) -> Any:
    if key not in _TABLES:
        return value
    default, kind = _TABLES[key]
    # The run trains the segmenter with attention and, for the ablation, without: no key for it.
    merged = merge_table(key, value, default().to_dict(), forbidden=frozenset({"attention"}))
    return kind.from_dict(merged)


def load_lymph_node_config(path: Path | None, **overrides: Any) -> LymphNodeConfig:
    """Read a TOML or JSON lymph-node config; ``overrides`` (not ``None``) win.

    Raises
    ------
    ValueError
        On unknown keys, wrong types or an unparsable file.
    OSError
        If the file cannot be read.
    """
    return build_config(path, overrides, LymphNodeConfig, "lymph-node", _value)
