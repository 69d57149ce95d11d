"""Model bundles: one directory with safetensors weights and ``bundle.json``.

A bundle holds the outer-fold models of a training run as an ensemble (probabilities averaged);
each member carries its own clinical preprocessor (imputer reference rows and scaler statistics
fitted on that fold's training split) and its training-mean clinical embedding (a buffer in the
weights). ``bundle.json`` records the format version, model name and version, classes, the
16-label map with SNOMED CT codes, preprocessing, the clinical variable specification, the
training data hash, metrics, the creation date, the notice and the sha256 of every weight file.
:func:`load_bundle` verifies all of it and refuses with a one-line :class:`BundleError`.

A bundle may also hold the learned coarse localiser (:mod:`inference.localiser`):
``localiser.safetensors`` and a ``localiser`` section in ``bundle.json`` (its network and grid
configuration, the weights' sha256, how it was trained and its held-out localisation metrics),
added by :func:`add_localiser`. Bundles without the section stay valid (no learned localiser).

A bundle may also hold the statistics of its training cohort in a ``domain`` section
(:mod:`inference.domain`; written by :func:`save_bundle` or :func:`add_domain`), which the
analysis compares every CT with. Bundles without it stay valid (the domain check then says
``not-available``). Editing ``bundle.json`` leaves the weight files' sha256 valid; the bundle's
identity (:func:`pancreas_contracts.bundle_identity.bundle_sha256`) changes with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from inference.clinical_preprocessing import ClinicalPreprocessor
from inference.domain import DomainStats
from inference.localiser import (
    LOCALISER_FORMAT,
    LOCALISER_WEIGHTS,
    LearnedLocaliser,
    LocaliserConfig,
    build_network,
)
from inference.preprocessing import PreprocessConfig
from inference.tasks.resectability.model import NCCN_CLASSES, ModelConfig, ResectabilityNet
from pancreas_contracts.clinical import CLINICAL_VARIABLES
from pancreas_contracts.labels import LABELS

__all__ = [
    "BUNDLE_FORMAT",
    "NOTICE",
    "BundleError",
    "BundleMember",
    "LoadedBundle",
    "add_domain",
    "add_localiser",
    "copy_localiser",
    "load_bundle",
    "load_module_weights",
    "read_task_meta",
    "save_bundle",
    "save_module_weights",
    "sha256_file",
    "stored_tensor",
    "verified_weight_file",
    "write_bundle_meta",
]

BUNDLE_FORMAT = "1.0"
NOTICE = "investigational, not for clinical use"
_META = "bundle.json"
_ARCHITECTURES = {"multimodal": "multimodal Swin-UNETR", "ct_only": "Swin-UNETR, CT only",
                  "tabular_only": "clinical MLP, tabular only"}  # fmt: skip


class BundleError(ValueError):
    """A bundle that cannot be run; the message is one line."""


@dataclass(frozen=True)
class BundleMember:
    """One ensemble member: a trained network and its clinical preprocessor."""

    model: ResectabilityNet
    preprocessor: ClinicalPreprocessor


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _label_map() -> list[dict[str, Any]]:
    return [
        {
            "value": label.value,
            "name": label.name,
            "display": label.display,
            "code": {
                "scheme": label.property_type.scheme_designator,
                "value": label.property_type.value,
                "meaning": label.property_type.meaning,
            },
            "category": {
                "scheme": label.property_category.scheme_designator,
                "value": label.property_category.value,
                "meaning": label.property_category.meaning,
            },
            "rgb": list(label.rgb),
        }
        for label in LABELS
    ]


def _clinical_spec() -> list[dict[str, Any]]:
    return [
        {
            "name": v.name,
            "display": v.display,
            "kind": v.kind.value,
            "unit": v.unit,
            "low": v.low if np.isfinite(v.low) else None,
            "high": v.high if np.isfinite(v.high) else None,
            "categories": list(v.categories),
        }
        for v in CLINICAL_VARIABLES
    ]


def save_bundle(
    out: Path,
    members: Sequence[BundleMember],
    *,
    preprocess: PreprocessConfig,
    name: str,
    version: str,
    data_hash: str,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    weights_dtype: str = "float32",
    domain: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle directory (created; existing weight files are replaced).

    ``weights_dtype`` ``float16`` stores floating-point tensors at half precision (half the
    size on disk); loading casts them back, so the model always runs in float32. ``domain``,
    when given, is the training cohort's ``domain`` section (:func:`inference.domain.summarise`).

    Returns
    -------
    Path
        The ``bundle.json`` path.

    Raises
    ------
    ValueError
        With no members or an unknown ``weights_dtype`` (nothing is written then).
    OSError
        If the directory cannot be written.
    """
    if not members:
        raise ValueError("a bundle needs at least one model")
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, got {weights_dtype!r}")
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, member in enumerate(members):
        file = out / f"model-{i}.safetensors"
        tensors = {
            k: stored_tensor(v.detach().cpu(), weights_dtype).contiguous()
            for k, v in member.model.state_dict().items()
        }
        save_file(tensors, str(file))
        entries.append(
            {
                "weights": file.name,
                "sha256": sha256_file(file),
                "weights_dtype": weights_dtype,
                "model_config": member.model.config.to_dict(),
                "clinical_preprocessor": member.preprocessor.to_json(),
            }
        )
    meta = {
        "format_version": BUNDLE_FORMAT,
        "model": {
            "name": name,
            "version": version,
            "architecture": _ARCHITECTURES[members[0].model.config.mode],
        },
        "notice": NOTICE,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": list(NCCN_CLASSES),
        "label_map": _label_map(),
        "preprocessing": preprocess.to_dict(),
        "clinical_variables": _clinical_spec(),
        "ensemble": "mean of member softmax probabilities",
        "members": entries,
        "training_data_sha256": data_hash,
        "metrics": dict(metrics),
        "training": dict(training or {}),
    }
    if domain is not None:
        DomainStats.from_dict(domain)  # refuse a malformed section before writing
        meta["domain"] = dict(domain)
    return write_bundle_meta(out, meta)


