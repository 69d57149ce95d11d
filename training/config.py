"""Training configuration: protocol defaults of METHOD.md, a CPU-sized grid, file loading."""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ABLATIONS", "Augmentations", "HyperParams", "TrainConfig", "load_config"]

ABLATIONS: tuple[str, ...] = ("ct_only", "tabular_only", "knockout", "fixed_weights", "geometry")
"""Ablations and baselines the CLI can add to the multimodal run."""


@dataclass(frozen=True)
class HyperParams:
    """One point of the inner grid."""

    lr: float
    feature_size: int
    batch_size: int
    seg_coefficients: tuple[float, float, float]

    def key(self) -> str:
        """Stable file-name-safe identifier."""
        a, b, o = self.seg_coefficients
        return f"lr{self.lr:g}_fs{self.feature_size}_bs{self.batch_size}_seg{a:g}-{b:g}-{o:g}"


def _check_range(name: str, low: float, high: float, floor: float = 0.0) -> None:
    if not floor <= low <= high:
        raise ValueError(f"augmentation {name} must be an increasing range from {floor:g}")


@dataclass(frozen=True)
class Augmentations:
    """The augmentations beyond the paper's, each off at probability 0 (the default).

    Every ``*_prob`` is the per-case probability of one transform, applied after the paper's
    chain (:func:`training.dataset.make_augmentation`) in the order of the fields; images are
    the z-scored cubes of :mod:`inference.preprocessing`, so intensity amounts are in
    standard deviations of the cube.

    Attributes
    ----------
    labelwise_prob, labelwise_noise, labelwise_blur, labelwise_tumor_contrast
        Label-wise random intensities (the SynthSeg idea, Billot et al., Medical Image
        Analysis 2023; :class:`training._augment.RandLabelwiseIntensityd`): the CT is replaced
        by a random mean per label plus Gaussian noise (standard deviation drawn up to
        ``labelwise_noise``, in units of the means' [0, 1] range), background kept as the CT
        under a random linear map, then blurred (sigma drawn up to ``labelwise_blur``
        voxels) and z-scored; the tumor is at least ``labelwise_tumor_contrast`` darker than
        the pancreas, so that a labelled tumor is never invisible.
    zoom_prob, zoom_range
        Spacing: random isotropic zoom of image and labels (MONAI ``RandZoomd``; the cube
        keeps its size), as if the body or the voxel spacing were that much larger.
    lowres_prob, lowres_range
        Spacing: resample down by a factor drawn from ``lowres_range`` and back up (MONAI
        ``RandSimulateLowResolutiond``), thicker slices and coarser reconstructions.
    gamma_prob, gamma_range
        Intensity: random gamma (MONAI ``RandAdjustContrastd``).
    contrast_prob, contrast_factor
        Intensity: multiply by ``1 + U(-f, f)`` (MONAI ``RandScaleIntensityd``).
    shift_prob, shift_offset
        Intensity: add ``U(-o, o)`` (MONAI ``RandShiftIntensityd``; the paper's is +-0.1).
    smooth_prob, smooth_sigma
        Sharpness: Gaussian smoothing, sigma per axis drawn from ``smooth_sigma`` voxels
        (MONAI ``RandGaussianSmoothd``).
    noise_prob, noise_std
        Noise: Gaussian noise whose standard deviation is drawn from ``[0, noise_std]``
        (MONAI ``RandGaussianNoised``; the paper's is 0.01).
    """

    labelwise_prob: float = 0.0
    labelwise_noise: float = 0.15
    labelwise_blur: float = 1.0
    labelwise_tumor_contrast: float = 0.1
    zoom_prob: float = 0.0
    zoom_range: tuple[float, float] = (0.85, 1.2)
    lowres_prob: float = 0.0
    lowres_range: tuple[float, float] = (0.5, 1.0)
    gamma_prob: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.5)
    contrast_prob: float = 0.0
    contrast_factor: float = 0.25
    shift_prob: float = 0.0
    shift_offset: float = 0.5
    smooth_prob: float = 0.0
    smooth_sigma: tuple[float, float] = (0.25, 1.0)
    noise_prob: float = 0.0
    noise_std: float = 0.2

    def __post_init__(self) -> None:
        for name in ("labelwise", "zoom", "lowres", "gamma", "contrast", "shift", "smooth",
                     "noise"):  # fmt: skip
            if not 0.0 <= getattr(self, f"{name}_prob") <= 1.0:
                raise ValueError(f"augmentation {name}_prob must lie in [0, 1]")
        amounts = (self.labelwise_noise, self.labelwise_blur, self.contrast_factor,
                   self.shift_offset, self.noise_std)  # fmt: skip
        if min(amounts) < 0 or not 0.0 <= self.labelwise_tumor_contrast <= 0.5:
            raise ValueError("augmentation amounts must be >= 0, tumor contrast in [0, 0.5]")
        _check_range("zoom_range", *self.zoom_range, floor=0.1)
        _check_range("lowres_range", *self.lowres_range, floor=0.1)
        _check_range("gamma_range", *self.gamma_range, floor=0.1)
        _check_range("smooth_sigma", *self.smooth_sigma)
        if self.lowres_range[1] > 1.0 or self.contrast_factor >= 1.0:
            raise ValueError("lowres_range must not exceed 1 and contrast_factor must be < 1")

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the augmentations switched on (probability above 0), in chain order."""
        names = ("labelwise", "zoom", "lowres", "gamma", "contrast", "shift", "smooth", "noise")
        return tuple(n for n in names if getattr(self, f"{n}_prob") > 0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``pancreas-node train`` can be told (defaults: a CPU-sized protocol).

    The paper's grid is lr {1e-3, 5e-4, 1e-4} x feature size {24, 32, 48} x batch {8, 16} at
    160 voxels; MONAI needs feature sizes that are multiples of 12, so use {24, 36, 48} there.
    ``localiser_epochs`` > 0 also trains the learned coarse localiser into the bundle
    (:mod:`training.localiser`); 0 ships none.

    ``time_budget_min`` > 0 gives every fit a wall-clock budget: after its second epoch the
    fit fixes its epoch limit to what the budget allows (at most ``max_epochs``) and anneals
    the learning rate over that many epochs; the limit is kept in the checkpoint, so a
    resumed or reloaded fit honours it. ``workers`` > 1 preprocesses the cohort in that many
    processes and fits a fold's independent models (the grid points; with a one-point grid
    also the ablations) at the same time, each in its own process with ``num_threads``
    threads. ``weights_dtype`` ``float16`` halves the bundle's weight files (the model
    still runs in float32).

    ``selection_min_tumor_dice``: a model that segments is selected (and early-stopped) on
    its inner-validation macro-F1 only at epochs whose validation tumor Dice reaches this
    value, by default the Dice at which the adaptive loss schedule reaches its last stage
    (``w_seg = w_cls = 1``). A fit that never reaches it keeps its last state.

    ``init_from``: a bundle directory whose image branch starts every fit that has one
    (:mod:`training._init_from`). With ``init_from_cohort = "same"`` it must have been
    trained on the same cohort with the same split, or the run is refused. With
    ``"independent"`` it was trained on another cohort that shares no patient with this one
    (another phantom seed, another site), the way the paper's BTCV pretraining is: its
    training data sha256 must then differ from this run's. That check refuses only the
    identical cohort; that no patient is shared is the operator's declaration. Empty: every
    fit starts from its seeded initialisation. A path ending in ``.pt`` or ``.pth`` is a MONAI
    Swin-UNETR checkpoint instead (the BTCV SwinUNETR or the self-supervised Swin ViT,
    :mod:`training._monai_weights`): every fold starts from what of it fits the network
    (``init_from_cohort`` does not apply; ``freeze_image_branch`` is refused).

    ``image_pooling``: ``"global"`` (METHOD.md) or ``"contact"``, which adds the contact vector
    of :mod:`inference.tasks.resectability._model_contact`. ``freeze_image_branch``: keep
    ``init_from``'s image branch as it is and train only the heads (:mod:`training._frozen`).
    ``seg_label_balance``: ``"none"`` (METHOD.md) or ``"median_frequency"``, which weights
    the voxel-wise segmentation terms by :func:`training.losses.median_frequency_weights` of
    each fit's training rows, so that thin vessels such as the celiac trunk are not lost.
    ``clinical_dropout``: modality dropout of the clinical embedding in the models that have
    both pathways (:class:`inference.tasks.resectability.model.ModelConfig`); the tabular-only model
    keeps its input. ``fusion``: ``"concat"`` (METHOD.md) or ``"logit_sum"``, the multimodal model
    as an image
    expert plus a clinical expert trained alone and weighted on the inner-validation rows
    (:mod:`training._experts`); the ablations are unchanged.

    ``augmentation``: the augmentations beyond the paper's (:class:`Augmentations`, a
    ``[augmentation]`` table in TOML), applied only where ``augment`` is on; all off by
    default, so an existing config trains exactly as before.
    """

    target_size: int = 64
    cube_mm: float = 160.0
    outer_folds: int = 5
    folds_to_run: int = 5
    max_epochs: int = 100
    patience: int = 20
    weight_decay: float = 1e-5
    lr: tuple[float, ...] = (1e-3,)
    feature_size: tuple[int, ...] = (12,)
    batch_size: tuple[int, ...] = (4,)
    seg_coefficients: tuple[tuple[float, float, float], ...] = ((0.4, 0.4, 0.2),)
    class_weights: tuple[float, float, float] = (1.0, 2.0, 2.5)
    adaptive_weights: bool = True
    dropout: float = 0.3
    window_size: int = 7
    augment: bool = True
    ablations: tuple[str, ...] = ()
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    localiser_epochs: int = 30
    time_budget_min: float = 0.0
    workers: int = 1
    weights_dtype: str = "float32"
    selection_min_tumor_dice: float = 0.5
    init_from: str = ""
    init_from_cohort: str = "same"
    image_pooling: str = "global"
    freeze_image_branch: bool = False
    clinical_dropout: float = 0.0
    seg_label_balance: str = "none"
    fusion: str = "concat"
    augmentation: Augmentations = field(default_factory=Augmentations)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.ablations) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablations {sorted(unknown)}; choose from {ABLATIONS}")
        if not 1 <= self.folds_to_run <= self.outer_folds or self.outer_folds < 2:
            raise ValueError("need outer_folds >= 2 and 1 <= folds_to_run <= outer_folds")
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError("max_epochs and patience must be at least 1")
        if self.localiser_epochs < 0:
            raise ValueError("localiser_epochs must be >= 0 (0: no learned localiser)")
        if self.time_budget_min < 0 or self.workers < 1:
            raise ValueError("time_budget_min must be >= 0 and workers >= 1")
        if self.weights_dtype not in ("float32", "float16"):
            raise ValueError(f"weights_dtype must be float32 or float16: {self.weights_dtype!r}")
        if self.target_size < 32 or self.target_size % 32:
            # The Swin-UNETR merges patches five times by 2 (METHOD.md section 1).
            raise ValueError(f"target_size must be a multiple of 32, got {self.target_size}")
        if not 0.0 <= self.selection_min_tumor_dice <= 1.0:
            raise ValueError("selection_min_tumor_dice must lie in [0, 1]")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.image_pooling not in ("global", "contact"):
            raise ValueError(f"image_pooling must be global or contact, got {self.image_pooling!r}")
        if self.seg_label_balance not in ("none", "median_frequency"):
            balance = self.seg_label_balance
            raise ValueError(f"seg_label_balance must be none or median_frequency, got {balance!r}")
        if self.fusion not in ("concat", "logit_sum"):
            raise ValueError(f"fusion must be concat or logit_sum, got {self.fusion!r}")
        if not 0.0 <= self.clinical_dropout < 1.0:
            raise ValueError("clinical_dropout must lie in [0, 1)")
        if self.init_from_cohort not in ("same", "independent"):
            cohort = self.init_from_cohort
            raise ValueError(f"init_from_cohort must be same or independent, got {cohort!r}")
        if self.freeze_image_branch and not self.init_from:
            raise ValueError("freeze_image_branch needs init_from (the image branch to keep)")
        if self.freeze_image_branch and self.init_from.lower().endswith((".pt", ".pth")):
            raise ValueError(
                "freeze_image_branch needs a bundle of this project as init_from, not MONAI "
                "weights (their segmentation head and decoder do not fit or are absent)"
            )
        if not (self.lr and self.feature_size and self.batch_size and self.seg_coefficients):
            raise ValueError("every grid axis needs at least one value")

    def grid(self) -> list[HyperParams]:
        """The inner grid, in a fixed order."""
        return [
            HyperParams(lr, fs, bs, tuple(sc))  # type: ignore[arg-type]
            for lr, fs, bs, sc in itertools.product(
                self.lr, self.feature_size, self.batch_size, self.seg_coefficients
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuple(v) for v in value)
    return value


def _augmentations(table: Any) -> Augmentations:
    """The ``[augmentation]`` table as :class:`Augmentations` (unknown keys refused)."""
    if isinstance(table, Augmentations):
        return table
    if not isinstance(table, dict):
        raise ValueError("augmentation must be a table of augmentation settings")
    unknown = set(table) - {f.name for f in fields(Augmentations)}
    if unknown:
        raise ValueError(f"unknown augmentation keys: {sorted(unknown)}")
    return Augmentations(**{k: _tuple(v) for k, v in table.items()})


def load_config(path: Path | None, **overrides: Any) -> TrainConfig:
    """Read a TOML or JSON config (top-level keys = :class:`TrainConfig` fields).

    Raises
    ------
    ValueError
        On unknown keys, wrong types or unparsable files.
    OSError
        If the file cannot be read.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot parse {path.name}: {exc}") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    try:
        values = {k: _tuple(v) for k, v in data.items()}
        if "augmentation" in values:
            values["augmentation"] = _augmentations(values["augmentation"])
        return TrainConfig(**values)
    except TypeError as exc:
        raise ValueError(f"invalid config: {exc}") from exc
