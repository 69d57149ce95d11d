"""The detection training cubes of a cohort: stage 1's and stage 2's, with their targets.

Stage 1's cube is centred on the scan's middle (as at analysis) and its target is the
pancreas including any lesion and the duct (labels ``pancreas``, ``tumor``,
``pancreatic_duct``); stage 2's is centred on the
truth pancreas' bounding-box centre plus a per-patient jitter and its target is the lesion
(label ``tumor``: the PDAC; other labels are background). Cubes are cached as ``.npz`` under
the run's ``cache/`` folder, named by patient, cube and the source files' fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.parallel import ordered_map
from inference.tasks.detection.roi import read_cube, roi_centre, scan_centre
from inference.volume import Volume, read_nifti
from pancreas_contracts.labels import label_by_name
from training.dataset import CaseRecord, source_fingerprint
from training.detection_config import DetectionConfig

__all__ = ["LESION_LABEL", "PANCREAS_LABELS", "DetectionArrays", "load_detection_arrays"]

LESION_LABEL = label_by_name("tumor").value
PANCREAS_LABELS = (
    label_by_name("pancreas").value,
    LESION_LABEL,
    label_by_name("pancreatic_duct").value,
)


@dataclass(frozen=True)
class DetectionArrays:
    """A cohort's training cubes in memory (row ``n`` = patient ``n``)."""

    stage1_images: npt.NDArray[np.float32]
    stage1_masks: npt.NDArray[np.uint8]
    stage2_images: npt.NDArray[np.float32]
    stage2_masks: npt.NDArray[np.uint8]
    positive: npt.NDArray[np.int64]
    patient_ids: tuple[str, ...]


def truth_pancreas_centre(label: Volume) -> tuple[float, float, float]:
    """RAS+ bounding-box centre of the labelled pancreas (scan middle if there is none)."""
    mask = np.isin(np.asarray(label.array), PANCREAS_LABELS)
    centre = roi_centre(mask, label.affine)
    return centre if centre is not None else scan_centre(label)


def _case_cubes(
    case: CaseRecord, config: DetectionConfig, jitter: tuple[float, float, float]
) -> tuple[npt.NDArray[np.float32], ...]:
    if case.image is None or case.label is None:
        raise ValueError(f"patient {case.patient_id}: detection training needs NIfTI files")
    image, label = read_nifti(case.image), read_nifti(case.label)
    first = read_cube(image, config.stage1, scan_centre(image), label)
    centre = np.asarray(truth_pancreas_centre(label)) + np.asarray(jitter)
    second = read_cube(image, config.stage2, tuple(centre.tolist()), label)
    assert first.label is not None and second.label is not None
    return (
        first.image,
        np.isin(first.label, PANCREAS_LABELS).astype(np.float32),
        second.image,
        (second.label == LESION_LABEL).astype(np.float32),
    )


def _cached(
    case: CaseRecord, jitter: tuple[float, float, float], config: DetectionConfig, cache: Path
) -> tuple[npt.NDArray[np.float32], ...]:
    s1, s2 = config.stage1, config.stage2
    key = f"{s1.cube_size}_{s1.cube_mm:g}_{s2.cube_size}_{s2.cube_mm:g}_{config.roi_jitter_mm:g}"
    file = cache / f"{case.patient_id}_det_{key}_{config.seed}_{source_fingerprint(case)}.npz"
    if file.is_file():
        with np.load(file) as saved:
            return tuple(saved[f"a{i}"] for i in range(4))
    arrays = _case_cubes(case, config, jitter)
    cache.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".partial.npz")
    np.savez_compressed(partial, a0=arrays[0], a1=arrays[1], a2=arrays[2], a3=arrays[3])
    partial.replace(file)
    return arrays


def load_detection_arrays(
    cases: list[CaseRecord], config: DetectionConfig, cache: Path
) -> DetectionArrays:
    """Every case's cubes (from the cache, else read and cached), ``config.workers`` at once.

    Raises
    ------
    ValueError
        If a case has no NIfTI image or label map.
    """
    rng = np.random.default_rng(config.seed)
    jitters = [
        tuple(float(v) for v in rng.uniform(-config.roi_jitter_mm, config.roi_jitter_mm, 3))
        for _ in cases
    ]
    pairs = list(zip(cases, jitters, strict=True))
    rows = list(ordered_map(_cached_pair, pairs, config, cache, workers=config.workers))
    return DetectionArrays(
        np.stack([r[0] for r in rows]).astype(np.float32),
        np.stack([r[1] for r in rows]).astype(np.uint8),
        np.stack([r[2] for r in rows]).astype(np.float32),
        np.stack([r[3] for r in rows]).astype(np.uint8),
        np.array([int(c.has_tumor) for c in cases], dtype=np.int64),
        tuple(c.patient_id for c in cases),
    )


def _cached_pair(
    pair: tuple[CaseRecord, tuple[float, float, float]], config: DetectionConfig, cache: Path
) -> tuple[npt.NDArray[np.float32], ...]:
    return _cached(pair[0], pair[1], config, cache)