def stored_tensor(tensor: torch.Tensor, weights_dtype: str) -> torch.Tensor:
    """``tensor`` as a bundle stores it: floating point at half precision for ``float16``."""
    if weights_dtype == "float16" and tensor.is_floating_point():
        return tensor.to(torch.float16)
    return tensor


def save_module_weights(module: torch.nn.Module, file: Path, weights_dtype: str) -> dict[str, Any]:
    """Write ``module``'s weights to ``file`` (safetensors, atomically); its ``bundle.json`` entry.

    Half precision where it fits (``weights_dtype = "float16"``): a tensor beyond float16's
    range stays as it is, since it would load as ``inf`` (the lymph-node patient model's
    batch-norm statistics of a node volume in mm^3 have a variance far above 65504).
    """
    tensors = {}
    for key, value in module.state_dict().items():
        stored = stored_tensor(value.detach().cpu(), weights_dtype)
        if stored.is_floating_point() and not bool(torch.isfinite(stored).all()):
            stored = value.detach().cpu()
        tensors[key] = stored.contiguous()
    partial = file.with_name(file.name + ".partial")
    save_file(tensors, str(partial))
    partial.replace(file)
    return {"weights": file.name, "sha256": sha256_file(file), "weights_dtype": weights_dtype}


def write_bundle_meta(root: Path, meta: Mapping[str, Any]) -> Path:
    """Write ``bundle.json`` atomically (a partial file, then a rename)."""
    path = root / _META
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(meta, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _read_meta(root: Path) -> dict[str, Any]:
    """``bundle.json`` of the bundle in ``root``, to be amended and rewritten.

    Raises
    ------
    BundleError
        If it cannot be read or is not a format :data:`BUNDLE_FORMAT` bundle.
    """
    try:
        meta = json.loads((root / _META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {root}: cannot read {_META}") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != BUNDLE_FORMAT:
        raise BundleError(f"bundle {root}: not a format {BUNDLE_FORMAT!r} bundle")
    return meta


def add_localiser(
    root: Path,
    localiser: LearnedLocaliser,
    *,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
) -> Path:
    """Add (or replace) the learned localiser of the bundle in ``root``.

    Writes ``localiser.safetensors`` (through a partial file and a rename), then rewrites
    ``bundle.json`` atomically with its ``localiser`` section.

    Returns
    -------
    Path
        The ``bundle.json`` path.

    Raises
    ------
    BundleError
        If ``root`` holds no readable bundle.
    OSError
        If the files cannot be written.
    """
    meta = _read_meta(root)
    file = root / LOCALISER_WEIGHTS
    partial = file.with_name(file.name + ".partial")
    state = localiser.network.state_dict().items()
    save_file({k: v.detach().cpu().contiguous() for k, v in state}, str(partial))
    partial.replace(file)
    meta["localiser"] = {
        "format_version": LOCALISER_FORMAT,
        "method": localiser.method,
        "weights": file.name,
        "sha256": sha256_file(file),
        "config": localiser.config.to_dict(),
        "training": dict(training),
        "metrics": dict(metrics),
    }
    return write_bundle_meta(root, meta)


def add_domain(root: Path, domain: Mapping[str, Any]) -> Path:
    """Add (or replace) the ``domain`` section of the bundle in ``root``.

    Only ``bundle.json`` is rewritten (atomically); the weight files and their sha256 stay.

    Returns
    -------
    Path
        The ``bundle.json`` path.

    Raises
    ------
    BundleError
        If ``root`` holds no readable bundle or the section is malformed.
    OSError
        If ``bundle.json`` cannot be written.
    """
    meta = _read_meta(root)
    try:
        DomainStats.from_dict(domain)
    except ValueError as exc:
        raise BundleError(f"bundle {root}: {exc}") from exc
    meta["domain"] = dict(domain)
    return write_bundle_meta(root, meta)


def copy_localiser(source: Path, target: Path) -> Path:
    """Give the bundle in ``target`` the learned localiser of the bundle in ``source``.

    For a model retrained on the same cohort, whose localiser need not change: the copy keeps
    the source's training record and held-out metrics, and names the source bundle (its
    ``training_data_sha256``) under ``training.copied_from``.

    Returns
    -------
    Path
        The target's ``bundle.json``.

    Raises
    ------
    BundleError
        If ``source`` has no valid learned localiser or ``target`` holds no bundle.
    """
    loaded = load_bundle(source)
    if loaded.localiser is None:
        raise BundleError(f"bundle {source}: has no learned localiser to copy")
    section = loaded.meta["localiser"]
    training = {
        **section.get("training", {}),
        "copied_from": {
            "bundle": loaded.meta.get("model", {}).get("name"),
            "training_data_sha256": loaded.meta.get("training_data_sha256"),
            "sha256": section["sha256"],
        },
    }
    return add_localiser(
        target, loaded.localiser, metrics=section.get("metrics", {}), training=training
    )


@dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle ready to predict."""

    path: Path
    meta: dict[str, Any]
    members: tuple[BundleMember, ...]
    preprocess: PreprocessConfig
    localiser: LearnedLocaliser | None = None
    #: The training cohort's statistics (``domain`` section), ``None`` when the bundle has none.
    domain: DomainStats | None = None

    def predict(
        self, image: npt.NDArray[np.float32] | None, clinical: npt.NDArray[np.float64] | None
    ) -> npt.NDArray[np.float64]:
        """Ensemble NCCN probabilities of preprocessed cubes.

        Parameters
        ----------
        image
            ``(B, S, S, S)`` cubes from :func:`inference.preprocessing.preprocess_volume`.
        clinical
            ``(B, 17)`` raw values (NaN missing), or ``None`` for clinical knock-out.

        Returns
        -------
        numpy.ndarray
            ``(B, 3)`` probabilities.
        """
        probs = []
        with torch.no_grad():
            for member in self.members:
                member.model.eval()
                x = None if image is None else torch.from_numpy(np.asarray(image)[:, None].copy())
                c = None
                if clinical is not None:
                    c = torch.from_numpy(member.preprocessor.transform(clinical).features)
                out = member.model(x, c)
                probs.append(torch.softmax(out.class_logits, dim=1).numpy())
        mean: npt.NDArray[np.float64] = np.mean(probs, axis=0).astype(np.float64)
        return mean


def load_bundle(path: Path) -> LoadedBundle:
    """Read and verify a bundle directory (or its ``bundle.json``).

    Raises
    ------
    BundleError
        With a one-line reason: missing or unparsable metadata, unknown format, missing notice,
        a missing weight file, a hash mismatch, weights that do not fit the model (the
        ensemble members' or the optional learned localiser's), or a malformed ``domain``
        section.
    """
    root = path.parent if path.name == _META else path
    meta_path = root / _META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleError(f"bundle {root}: cannot read {_META} ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle {root}: {_META} is not valid JSON") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != BUNDLE_FORMAT:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise BundleError(f"bundle {root}: format {found!r} is not {BUNDLE_FORMAT!r}")
    if meta.get("notice") != NOTICE:
        raise BundleError(f"bundle {root}: the notice {NOTICE!r} is missing")
    if list(meta.get("classes", [])) != list(NCCN_CLASSES):
        raise BundleError(f"bundle {root}: classes differ from {list(NCCN_CLASSES)}")
    members = []
    localiser = None
    domain = None
    try:
        preprocess = PreprocessConfig.from_dict(meta["preprocessing"])
        if meta.get("domain") is not None:
            domain = DomainStats.from_dict(meta["domain"])
        for entry in meta["members"]:
            members.append(_load_member(root, entry))
        if meta.get("localiser") is not None:
            localiser = _load_localiser(root, meta["localiser"])
    except (KeyError, TypeError) as exc:
        raise BundleError(f"bundle {root}: incomplete metadata ({exc})") from exc
    except BundleError:
        raise
    except ValueError as exc:
        raise BundleError(f"bundle {root}: {' '.join(str(exc).split())}") from exc
    if not members:
        raise BundleError(f"bundle {root}: no models")
    return LoadedBundle(root, meta, tuple(members), preprocess, localiser, domain)


def verified_weight_file(root: Path, entry: Mapping[str, Any]) -> Path:
    """The weight file an entry of ``bundle.json`` names, present and matching its sha256.

    Raises
    ------
    BundleError
        If it is missing, outside ``root`` or altered.
    """
    file = root / str(entry["weights"])
    if file.name != entry["weights"] or not file.is_file():
        raise BundleError(f"bundle {root}: weight file {entry['weights']!r} is missing")
    if sha256_file(file) != entry["sha256"]:
        raise BundleError(f"bundle {root}: {file.name} does not match its sha256 (tampered?)")
    return file


def load_module_weights(root: Path, entry: Mapping[str, Any], module: torch.nn.Module) -> None:
    """Load the verified weight file ``entry`` names into ``module`` (float32) and set eval mode.

    Half-precision tensors (``weights_dtype = "float16"``) are widened on load.

    Raises
    ------
    BundleError
        If the file is missing, altered, or does not fit the network.
    """
    file = verified_weight_file(root, entry)
    try:
        tensors = {k: v.float() if v.is_floating_point() else v
                   for k, v in load_file(str(file)).items()}  # fmt: skip
        module.load_state_dict(tensors, strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise BundleError(f"bundle {root}: {file.name} does not fit its network") from exc
    module.eval()


def read_task_meta(root: Path, task: str) -> dict[str, Any]:
    """``bundle.json`` of a task bundle in ``root``, checked for format, notice and task.

    Raises
    ------
    BundleError
        If it is unreadable, not JSON, of another format or task, or lacks the notice.
    """
    try:
        meta = json.loads((root / _META).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleError(f"bundle {root}: cannot read {_META} ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle {root}: {_META} is not valid JSON") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != BUNDLE_FORMAT:
        raise BundleError(f"bundle {root}: not a format {BUNDLE_FORMAT!r} bundle")
    if meta.get("notice") != NOTICE:
        raise BundleError(f"bundle {root}: the notice {NOTICE!r} is missing")
    if meta.get("task") != task:
        raise BundleError(f"bundle {root}: task {meta.get('task')!r} is not {task!r}")
    return meta


def _load_localiser(root: Path, entry: Any) -> LearnedLocaliser:
    if not isinstance(entry, dict):
        raise BundleError(f"bundle {root}: the localiser section is not an object")
    if str(entry.get("format_version")) != LOCALISER_FORMAT:
        found = entry.get("format_version")
        raise BundleError(f"bundle {root}: localiser format {found!r} is not {LOCALISER_FORMAT!r}")
    file = verified_weight_file(root, entry)
    config = LocaliserConfig.from_dict(dict(entry["config"]))
    network = build_network(config)
    try:
        network.load_state_dict(load_file(str(file)), strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise BundleError(f"bundle {root}: {file.name} does not fit the localiser") from exc
    return LearnedLocaliser(network, config)


def _load_member(root: Path, entry: Mapping[str, Any]) -> BundleMember:
    file = verified_weight_file(root, entry)
    model = ResectabilityNet(ModelConfig.from_dict(dict(entry["model_config"])))
    try:
        tensors = load_file(str(file))
        model.load_state_dict(tensors, strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise BundleError(f"bundle {root}: {file.name} does not fit the model") from exc
    model.eval()
    preprocessor = ClinicalPreprocessor.from_json(entry["clinical_preprocessor"])
    return BundleMember(model, preprocessor)
