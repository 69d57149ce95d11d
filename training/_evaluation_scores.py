"""Scores of the end-to-end pipeline against the truth (``pancreas-node evaluate``; numpy only).

Per patient (:func:`score_label_map`): the pipeline's label map, on the CT grid it analysed, is
brought onto the truth label map's grid by nearest neighbour in world coordinates
(:func:`resample_nearest`), then

- **Dice per structure** for the 15 foreground labels of :data:`pancreas_contracts.labels.LABELS`
  (``None`` where the truth does not hold the structure: a predicted structure there is not a
  Dice of 0 but, for the tumor, a false tumor, counted apart);
- **tumor**: true and predicted volume (mL), Dice, and *found*: a predicted tumor voxel overlaps
  the true tumor, i.e. some predicted tumor component touches it (the stricter rate, tumor Dice
  >= :data:`FOUND_DICE`, is reported beside it).

Over the cohort (:func:`summarise_pipeline`): mean Dice per structure; tumor found when present
(refused or failed tumor-bearing patients count as not found); false tumors in tumor-free
patients (any predicted tumor voxel) and categories given to them; contact-angle MAE per vessel
(truth ``contact_<vessel>`` against the result's measured angle, over the patients with both;
how many had no measured angle is reported); and the withheld rate: tumor-bearing patients whose
result has no category (no tumor found, out of domain, refused or failed), by reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from inference.volume import Volume
from pancreas_contracts.labels import LABELS
from pancreas_contracts.result import KEY_VESSELS

__all__ = [
    "FOUND_DICE",
    "STRUCTURES",
    "label_dice",
    "resample_nearest",
    "score_label_map",
    "summarise_pipeline",
    "tumor_scores",
]

#: The foreground labels scored, by value.
STRUCTURES: Final[Mapping[int, str]] = {lab.value: lab.name for lab in LABELS if lab.value}
#: Tumor Dice from which the stricter "found" rate counts a tumor as found.
FOUND_DICE: Final = 0.1
_TUMOR: Final = 2
_SLAB_VOXELS: Final = 1 << 22  # bounds the memory of one resampling step (~100 MB)

LabelArray = npt.NDArray[np.uint8]


def resample_nearest(
    source: Volume, shape: tuple[int, int, int], affine: npt.NDArray[np.float64]
) -> LabelArray:
    """``source``'s labels at the voxel centres of the grid ``(shape, affine)`` (0 outside).

    Nearest neighbour in world coordinates, slab by slab along the last axis; identical grids
    are copied as they are.
    """
    values = np.asarray(source.array)
    if tuple(values.shape) == tuple(shape) and np.allclose(source.affine, affine, atol=1e-4):
        return values.astype(np.uint8, copy=True)
    out = np.zeros(shape, dtype=np.uint8)
    to_source = np.linalg.inv(np.asarray(source.affine, dtype=np.float64)) @ affine
    step = max(1, _SLAB_VOXELS // max(1, shape[0] * shape[1]))
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    plane = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
    limits = np.asarray(values.shape)
    for k0 in range(0, shape[2], step):
        ks = np.arange(k0, min(shape[2], k0 + step), dtype=np.float64)
        grid = np.concatenate(
            [np.tile(plane, (len(ks), 1)), np.repeat(ks, len(plane))[:, None]], axis=1
        )
        idx = np.rint(grid @ to_source[:3, :3].T + to_source[:3, 3]).astype(np.int64)
        inside = ((idx >= 0) & (idx < limits)).all(axis=1)
        slab = np.zeros(len(grid), dtype=np.uint8)
        slab[inside] = values[idx[inside, 0], idx[inside, 1], idx[inside, 2]]
        out[:, :, k0 : k0 + len(ks)] = slab.reshape(len(ks), shape[0], shape[1]).transpose(1, 2, 0)
    return out


def label_dice(pred: LabelArray, truth: LabelArray) -> dict[str, float | None]:
    """Dice per structure of :data:`STRUCTURES` (``None`` where the truth lacks it)."""
    pred_counts = np.bincount(pred.ravel(), minlength=16)
    truth_counts = np.bincount(truth.ravel(), minlength=16)
    both = np.bincount(truth[pred == truth].ravel(), minlength=16)
    out: dict[str, float | None] = {}
    for value, name in STRUCTURES.items():
        t = int(truth_counts[value])
        out[name] = None if t == 0 else float(2 * both[value] / (t + int(pred_counts[value])))
    return out


def tumor_scores(pred: LabelArray, truth: LabelArray, voxel_ml: float) -> dict[str, Any]:
    """True/predicted tumor volume (mL), Dice (``None`` without either) and overlap."""
    p, t = pred == _TUMOR, truth == _TUMOR
    n_p, n_t, n_both = int(p.sum()), int(t.sum()), int(np.logical_and(p, t).sum())
    return {
        "true_ml": n_t * voxel_ml,
        "pred_ml": n_p * voxel_ml,
        "dice": None if n_p + n_t == 0 else 2.0 * n_both / (n_p + n_t),
        "overlap": n_both > 0,
    }


def score_label_map(predicted: Volume, truth: Volume) -> dict[str, Any]:
    """Per-structure Dice and the tumor scores of one case, on the truth's grid."""
    reference = np.asarray(truth.array).astype(np.uint8)
    shape = (int(reference.shape[0]), int(reference.shape[1]), int(reference.shape[2]))
    pred = resample_nearest(predicted, shape, np.asarray(truth.affine, dtype=np.float64))
    voxel_ml = float(np.prod(truth.spacing)) / 1000.0
    return {"dice": label_dice(pred, reference), "tumor": tumor_scores(pred, reference, voxel_ml)}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _rate(count: int, n: int) -> dict[str, Any]:
    return {"count": count, "n": n, "rate": count / n if n else None}


