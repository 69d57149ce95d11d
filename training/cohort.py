"""Nested cross-validated training of the resectability model, its ablations and its bundle.

Protocol (METHOD.md section 1): stratified outer 5-fold (20 % test); within each, a stratified
80/20 split of the rest (64 % train, 16 % validation); every point of the inner grid is trained
with AdamW and cosine annealing, early-stopped on validation macro-F1, and the best point by
validation macro-F1 is evaluated on the outer test fold. Ablations reuse the fold's selected
hyper-parameters. The outer-fold multimodal models form the bundle's ensemble. With
``config.localiser_epochs`` > 0 the bundle also gets the learned coarse localiser
(``localiser.safetensors``), fitted on outer fold 0's training and validation rows and
evaluated on its test rows (:mod:`training.localiser`).

Tumor-free patients (:data:`training.dataset.NO_TUMOR`) are a stratum of their own in the
stratified folds, train the segmentation and count in its Dice (a false tumor lowers the
tumor Dice), and are left out of the classification loss, of model selection and of every
NCCN metric and figure. Patients whose NCCN category is unknown
(:data:`training.dataset.NCCN_UNKNOWN`, imported cohorts) are a stratum of their own too
and are treated alike, except that they are not tumor-free. Partially labelled patients
(truth.csv's ``labelled``) train with the marginal segmentation loss and count in a
structure's Dice only where they label it (:mod:`training._partial_labels`).

Everything is resumable: each fit checkpoints every epoch under ``OUT/checkpoints`` and a rerun
with the same data and config continues where it stopped (finished fits are only reloaded).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.bundle import BundleMember, LoadedBundle, save_bundle
from inference.clinical_preprocessing import clinical_matrix
from inference.parallel import ordered_map
from inference.tasks.resectability.model import ImagePooling, ModelMode, ResectabilityNet
from pancreas_contracts.labels import label_by_name
from training._ablations import save_ablation_bundles
from training._frozen import classify_pooled, pooled_cache
from training._geometry import GeometryClassifier, contact_features
from training._init_from import (
    image_branch_cohorts,
    image_branch_weights,
    load_init_bundle,
    monai_init,
)
from training._loop import (
    CohortArrays,
    FitResult,
    fit_model,
    pick_device,
    predict,
    with_tumor,
)
from training._metrics import DICE_GROUPS, classification_metrics, labelled_dice_counts
from training._monai_weights import is_monai_checkpoint
from training._parallel_folds import FitJob, fit_in_parallel, share_cohort
from training._partial_labels import (
    check_unlabelled_voxels,
    labelled_matrix,
    partial_label_lines,
)
from training._report import VARIANT_TITLES, plot_confusion, plot_roc, write_report
from training._splits import FoldSplit, nested_splits
from training.config import HyperParams, TrainConfig
from training.dataset import (
    NCCN_UNKNOWN,
    NO_TUMOR,
    CaseRecord,
    PreprocessConfig,
    discover_cases,
    label_provenance,
    preprocess_case,
    source_fingerprint,
)
from training.domain_stats import cohort_domain
from training.localiser import ship_localiser

__all__ = ["TrainingRun", "load_cohort", "train_cohort"]

TUMOR_LABEL = label_by_name("tumor").value

Status = Callable[[str, int, int], None]
"""Progress callback: ``(task description, done, total)``."""


@dataclass(frozen=True)
class TrainingRun:
    """What a training run produced."""

    out: Path
    summary: dict[str, Any]
    folds: dict[str, list[dict[str, Any]]]
    bundle_json: Path
    ablation_bundles: dict[str, Path] = field(default_factory=dict)
    """Variant -> ``bundle.json`` of its bundle under ``OUT/ablations/<variant>/``."""


def _cube(
    case: CaseRecord, preprocess: PreprocessConfig, cache: Path | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """One case's training cube and label cube, from the cache or preprocessed (and cached)."""
    size = preprocess.target_size
    name = f"{case.patient_id}_{size}_{preprocess.cube_mm:g}_{source_fingerprint(case)}.npz"
    file = None if cache is None else cache / name
    if file is not None and file.is_file():
        with np.load(file) as saved:
            return saved["image"].astype(np.float32), saved["label"].astype(np.uint8)
    if case.label is None:
        raise ValueError(f"patient {case.patient_id}: training needs label.nii.gz")
    pre = preprocess_case(case, preprocess)
    assert pre.label is not None
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(".partial.npz")
        np.savez_compressed(partial, image=pre.image, label=pre.label)
        partial.replace(file)
    return pre.image.astype(np.float32), pre.label.astype(np.uint8)


