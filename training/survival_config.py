"""Configuration of ``pancreas-node train --task survival`` (TOML or JSON).

Top-level keys are :class:`SurvivalConfig` fields; the ``[roi]``, ``[radiomics]`` and
``[densenet]`` tables are the fields of
:class:`~inference.tasks.survival.roi.RoiConfig`,
:class:`~inference.tasks.survival.radiomics.RadiomicsConfig` and
:class:`~inference.tasks.survival.model.DenseNetConfig`. The defaults are CPU-sized; the
paper's values are given beside each.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference.tasks.survival import DenseNetConfig, RadiomicsConfig, RoiConfig
from training._config_file import build_config, merge_table

__all__ = ["SurvivalConfig", "load_survival_config"]


@dataclass(frozen=True)
class SurvivalConfig:
    """Everything the survival training can be told (defaults: CPU-sized).

    The split is the paper's: ``test_fraction`` (0.3) of the patients, stratified by the
    event, are held out for the report's test table; everything is fitted on the rest.
    Radiomics: standardise, PCA keeping ``pca_variance`` (0.8) of the variance, LASSO-Cox
    with the penalty chosen by ``lasso_folds``-fold (10) cross-validated concordance, then a
    random survival forest of ``rsf_trees`` (345) trees whose minimum leaf size is chosen
    among ``rsf_leaf_sizes`` by out-of-bag concordance (the paper's ``tune.nodesize``).
    DenseNet: ``crossfit_folds`` members, each trained on the other folds for
    ``epochs`` (the paper: 100 at lr 1e-4, Adam, cross-entropy) with random 90-degree
    rotations, flips and Gaussian noise; the node averages the members, and their
    out-of-fold predictions are what the fusion is fitted on (the radiomics model is
    cross-fitted the same way), so the fusion never sees a prediction on a patient its base
    model was fitted on.
    """

    roi: RoiConfig = field(default_factory=RoiConfig)
    radiomics: RadiomicsConfig = field(default_factory=RadiomicsConfig)
    densenet: DenseNetConfig = field(default_factory=DenseNetConfig)
    test_fraction: float = 0.3
    pca_variance: float = 0.8
    lasso_folds: int = 10
    rsf_trees: int = 345
    rsf_leaf_sizes: tuple[int, ...] = (3, 5, 10, 15, 20)
    crossfit_folds: int = 3
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 8
    noise_std: float = 0.05
    risk_horizon_years: int = 3
    risk_cutoff: float = 0.8
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    workers: int = 1
    weights_dtype: str = "float16"

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0 or not 0.0 < self.pca_variance <= 1.0:
            raise ValueError("test_fraction must lie in (0, 1) and pca_variance in (0, 1]")
        if self.lasso_folds < 2 or self.crossfit_folds < 2 or self.rsf_trees < 1:
            raise ValueError("need lasso_folds >= 2, crossfit_folds >= 2 and rsf_trees >= 1")
        if not self.rsf_leaf_sizes or min(self.rsf_leaf_sizes) < 1:
            raise ValueError("rsf_leaf_sizes must be positive")
        if self.epochs < 1 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError("need epochs >= 1, lr > 0 and batch_size >= 1")
        if self.risk_horizon_years not in (1, 2, 3) or not 0.0 < self.risk_cutoff < 1.0:
            raise ValueError("the risk horizon must be 1-3 years and the cut-off in (0, 1)")
        if self.device not in ("auto", "cpu", "cuda") or self.workers < 1:
            raise ValueError("device must be auto, cpu or cuda and workers >= 1")
        if self.weights_dtype not in ("float32", "float16"):
            raise ValueError("weights_dtype must be float32 or float16")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["roi"] = self.roi.to_dict()
        data["radiomics"] = self.radiomics.to_dict()
        data["densenet"] = self.densenet.to_dict()
        return data

    def sha256(self) -> str:
        """Hex sha256 of the canonical JSON form (the bundle's ``config_sha256``)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_TABLES: dict[str, Any] = {
    "roi": RoiConfig,
    "radiomics": RadiomicsConfig,
    "densenet": DenseNetConfig,
}


def _value(key: str, value: Any) -> Any:
    if key == "rsf_leaf_sizes":
        return tuple(int(v) for v in value)
    if key not in _TABLES:
        return value
    kind = _TABLES[key]
    return kind.from_dict(merge_table(key, value, kind().to_dict()))


def load_survival_config(path: Path | None, **overrides: Any) -> SurvivalConfig:
    """Read a TOML or JSON survival config; ``overrides`` (not ``None``) win.

    Raises
    ------
    ValueError
        On unknown keys, wrong types or an unparsable file.
    OSError
        If the file cannot be read.
    """
    return build_config(path, overrides, SurvivalConfig, "survival", _value)
