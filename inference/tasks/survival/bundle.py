"""The survival bundle: what ``pancreas-node train --task survival`` writes and the node loads.

A folder with ``bundle.json`` (format 1.0, task ``survival``, the notice), one safetensors file
per 3D-DenseNet fold member and one safetensors file of arrays: the radiomics projection (PCA
and the LASSO's selection), the random survival forest as arrays
(:class:`~inference.tasks.survival.forest.SurvivalForest`), and the clinical and fusion
logistic regressions. Every file's sha256 is recorded and checked on load; nothing is
unpickled. ``bundle.json`` also holds the ROI and PyRadiomics settings, the feature names,
the risk stratification (cut-off 0.8 on the 3-year fusion probability, the paper's), the
Kaplan-Meier curves of the training cohort's risk groups and the training report's metrics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays

from inference.bundle import (
    BUNDLE_FORMAT,
    NOTICE,
    BundleError,
    load_module_weights,
    read_task_meta,
    save_module_weights,
    sha256_file,
    verified_weight_file,
    write_bundle_meta,
)
from inference.tasks.survival.forest import SurvivalForest
from inference.tasks.survival.linear import HorizonLogistic, RadiomicsProjection
from inference.tasks.survival.model import DenseNetConfig, DualInputDenseNet
from inference.tasks.survival.radiomics import RadiomicsConfig
from inference.tasks.survival.roi import RoiConfig
from inference.tasks.survival.staging import CLINICAL_INPUTS
from pancreas_contracts.prognosis import HORIZONS_MONTHS, KaplanMeierCurve

__all__ = [
    "FUSION_INPUTS",
    "TASK",
    "RiskRule",
    "SurvivalBundle",
    "SurvivalParts",
    "load_survival_bundle",
    "save_survival_bundle",
]

TASK: Final = "survival"
#: The fusion's inputs at each horizon: the unimodal models' logits, then the clinical inputs.
FUSION_INPUTS: Final = ("radiomics", "densenet", *CLINICAL_INPUTS)
_META: Final = "bundle.json"
_ARRAYS: Final = "arrays.safetensors"
_ARCHITECTURE: Final = (
    "PyRadiomics 1037 -> PCA 80 % -> LASSO -> random survival forest; dual-input 3D-DenseNet "
    "(6/12/24/16); clinical logistic regression; logistic-regression fusion per horizon"
)


@dataclass(frozen=True)
class RiskRule:
    """The paper's stratification: high risk when the fusion probability reaches the cut-off."""

    horizon_years: int = 3
    cutoff: float = 0.8

    def __post_init__(self) -> None:
        if self.horizon_years not in (1, 2, 3) or not 0.0 < self.cutoff < 1.0:
            raise ValueError("the risk rule needs a horizon of 1-3 years and a cut-off in (0, 1)")


@dataclass(frozen=True, eq=False)
class SurvivalParts:
    """Everything a survival bundle holds, fitted."""

    roi: RoiConfig
    radiomics: RadiomicsConfig
    projection: RadiomicsProjection
    forest: SurvivalForest
    densenet_config: DenseNetConfig
    densenets: tuple[DualInputDenseNet, ...]
    clinical: HorizonLogistic
    fusion: HorizonLogistic
    risk: RiskRule
    reference_curves: tuple[KaplanMeierCurve, ...]

    def __post_init__(self) -> None:
        if not self.densenets:
            raise ValueError("a survival bundle needs at least one DenseNet member")
        if self.clinical.inputs != CLINICAL_INPUTS or self.fusion.inputs != FUSION_INPUTS:
            raise ValueError("the clinical and fusion models have other inputs than the node's")
        if not all(np.isclose(self.forest.months, m).any() for m in HORIZONS_MONTHS):
            raise ValueError("the forest's month grid lacks a horizon")


@dataclass(frozen=True, eq=False)
class SurvivalBundle:
    """A loaded, verified survival bundle."""

    path: Path
    meta: Mapping[str, Any]
    parts: SurvivalParts

    @property
    def name_version(self) -> str:
        """``name version`` of the model."""
        model = self.meta.get("model", {})
        return f"{model.get('name', 'survival')} {model.get('version', '0')}"