def load_cohort(
    cases: list[CaseRecord],
    preprocess: PreprocessConfig,
    cache: Path | None,
    status: Status | None = None,
    *,
    workers: int = 1,
) -> CohortArrays:
    """Preprocess every case (cached as ``.npz`` under ``cache`` when given).

    ``workers`` > 1 preprocesses in that many processes (the result is the same).

    Raises
    ------
    ValueError
        If a case has no label map (training needs one), a tumor-free case's label map
        has tumor voxels in its cube, or a partially labelled case's has voxels of a
        structure it does not label.
    """
    cubes: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]] = []
    for case, cube in zip(
        cases, ordered_map(_cube, cases, preprocess, cache, workers=workers), strict=True
    ):
        # Checked on cached cubes too: truth.csv may change without the files it keys on.
        if not case.has_tumor and bool((cube[1] == TUMOR_LABEL).any()):
            raise ValueError(
                f"patient {case.patient_id}: tumor-free in truth.csv, tumor in its labels"
            )
        check_unlabelled_voxels(case, cube[1])
        cubes.append(cube)
        if status is not None:
            status("preprocessing", len(cubes), len(cases))
    return CohortArrays(
        images=np.stack([image for image, _ in cubes]),
        labels=np.stack([label for _, label in cubes]),
        clinical=clinical_matrix([c.clinical for c in cases]),
        targets=np.asarray([c.nccn_label for c in cases], dtype=np.int64),
        patient_ids=tuple(c.patient_id for c in cases),
        labelled=labelled_matrix(cases),
    )


