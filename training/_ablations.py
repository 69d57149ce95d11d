"""Bundles of the trained ablation variants (``OUT/ablations/<variant>/``).

The ablations that train a network of their own (``ct_only``, ``tabular_only``,
``fixed_weights``) are saved like the main model: one member per outer fold run, the same
preprocessing and training data hash, and that variant's outer-fold metrics, so that they can be
evaluated later (``pancreas-node evaluate``) exactly like the main bundle. ``knockout`` reuses
the multimodal models and ``geometry`` is not a network: neither gets a bundle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from inference.bundle import BundleMember, save_bundle
from training._report import VARIANT_TITLES
from training.dataset import PreprocessConfig

__all__ = ["ABLATIONS_DIR", "MODEL_ABLATIONS", "save_ablation_bundles"]

#: Sub-folder of a training run that holds one bundle per trained ablation variant.
ABLATIONS_DIR: Final = "ablations"

#: The ablation variants that train networks of their own (and so get a bundle).
MODEL_ABLATIONS: Final = ("ct_only", "tabular_only", "fixed_weights")


def save_ablation_bundles(
    out: Path,
    members: Mapping[str, Sequence[BundleMember]],
    *,
    preprocess: PreprocessConfig,
    name: str,
    version: str,
    data_hash: str,
    summary: Mapping[str, Any],
    training: Mapping[str, Any],
    weights_dtype: str = "float32",
) -> dict[str, Path]:
    """Write ``out/ablations/<variant>/`` for every variant with trained members.

    Parameters
    ----------
    out
        The training run's folder.
    members
        Per variant, its models of the outer folds run (in fold order).
    preprocess
        The run's input cube (the same for every variant).
    name, version
        The main bundle's name and version; a variant's bundle is ``<name>-<variant>``.
    data_hash
        The training data sha256.
    summary
        The report's mean ± std summary per variant; the variant's entry becomes its metrics.
    training
        The main bundle's training record; ``variant`` and its title are added.

    Returns
    -------
    dict[str, Path]
        Variant -> its ``bundle.json``.

    Raises
    ------
    OSError
        If a bundle cannot be written.
    """
    written: dict[str, Path] = {}
    for variant in MODEL_ABLATIONS:
        group = list(members.get(variant, ()))
        if not group:
            continue
        metrics = {variant: summary[variant]} if variant in summary else {}
        record = {**training, "variant": variant, "variant_title": VARIANT_TITLES[variant]}
        written[variant] = save_bundle(
            out / ABLATIONS_DIR / variant, group, preprocess=preprocess,
            name=f"{name}-{variant}", version=version, data_hash=data_hash, metrics=metrics,
            training=record, weights_dtype=weights_dtype,
        )  # fmt: skip
    return written
