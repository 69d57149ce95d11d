"""Training and held-out evaluation of the learned localiser (:mod:`inference.localiser`).

Data: a cohort folder as :func:`training.dataset.discover_cases` reads it; every case needs its
label map. Each CT is brought onto the coarse grid once (:func:`coarse_case`, cached as
``.npz``) with its pancreas mask (labels 1 and 2, anti-aliased like the CT, then > 0.5), its
true pancreas centroid (mm, from the full-resolution label map) and up to 4000 of the label
map's pancreas voxel centres (mm) for the held-out box check.

Fit: only the rows it is given; MONAI ``DiceCELoss`` (softmax, Dice on the pancreas channel),
AdamW, cosine annealing per step, fixed seed, a fixed number of epochs. Each batch is padded to
a common shape (a multiple of the network stride, at least 4 voxels more than its largest
case) and every case placed at a random offset in it, so the network cannot learn the scan's
edge as a landmark. Held-out rows: distance from the estimated centre to the true centroid and
the fraction of the true mask inside the estimated box.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from inference.localiser import (
    LOCALISER_FORMAT,
    LearnedLocaliser,
    LocaliserConfig,
    build_network,
    coarse_volume,
)
from inference.volume import Volume, read_nifti
from inference.volume_io import read_dicom_series, resample_to_reference
from training.dataset import CaseRecord, source_fingerprint

__all__ = [
    "CoarseCase",
    "LocaliserFit",
    "coarse_case",
    "evaluate_localiser",
    "load_coarse_cases",
    "train_localiser",
]

EpochProgress = Callable[[int, int, float, float, float], None]
"""Called after each epoch with ``(epoch, epochs, mean loss, wall seconds, CPU seconds)``."""

_PANCREAS_LABELS: Final = (1, 2)
_MAX_POINTS: Final = 4000
_SHIFT_VOXELS: Final = 4


@dataclass(frozen=True)
class CoarseCase:
    """One case on the localiser's grid.

    Attributes
    ----------
    patient_id
        The cohort's patient ID (never written to the bundle).
    grid
        CT in HU on the coarse grid (float32, RAS+ affine).
    mask
        Pancreas mask on the same grid (uint8).
    centroid_mm
        True pancreas centroid from the full-resolution label map.
    points_mm
        Up to 4000 full-resolution pancreas voxel centres (mm).
    """

    patient_id: str
    grid: Volume
    mask: npt.NDArray[np.uint8]
    centroid_mm: npt.NDArray[np.float64]
    points_mm: npt.NDArray[np.float32]


@dataclass(frozen=True)
class LocaliserFit:
    """A trained localiser, its held-out metrics and how it was trained (JSON-ready)."""

    localiser: LearnedLocaliser
    metrics: dict[str, Any]
    training: dict[str, Any]


def _read_image(case: CaseRecord) -> Volume:
    if case.image is not None:
        return read_nifti(case.image)
    if case.dicom_dir is not None:
        return read_dicom_series(case.dicom_dir).volume
    raise ValueError(f"patient {case.patient_id}: no image")


def coarse_case(case: CaseRecord, spacing_mm: float, cache: Path | None = None) -> CoarseCase:
    """Bring one case onto the coarse grid (read from / written to ``cache`` when given).

    Raises
    ------
    ValueError
        If the case has no label map, no pancreas in it, or an unreadable image.
    OSError
        On unreadable files.
    """
    file = None
    if cache is not None:
        tag = f"loc{spacing_mm:g}mm_v{LOCALISER_FORMAT}_{source_fingerprint(case)}"
        file = cache / f"{case.patient_id}_{tag}.npz"
        if file.is_file():
            with np.load(file) as saved:
                grid = Volume(saved["image"], saved["affine"].astype(np.float64))
                return CoarseCase(
                    case.patient_id, grid, saved["mask"], saved["centroid"], saved["points"]
                )
    if case.label is None:
        raise ValueError(f"patient {case.patient_id}: the localiser needs label.nii.gz")
    grid = coarse_volume(_read_image(case), spacing_mm)
    label = read_nifti(case.label)
    inside = np.isin(np.asarray(label.array), _PANCREAS_LABELS)
    if not inside.any():
        raise ValueError(f"patient {case.patient_id}: no pancreas (labels 1-2) in label.nii.gz")
    voxels = np.argwhere(inside)
    centroid = label.voxel_to_world(voxels.mean(axis=0)[None, :])[0]
    rng = np.random.default_rng(0)
    pick = voxels if len(voxels) <= _MAX_POINTS else rng.choice(voxels, _MAX_POINTS, False)
    points = label.voxel_to_world(pick).astype(np.float32)
    sigma = [max(0.0, 0.5 * (spacing_mm / s - 1.0)) for s in label.spacing]
    fraction = ndimage.gaussian_filter(inside.astype(np.float32), sigma=sigma, mode="constant")
    coarse = resample_to_reference(Volume(fraction, label.affine), grid, 1, fill_value=0.0)
    mask = (np.asarray(coarse.array) > 0.5).astype(np.uint8)
    image = np.asarray(grid.array, dtype=np.float32)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            file, image=image, affine=grid.affine, mask=mask, centroid=centroid, points=points
        )
    return CoarseCase(case.patient_id, grid, mask, centroid, points)


def load_coarse_cases(
    cases: Sequence[CaseRecord],
    spacing_mm: float,
    cache: Path | None,
    status: Callable[[str, int, int], None] | None = None,
) -> list[CoarseCase]:
    """:func:`coarse_case` for every case, reporting ``(task, done, total)`` to ``status``."""
    out = []
    for done, case in enumerate(cases, start=1):
        out.append(coarse_case(case, spacing_mm, cache))
        if status is not None:
            status("localiser grid", done, len(cases))
    return out


def _batch(
    items: Sequence[CoarseCase], config: LocaliserConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed images and masks placed at random offsets on a common padded canvas."""
    m = config.multiple
    largest = np.max([c.grid.shape for c in items], axis=0) + _SHIFT_VOXELS
    canvas = tuple(int(-(-n // m) * m) for n in largest)
    images = np.zeros((len(items), 1, *canvas), dtype=np.float32)
    masks = np.zeros((len(items), 1, *canvas), dtype=np.int64)
    lo, hi = config.hu_window
    for b, item in enumerate(items):
        shape = item.grid.shape
        at = [int(rng.integers(0, canvas[a] - shape[a] + 1)) for a in range(3)]
        region: tuple[int | slice, ...] = (
            b,
            0,
            *(slice(at[a], at[a] + shape[a]) for a in range(3)),
        )
        hu = np.asarray(item.grid.array, dtype=np.float32)
        images[region] = (np.clip(hu, lo, hi) - lo) / (hi - lo)
        masks[region] = item.mask
    return torch.from_numpy(images), torch.from_numpy(masks)


def _inside(points: npt.NDArray[np.float32], box: Sequence[float]) -> float:
    lo, hi = np.asarray(box[:3]), np.asarray(box[3:])
    return float(((points >= lo) & (points <= hi)).all(axis=1).mean())


def evaluate_localiser(localiser: LearnedLocaliser, cases: Sequence[CoarseCase]) -> dict[str, Any]:
    """Held-out localisation metrics (no patient IDs in them).

    Returns
    -------
    dict
        ``patients``; ``centre_distance_mm`` and ``mask_fraction_in_box`` (median, mean, worst);
        ``found_fraction``; ``per_case`` rows in case order (distance, in-box, confidence,
        found).
    """
    rows = []
    for case in cases:
        estimate = localiser.locate_coarse(case.grid)
        distance = float(np.linalg.norm(np.asarray(estimate.centre_mm) - case.centroid_mm))
        rows.append(
            {
                "distance_mm": round(distance, 2),
                "in_box": round(_inside(case.points_mm, estimate.box_mm), 4),
                "confidence": round(estimate.confidence, 4),
                "found": estimate.found,
            }
        )
    if not rows:
        return {"patients": 0}
    dist = np.array([r["distance_mm"] for r in rows])
    inbox = np.array([r["in_box"] for r in rows])
    return {
        "patients": len(rows),
        "centre_distance_mm": {
            "median": round(float(np.median(dist)), 2),
            "mean": round(float(dist.mean()), 2),
            "max": round(float(dist.max()), 2),
        },
        "mask_fraction_in_box": {
            "median": round(float(np.median(inbox)), 4),
            "mean": round(float(inbox.mean()), 4),
            "min": round(float(inbox.min()), 4),
        },
        "found_fraction": round(float(np.mean([r["found"] for r in rows])), 4),
        "per_case": rows,
    }


def train_localiser(
    cases: Sequence[CoarseCase],
    fit_rows: Sequence[int],
    heldout_rows: Sequence[int],
    config: LocaliserConfig | None = None,
    *,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 4,
    lr: float = 3e-3,
    weight_decay: float = 1e-5,
    progress: EpochProgress | None = None,
) -> LocaliserFit:
    """Fit the localiser on ``fit_rows`` of ``cases`` and evaluate it on ``heldout_rows``.

    Parameters
    ----------
    cases
        The cohort on the coarse grid (:func:`load_coarse_cases`).
    fit_rows, heldout_rows
        Indices into ``cases``; they must not overlap.
    config
        Network and grid (default :class:`LocaliserConfig`); its ``spacing_mm`` must be the
        grid the cases were made on.
    epochs, seed, batch_size, lr, weight_decay
        The fit.
    progress
        Called after each epoch.

    Raises
    ------
    ValueError
        With no fit rows, overlapping rows or bad settings.
    """
    cfg = config or LocaliserConfig()
    fit, held = [int(i) for i in fit_rows], [int(i) for i in heldout_rows]
    if not fit or set(fit) & set(held) or epochs < 1 or batch_size < 1:
        raise ValueError("the localiser needs fit rows, disjoint held-out rows, epochs >= 1")
    from monai.losses.dice import DiceCELoss  # local: MONAI's losses are heavy to import

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = build_network(cfg)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    steps = -(-len(fit) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps)
    seconds, cpu_seconds = [], []
    for epoch in range(1, epochs + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        network.train()
        order = rng.permutation(fit)
        losses = []
        for s in range(steps):
            x, y = _batch(
                [cases[i] for i in order[s * batch_size : (s + 1) * batch_size]], cfg, rng
            )
            optimiser.zero_grad()
            loss = loss_fn(network(x), y)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        if progress is not None:
            progress(epoch, epochs, float(np.mean(losses)), seconds[-1], cpu_seconds[-1])
    localiser = LearnedLocaliser(network.eval(), cfg)
    metrics = evaluate_localiser(localiser, [cases[i] for i in held])
    training = {
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "loss": "MONAI DiceCELoss (softmax; Dice on the pancreas channel)",
        "optimiser": "AdamW, cosine annealing per step",
        "fit_rows": len(fit),
        "heldout_rows": len(held),
        "seconds_per_epoch": round(float(np.median(seconds)), 2),
        "cpu_seconds_per_epoch": round(float(np.median(cpu_seconds)), 2),
        "device": "cpu",
        "threads": torch.get_num_threads(),
    }
    return LocaliserFit(localiser, metrics, training)