def _structures(cases: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    scored = [c["scores"]["dice"] for c in cases if c.get("scores")]
    out: dict[str, dict[str, Any]] = {}
    for name in STRUCTURES.values():
        values = [float(d[name]) for d in scored if d.get(name) is not None]
        out[name] = {"mean": _mean(values), "n": len(values)}
    return out


def _tumor_present(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    # Only where the tumor is labelled (truth.csv's labelled) can it be found or missed.
    bearing = [c for c in cases if c["has_tumor"] and c.get("tumor_labelled", True)]
    scored = [c["scores"]["tumor"] for c in bearing if c.get("scores")]
    found = sum(bool(s["overlap"]) for s in scored)
    strict = sum((s["dice"] or 0.0) >= FOUND_DICE for s in scored)
    return {
        "found": _rate(found, len(bearing)),
        "found_dice": {**_rate(strict, len(bearing)), "min_dice": FOUND_DICE},
        "scored": len(scored),
        "dice_mean": _mean([float(s["dice"] or 0.0) for s in scored]),
        "pred_ml_mean": _mean([float(s["pred_ml"]) for s in scored]),
        "true_ml_mean": _mean([float(s["true_ml"]) for s in scored]),
    }


def _tumor_free(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    free = [c for c in cases if not c["has_tumor"]]
    scored = [c["scores"]["tumor"] for c in free if c.get("scores")]
    false = sum(float(s["pred_ml"]) > 0 for s in scored)
    given = sum(c.get("category") is not None for c in free)
    return {
        "n": len(free),
        "scored": len(scored),
        "false_tumor": _rate(false, len(scored)),
        "category_given": _rate(given, len(free)),
        "pred_ml_mean": _mean([float(s["pred_ml"]) for s in scored]),
    }


def _contact_mae(cases: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for vessel in KEY_VESSELS:
        truth = [c for c in cases if vessel in (c.get("contact_true") or {})]
        pairs = [
            (float(c["contact_true"][vessel]), float(c["contact_deg"][vessel]))
            for c in truth
            if (c.get("contact_deg") or {}).get(vessel) is not None
        ]
        errors = [abs(t - m) for t, m in pairs]
        out[vessel] = {"n_truth": len(truth), "n_measured": len(pairs), "mae_deg": _mean(errors)}
    return out


def _withheld(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    bearing = [c for c in cases if c["has_tumor"]]
    reasons: dict[str, int] = {}
    for case in bearing:
        if case.get("category") is None:
            why = str(case.get("reason") or case.get("outcome") or "no category")
            reasons[why] = reasons.get(why, 0) + 1
    return {**_rate(sum(reasons.values()), len(bearing)), "reasons": dict(sorted(reasons.items()))}


def summarise_pipeline(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The cohort scores of the end-to-end pipeline (see the module notes).

    Each case needs ``has_tumor``, ``category`` (``None`` when withheld), and may have
    ``scores`` (:func:`score_label_map`; absent when no label map was made), ``contact_true``,
    ``contact_deg``, ``reason`` and ``outcome``.
    """
    return {
        "structures_dice": _structures(cases),
        "tumor_present": _tumor_present(cases),
        "tumor_free": _tumor_free(cases),
        "contact_mae": _contact_mae(cases),
        "withheld": _withheld(cases),
    }