def _arrays(parts: SurvivalParts, weights_dtype: str) -> dict[str, npt.NDArray[Any]]:
    arrays: dict[str, npt.NDArray[Any]] = {
        **parts.projection.arrays(),
        **parts.forest.arrays(),
        **parts.clinical.arrays("clinical"),
        **parts.fusion.arrays("fusion"),
    }
    if weights_dtype == "float16":
        # Leaf survival needs three decimals; everything else keeps its precision.
        arrays["forest.survival"] = arrays["forest.survival"].astype(np.float16)
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def _curve_dict(curve: KaplanMeierCurve) -> dict[str, Any]:
    return curve.model_dump(mode="json")


def save_survival_bundle(
    out: Path,
    parts: SurvivalParts,
    *,
    name: str,
    version: str,
    config_sha256: str,
    data_hash: str,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write a survival bundle into ``out`` (created; files replaced); returns ``bundle.json``.

    Raises
    ------
    ValueError
        On an unknown ``weights_dtype`` (nothing written).
    """
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, got {weights_dtype!r}")
    out.mkdir(parents=True, exist_ok=True)
    members = [
        save_module_weights(net, out / f"densenet-{i}.safetensors", weights_dtype)
        for i, net in enumerate(parts.densenets)
    ]
    partial = out / (_ARRAYS + ".partial")
    save_arrays(_arrays(parts, weights_dtype), str(partial))
    partial.replace(out / _ARRAYS)
    meta = {
        "format_version": BUNDLE_FORMAT,
        "task": TASK,
        "model": {"name": name, "version": version, "architecture": _ARCHITECTURE},
        "notice": NOTICE,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "horizons_months": list(HORIZONS_MONTHS),
        "risk": {"horizon_years": parts.risk.horizon_years, "cutoff": parts.risk.cutoff},
        "roi": parts.roi.to_dict(),
        "radiomics": {
            **parts.radiomics.to_dict(),
            "features": list(parts.projection.feature_names),
        },
        "densenet": {"net_config": parts.densenet_config.to_dict(), "members": members},
        "arrays": {"weights": _ARRAYS, "sha256": sha256_file(out / _ARRAYS)},
        "clinical_inputs": list(CLINICAL_INPUTS),
        "fusion_inputs": list(FUSION_INPUTS),
        "reference_curves": [_curve_dict(c) for c in parts.reference_curves],
        "config_sha256": config_sha256,
        "training_data_sha256": data_hash,
        "metrics": dict(metrics),
        "training": dict(training or {}),
    }
    return write_bundle_meta(out, meta)


def _densenets(root: Path, meta: Mapping[str, Any]) -> tuple[DenseNetConfig, tuple[Any, ...]]:
    config = DenseNetConfig.from_dict(dict(meta["densenet"]["net_config"]))
    nets = []
    for entry in meta["densenet"]["members"]:
        net = DualInputDenseNet(config)
        load_module_weights(root, entry, net)
        nets.append(net)
    return config, tuple(nets)


def _parts(root: Path, meta: Mapping[str, Any]) -> SurvivalParts:
    file = verified_weight_file(root, meta["arrays"])
    try:
        arrays = load_arrays(str(file))
    except SafetensorError as exc:
        raise BundleError(f"bundle {root}: {file.name} is not a safetensors file") from exc
    config, nets = _densenets(root, meta)
    names: Sequence[str] = meta["radiomics"]["features"]
    risk = meta["risk"]
    return SurvivalParts(
        roi=RoiConfig.from_dict(dict(meta["roi"])),
        radiomics=RadiomicsConfig.from_dict(dict(meta["radiomics"])),
        projection=RadiomicsProjection.from_arrays(names, arrays),
        forest=SurvivalForest.from_arrays(arrays),
        densenet_config=config,
        densenets=nets,
        clinical=HorizonLogistic.from_arrays("clinical", meta["clinical_inputs"], arrays),
        fusion=HorizonLogistic.from_arrays("fusion", meta["fusion_inputs"], arrays),
        risk=RiskRule(int(risk["horizon_years"]), float(risk["cutoff"])),
        reference_curves=tuple(
            KaplanMeierCurve.model_validate(c) for c in meta.get("reference_curves", [])
        ),
    )


def load_survival_bundle(path: Path) -> SurvivalBundle:
    """Read and verify a survival bundle folder (or its ``bundle.json``).

    Raises
    ------
    BundleError
        With a one-line reason: unreadable or foreign metadata, a missing notice, a missing
        or altered file, or arrays and weights that do not fit.
    """
    root = path.parent if path.name == _META else path
    meta = read_task_meta(root, TASK)
    try:
        parts = _parts(root, meta)
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"bundle {root}: incomplete metadata ({exc})") from exc
    return SurvivalBundle(root, meta, parts)