def data_hash(arrays: CohortArrays) -> str:
    """sha256 over the preprocessed images, labels, clinical table and NCCN labels.

    A partially labelled cohort's labelled matrix is hashed too (a fully labelled cohort's
    digest is what it was before partial labels existed).
    """
    digest = hashlib.sha256()
    digest.update("\n".join(arrays.patient_ids).encode())
    for array in (
        arrays.images,
        arrays.labels,
        np.nan_to_num(arrays.clinical, nan=-1e30),
        arrays.targets,
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    if arrays.labelled is not None:
        digest.update(np.ascontiguousarray(arrays.labelled).tobytes())
    return digest.hexdigest()


def _row(
    fold: int, truth: npt.NDArray[np.int64], probs: npt.NDArray[np.float64], **extra: Any
) -> dict[str, Any]:
    return {"fold": fold, **classification_metrics(truth.tolist(), probs), **extra}


class _Trainer:
    def __init__(
        self,
        arrays: CohortArrays,
        config: TrainConfig,
        out: Path,
        status: Status | None,
        init: list[Path],
    ):
        self.arrays, self.config, self.out, self.status = arrays, config, out, status
        self.init = init  # per outer fold, the weights its image branches start from
        self.device = pick_device(config.device)
        self.folds: dict[str, list[dict[str, Any]]] = {"multimodal": []}
        for name in ("geometry", "ct_only", "tabular_only", "knockout", "fixed_weights"):
            if name in config.ablations:
                self.folds[name] = []
        self.pooled: dict[str, tuple[list[int], list[npt.NDArray[np.float64]]]] = {}
        self.ablation_members: dict[str, list[BundleMember]] = {}
        self.shared: Path | None = None

    def _job(
        self,
        split: FoldSplit,
        hp: HyperParams,
        mode: ModelMode,
        adaptive: bool,
        tag: str,
        seed: int,
    ) -> FitJob:
        checkpoint = self.out / "checkpoints" / f"fold{split.fold}" / f"{tag}_{hp.key()}.pt"
        warm = self.init[split.fold] if self.init and mode is not ModelMode.TABULAR_ONLY else None
        return FitJob(split.train, split.val, hp, mode, adaptive, checkpoint, seed, tag, warm)

    def _fit(self, split: FoldSplit, job: FitJob) -> FitResult:
        name = f"fold {split.fold} {job.tag} {job.hp.key()}"

        def progress(epoch: int, total: int, loss: float) -> None:
            if self.status is not None:
                self.status(f"{name} loss {loss:.3f}", epoch, total)

        return fit_model(
            self.arrays, job.train, job.val, job.hp, self.config, mode=job.mode,
            adaptive=job.adaptive, checkpoint=job.checkpoint, seed=job.seed, progress=progress,
            init_weights=job.init_weights,
        )  # fmt: skip

    def _ablation_jobs(self, split: FoldSplit, hp: HyperParams) -> list[tuple[str, FitJob]]:
        base_seed = self.config.seed * 10_000 + split.fold * 100
        adaptive = self.config.adaptive_weights
        variants = (
            ("ct_only", ModelMode.CT_ONLY, adaptive),
            ("tabular_only", ModelMode.TABULAR_ONLY, adaptive),
            ("fixed_weights", ModelMode.MULTIMODAL, False),
        )
        return [
            (variant, self._job(split, hp, vmode, vadaptive, variant, base_seed + 50 + offset))
            for offset, (variant, vmode, vadaptive) in enumerate(variants, start=1)
            if variant in self.folds
        ]

    def _prefit(self, split: FoldSplit, jobs: list[FitJob]) -> None:
        """Bring ``jobs``' checkpoints to their finished state in parallel (``workers`` > 1)."""
        if self.config.workers < 2 or len(jobs) < 2:
            return
        if self.shared is None:
            self.shared = share_cohort(self.arrays, self.out / "checkpoints" / "cohort")

        def done(name: str, finished: int, total: int) -> None:
            if self.status is not None:
                self.status(f"fold {split.fold} parallel fits ({name})", finished, total)

        fit_in_parallel(self.shared, self.config, jobs, done)

    def _record(
        self, variant: str, split: FoldSplit, probs: npt.NDArray[np.float64], **extra: Any
    ) -> None:
        scored = self.arrays.targets[split.test] >= 0  # tumor-free or unknown: no category
        truth, probs = self.arrays.targets[split.test][scored], probs[scored]
        self.folds[variant].append(_row(split.fold, truth, probs, **extra))
        labels, chunks = self.pooled.setdefault(variant, ([], []))
        labels.extend(truth.tolist())
        chunks.append(probs)

    def _test_probs(
        self, model: ResectabilityNet, split: FoldSplit, features: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.float64]:
        """Test-row probabilities; over a frozen branch, from the fold's cached encodings."""
        if self.config.freeze_image_branch and model.swin is not None and self.init:
            cache = pooled_cache(self.out / "checkpoints", self.init[split.fold])
            if cache.is_file():
                return classify_pooled(model, cache, split.test, features, self.device)
        return predict(model, self.arrays, split.test, features, self.device).probs

    def run_fold(self, split: FoldSplit) -> BundleMember:
        cfg, base_seed = self.config, self.config.seed * 10_000 + split.fold * 100
        mode, adaptive, grid = ModelMode.MULTIMODAL, cfg.adaptive_weights, cfg.grid()
        grid_jobs = [
            self._job(split, hp, mode, adaptive, "multimodal", base_seed + i)
            for i, hp in enumerate(grid)
        ]
        # A one-point grid selects that point, so its ablations can train alongside it.
        early = [job for _, job in self._ablation_jobs(split, grid[0])] if len(grid) == 1 else []
        self._prefit(split, grid_jobs + early)
        fits = [(self._fit(split, job), job.hp) for job in grid_jobs]
        best, hp = max(fits, key=lambda f: f[0].best_val_f1)
        feats = best.preprocessor.transform(self.arrays.clinical).features
        pred = predict(
            best.model, self.arrays, split.test, feats, self.device, keep_segmentation=True
        )
        assert pred.segmentation is not None
        labelled = self.arrays.labelled
        counts, counted = labelled_dice_counts(
            list(pred.segmentation), [self.arrays.labels[i] for i in split.test],
            None if labelled is None else labelled[split.test],
        )  # fmt: skip
        dice = {name: float(counts[g, 0] / counts[g, 1]) if counts[g, 1] else float("nan")
                for g, name in enumerate(DICE_GROUPS)}  # fmt: skip
        dice_n = {name: int(counted[g]) for g, name in enumerate(DICE_GROUPS)}
        self._record(
            "multimodal", split, pred.probs, dice=dice, dice_n=dice_n, epochs=best.epochs,
            hp=hp.key(),
        )  # fmt: skip
        if "knockout" in self.folds:
            ko = self._test_probs(best.model, split, None)
            self._record("knockout", split, ko, hp=hp.key())
        if "geometry" in self.folds:
            train = with_tumor(self.arrays, split.train)
            train_angles = np.stack([contact_features(self.arrays.labels[i]) for i in train])
            test_angles = np.stack([contact_features(s) for s in pred.segmentation])
            clf = GeometryClassifier().fit(train_angles, self.arrays.targets[train])
            self._record("geometry", split, clf.predict_proba(test_angles))
        ablations = self._ablation_jobs(split, hp)
        self._prefit(split, [job for _, job in ablations])
        for variant, job in ablations:
            fit = self._fit(split, job)
            vfeats = fit.preprocessor.transform(self.arrays.clinical).features
            vprobs = self._test_probs(fit.model, split, vfeats)
            self._record(variant, split, vprobs, epochs=fit.epochs, hp=hp.key())
            self.ablation_members.setdefault(variant, []).append(
                BundleMember(fit.model, fit.preprocessor)
            )
        return BundleMember(best.model, best.preprocessor)

    def figures(self) -> None:
        for variant, (labels, chunks) in self.pooled.items():
            truth = np.asarray(labels, dtype=np.int64)
            probs = np.concatenate(chunks)
            title = VARIANT_TITLES.get(variant, variant)
            plot_roc(self.out / f"roc_{variant}.png", truth, probs, title)
            cm = np.asarray(classification_metrics(truth.tolist(), probs)["confusion"])
            plot_confusion(self.out / f"confusion_{variant}.png", cm, title)


def _ship_localiser(
    cases: list[CaseRecord], out: Path, config: TrainConfig, status: Status | None
) -> None:
    """Train the learned localiser into the bundle just written to ``out``."""

    def progress(epoch: int, total: int, loss: float, wall: float, cpu: float) -> None:
        if status is not None:
            status(f"localiser loss {loss:.3f} ({wall:.0f} s/epoch)", epoch, total)

    ship_localiser(
        cases, out, epochs=config.localiser_epochs, seed=config.seed, status=status,
        progress=progress,
    )  # fmt: skip


def _classes(targets: npt.NDArray[np.int64]) -> str:
    """The cohort's NCCN class counts, its tumor-free and unknown-category patients if any."""
    classes = np.bincount(targets[targets >= 0], minlength=3).tolist()
    free = int((targets == NO_TUMOR).sum())
    unknown = int((targets == NCCN_UNKNOWN).sum())
    return (
        f"classes {classes}"
        + (f", {free} tumor-free" if free else "")
        + (f", {unknown} NCCN unknown" if unknown else "")
    )


def _augmentations(config: TrainConfig) -> str:
    """What the training augments: the paper's chain and the extra ones switched on."""
    if not config.augment:
        return "none"
    extra = config.augmentation.active
    return "METHOD.md's" + (f" + {', '.join(extra)}" if extra else "")


def _pathway(config: TrainConfig) -> str:
    pooling = (
        "bottleneck global average + contact pooling at the tumor-vessel interface"
        if config.image_pooling == ImagePooling.CONTACT
        else "bottleneck global average (METHOD.md)"
    )
    if config.freeze_image_branch:
        return f"{pooling}; image branch frozen from `{config.init_from}`, heads trained"
    if config.init_from:
        return f"{pooling}; image branch warm-started from `{config.init_from}`"
    return pooling


def _pretrained(monai: dict[str, Any] | None) -> list[str]:
    """The report line on MONAI weights the image branch started from (none without)."""
    if monai is None:
        return []
    skipped = len(monai["tensors_skipped"])
    return [
        f"- pretrained weights: `{monai['file']}` ({monai['layout']}, sha256 "
        f"{monai['sha256'][:12]}...): {monai['tensors_copied']} tensors copied, {skipped} "
        f"skipped; not initialised from it: {', '.join(monai['modules_not_initialised']) or '-'}"
    ]


def _fusion(members: list[BundleMember]) -> str:
    weights = [w for m in members if (w := m.model.clinical_expert_weight) is not None]
    if not weights:
        return "concatenated image and clinical vectors -> fusion head (METHOD.md)"
    listed = ", ".join(f"{w:.2f}" for w in weights)
    return (
        "logit sum: image expert + clinical expert x weight fitted on inner validation "
        f"(weight per fold: {listed})"
    )


def train_cohort(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    *,
    status: Status | None = None,
    bundle_name: str = "pancreas-resectability",
    bundle_version: str = "0.1.0",
) -> TrainingRun:
    """Run the nested cross-validation on ``data_dir`` and write report and bundle to ``out``.

    Parameters
    ----------
    data_dir
        Cohort folder (see :mod:`training.dataset`).
    out
        Output folder: ``report.md``, figures, ``folds.json``, ``checkpoints/``, ``cache/``,
        the bundle (``bundle.json`` + ``model-*.safetensors``) and one bundle per trained
        ablation variant under ``ablations/<variant>/``.
    config
        Protocol and grid.
    status
        Optional progress callback.

    Returns
    -------
    TrainingRun
        Summary, per-fold rows and the bundle path.

    Raises
    ------
    ValueError
        On invalid data or config.
    OSError
        If files cannot be read or written.
    """
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    preprocess = PreprocessConfig(config.target_size, config.cube_mm)
    cases = discover_cases(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = load_cohort(cases, preprocess, out / "cache", status, workers=config.workers)
    digest = data_hash(arrays)
    splits = nested_splits(arrays.targets.tolist(), config.outer_folds, config.seed)
    monai: dict[str, Any] | None = None
    source: LoadedBundle | None = None
    init: list[Path] = []
    if config.init_from and is_monai_checkpoint(config.init_from):
        init, monai = monai_init(config)
    elif config.init_from:
        source = load_init_bundle(Path(config.init_from))
        init = image_branch_weights(source, digest, config)
    trainer = _Trainer(arrays, config, out, status, init)
    members = [trainer.run_fold(split) for split in splits[: config.folds_to_run]]
    trainer.figures()
    device = pick_device(config.device)
    header = [
        f"- cohort: {len(cases)} patients, {_classes(arrays.targets)}",
        f"- labels: {label_provenance(cases)}",
        *partial_label_lines(cases),
        f"- input: {config.target_size}^3 voxels of {preprocess.spacing_mm:g} mm "
        f"({config.cube_mm:g} mm cube); device: {device.type}",
        f"- outer folds run: {config.folds_to_run} of {config.outer_folds}; "
        f"grid: {len(config.grid())} point(s); max epochs {config.max_epochs}, "
        f"patience {config.patience}",
        f"- image pathway: {_pathway(config)}",
        f"- fusion: {_fusion(members)}",
        f"- augmentation: {_augmentations(config)}",
        *_pretrained(monai),
        f"- training data sha256: {digest}",
    ]
    summary = write_report(out / "report.md", trainer.folds, header)
    (out / "folds.json").write_text(json.dumps(trainer.folds, indent=1) + "\n", encoding="utf-8")
    training = {
        "config": config.to_dict(),
        "patients": len(cases),
        "device": device.type,
        "image_branch_cohorts": image_branch_cohorts(
            config, digest, source.meta if source is not None else None
        ),
    }
    if monai is not None:
        training["init_from_monai"] = monai
    bundle_json = save_bundle(
        out, members, preprocess=preprocess, name=bundle_name, version=bundle_version,
        data_hash=digest, metrics=summary, training=training,
        weights_dtype=config.weights_dtype,
        domain=cohort_domain(cases, preprocess, source=f"training cohort {data_dir.name}"),
    )  # fmt: skip
    if config.localiser_epochs > 0:
        _ship_localiser(cases, out, config, status)
    ablations = save_ablation_bundles(
        out, trainer.ablation_members, preprocess=preprocess, name=bundle_name,
        version=bundle_version, data_hash=digest, summary=summary, training=training,
        weights_dtype=config.weights_dtype,
    )  # fmt: skip
    return TrainingRun(out, summary, trainer.folds, bundle_json, ablations)
