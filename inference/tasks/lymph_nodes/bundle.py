"""Lymph-node bundles: ``bundle.json`` and four safetensors weight files.

The layout is the detection bundle's (:mod:`inference.tasks.detection.bundle`, through
:mod:`inference.bundle`'s helpers): one folder, a ``bundle.json`` with the format version, the
notice, the model name and version, the training data and config sha256, metrics and the
sha256 of every weight file, verified before anything runs. Its ``task`` is ``"lymph-nodes"``;
``stages`` holds ``organs`` (the organ & vessel segmenter), ``segmenter`` (the node
segmentation network), ``classifier`` (the node classifier) and ``patient`` (the patient
model), each with its configuration (and nnU-Net plan for the U-Nets); ``attention`` records
the structures' ranges and the soft border the segmenter was trained with (a bundle whose
ranges differ from :data:`pancreas_contracts.lymph_nodes.ATTENTION_STRUCTURES` is refused);
``settings`` holds the thresholds (:class:`LymphNodeSettings`). Weights may be stored as
float16 (``weights_dtype``; a tensor beyond float16's range, such as the patient model's
node-volume statistics in mm^3, stays float32); loading casts them back to float32.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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
from inference.tasks.lymph_nodes.model import (
    ORGAN_CLASSES,
    LymphNodeSegNet,
    NodeClassifier,
    NodeClassifierConfig,
    SegConfig,
    UNetConfig,
    build_organ_segmenter,
)
from inference.tasks.lymph_nodes.patient import PATIENT_CLASSES, PatientNet, PatientNetConfig
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES, BORDER_MM

__all__ = [
    "TASK",
    "LymphNodeBundle",
    "LymphNodeNetworks",
    "LymphNodeSettings",
    "load_lymph_node_bundle",
    "save_lymph_node_bundle",
]

#: ``bundle.json``'s ``task``.
TASK: Final = "lymph-nodes"
_META = "bundle.json"
_ARCHITECTURE = (
    "organ & vessel DynUNet -> distance-guided attention (trapezoid of signed distances) -> "
    "node DynUNet with attention on the penultimate decoder features -> node classifier on the "
    "segmentation encoder -> patient model (tumor-slice CNN + largest positive node volume)"
)


@dataclass(frozen=True)
class LymphNodeSettings:
    """How the networks' outputs become nodes and a patient answer.

    Attributes
    ----------
    seg_threshold
        Node probability at or above which a voxel belongs to a node.
    min_voxels
        Smaller instances are dropped.
    max_nodes
        Most instances classified per patient (largest first).
    suspicious_threshold
        Nodes whose metastasis probability is at or above it are ``suspicious`` (positive
        for the patient model's largest positive node).
    patient_threshold
        Patient N+ probability at or above which the patient is called N+.
    node_threshold
        Candidates whose *node* probability (a classifier with a not-node class) is below it
        are dropped: the detection's operating point, chosen on the validation rows for a
        number of false positives per patient. 0 keeps every candidate (and a bundle
        without that class always gives 1).
    """

    seg_threshold: float = 0.5
    min_voxels: int = 3
    max_nodes: int = 30
    suspicious_threshold: float = 0.5
    patient_threshold: float = 0.5
    node_threshold: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.seg_threshold <= 1.0 or self.min_voxels < 1 or self.max_nodes < 1:
            raise ValueError("need seg_threshold in (0, 1], min_voxels and max_nodes >= 1")
        if not all(
            0.0 <= t <= 1.0
            for t in (self.suspicious_threshold, self.patient_threshold, self.node_threshold)
        ):
            raise ValueError(
                "suspicious_threshold, patient_threshold and node_threshold must lie in [0, 1]"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LymphNodeSettings:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


@dataclass(frozen=True, eq=False)
class LymphNodeNetworks:
    """The four networks of a lymph-node model.

    Attributes
    ----------
    organ_config
        The organ segmenter's cube and widths.
    organs
        The organ & vessel segmenter (:func:`build_organ_segmenter`).
    segmenter
        The node segmentation network.
    classifier
        The node classifier.
    patient
        The patient model.
    """

    organ_config: UNetConfig
    organs: nn.Module
    segmenter: LymphNodeSegNet
    classifier: NodeClassifier
    patient: PatientNet

    @classmethod
    def build(
        cls,
        organ_config: UNetConfig,
        seg_config: SegConfig,
        classifier_config: NodeClassifierConfig,
        patient_config: PatientNetConfig,
    ) -> LymphNodeNetworks:
        """Fresh networks; the classifier's encoder initialised from the segmenter's."""
        segmenter = LymphNodeSegNet(seg_config)
        classifier = NodeClassifier(seg_config, classifier_config)
        classifier.init_from_segmenter(segmenter)
        organs = build_organ_segmenter(organ_config)
        return cls(organ_config, organs, segmenter, classifier, PatientNet(patient_config))

    def stages(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        """Each stage's network and ``bundle.json`` configuration entry, by stage name."""
        seg, cls_config = self.segmenter.config, self.classifier.config
        return {
            "organs": (self.organs, {"net_config": self.organ_config.to_dict(),
                                     "plan": self.organ_config.plan().to_dict()}),
            "segmenter": (self.segmenter, {"net_config": seg.to_dict(),
                                           "plan": seg.plan().to_dict()}),
            "classifier": (self.classifier, {"net_config": cls_config.to_dict()}),
            "patient": (self.patient, {"net_config": self.patient.config.to_dict()}),
        }  # fmt: skip


@dataclass(frozen=True)
class LymphNodeBundle:
    """A verified lymph-node bundle, its networks in eval mode on the CPU."""

    path: Path
    meta: dict[str, Any]
    networks: LymphNodeNetworks
    settings: LymphNodeSettings

    @property
    def version(self) -> str:
        """``name version`` of the model, as recorded."""
        model = self.meta.get("model", {})
        return f"{model.get('name', '?')} {model.get('version', '?')}"


def _attention_section() -> dict[str, Any]:
    return {
        "border_mm": BORDER_MM,
        "structures": [
            {"value": s.value, "name": s.name, "d_min_mm": s.d_min_mm, "d_max_mm": s.d_max_mm}
            for s in ATTENTION_STRUCTURES
        ],
    }


def save_lymph_node_bundle(
    out: Path,
    networks: LymphNodeNetworks,
    settings: LymphNodeSettings,
    *,
    name: str,
    version: str,
    config_sha256: str,
    data_hash: str,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write a lymph-node bundle into ``out`` (created; files replaced).

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
    stages = {
        key: {**save_module_weights(module, out / f"{key}.safetensors", weights_dtype), **entry}
        for key, (module, entry) in networks.stages().items()
    }
    meta = {
        "format_version": BUNDLE_FORMAT,
        "task": TASK,
        "model": {"name": name, "version": version, "architecture": _ARCHITECTURE},
        "notice": NOTICE,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": {
            "organs": list(ORGAN_CLASSES),
            "nodes": list(networks.classifier.config.classes),
            "patient": list(PATIENT_CLASSES),
        },
        "config_sha256": config_sha256,
        "training_data_sha256": data_hash,
        "attention": _attention_section(),
        "stages": stages,
        "settings": settings.to_dict(),
        "metrics": dict(metrics),
        "training": dict(training or {}),
    }
    return write_bundle_meta(out, meta)


def _read_meta(root: Path) -> dict[str, Any]:
    meta = read_task_meta(root, TASK)
    if meta.get("attention") != _attention_section():
        raise BundleError(f"bundle {root}: its attention ranges differ from Table II's")
    return meta


def _networks(stages: Mapping[str, Any]) -> LymphNodeNetworks:
    seg_config = SegConfig.from_dict(dict(stages["segmenter"]["net_config"]))
    return LymphNodeNetworks.build(
        UNetConfig.from_dict(dict(stages["organs"]["net_config"])),
        seg_config,
        NodeClassifierConfig.from_dict(dict(stages["classifier"]["net_config"])),
        PatientNetConfig.from_dict(dict(stages["patient"]["net_config"])),
    )


def load_lymph_node_bundle(path: Path) -> LymphNodeBundle:
    """Read and verify a lymph-node bundle folder (or its ``bundle.json``).

    Raises
    ------
    BundleError
        With a one-line reason: unreadable or foreign metadata, a missing notice, attention
        ranges other than Table II's, a missing or altered weight file, or weights that do not
        fit the recorded networks.
    """
    root = path.parent if path.name == _META else path
    meta = _read_meta(root)
    try:
        stages = meta["stages"]
        networks = _networks(stages)
        settings = LymphNodeSettings.from_dict(meta["settings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"bundle {root}: incomplete metadata ({exc})") from exc
    for key, (module, _) in networks.stages().items():
        load_module_weights(root, stages[key], module)
    return LymphNodeBundle(root, meta, networks, settings)
