"""The real-CT check of ``pancreas-node evaluate``: NIH Pancreas-CT case 0001 (issue 21, item 5).

The only real scan with a pancreas mask here (read-only under the shared data folder, never
trained on; its ``README.md`` gives the geometry): ``dicom/`` and ``pancreas_label.nii.gz`` (1 =
pancreas) in the same world coordinates. Reported every time:

- the **learned localiser's** centre (the bundle's, alone, as it runs inside the node's
  cross-check) and the anatomical landmarks' centre, each as the distance in mm to the mask's
  centroid;
- the node's answer as it would give it (a category, no tumor, or the refusal and its reason);
- the **pancreas Dice** of the pipeline's segmentation (labels pancreas + tumor against the
  mask, on the mask's grid). When the node refuses at localisation, the pipeline is rerun
  forced past the refusal (:data:`training._evaluation_pipeline.FORCED_NOTE`) and the report
  says so; the predicted tumor volume in this healthy pancreas (a false tumor) and whether a
  category was given are reported too. After a refusal the pipeline also runs with the cube at
  the anatomical landmarks' centre (``segmentation_at_landmarks``): whether the network
  segments this CT when the cube is placed well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

from inference.analysis import LandmarkLocaliser, LocalisationEstimate
from inference.volume import Volume, read_nifti
from inference.volume_io import read_dicom_series
from training._evaluation_pipeline import PipelineProbe
from training._evaluation_scores import resample_nearest

__all__ = ["NIH_CASE", "evaluate_real_ct"]

#: The case folder's name inside the shared data folder.
NIH_CASE: Final = "pancreas-ct-0001"
_MASK: Final = "pancreas_label.nii.gz"
_PANCREAS: Final = (1, 2)  # the gland including any tumor


def _distance(loc: LocalisationEstimate, centroid: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {
        "distance_mm": float(np.linalg.norm(np.subtract(loc.centre_mm, centroid))),
        "centre_mm": [float(v) for v in loc.centre_mm],
        "confidence": float(loc.confidence),
        "found": bool(loc.found),
        "method": loc.method,
    }


def _segmentation(label_map: Volume | None, mask: Volume) -> dict[str, Any] | None:
    if label_map is None:
        return None
    truth = np.asarray(mask.array) > 0
    shape = (int(truth.shape[0]), int(truth.shape[1]), int(truth.shape[2]))
    pred = resample_nearest(label_map, shape, np.asarray(mask.affine, dtype=np.float64))
    pancreas = np.isin(pred, _PANCREAS)
    both, total = int(np.logical_and(pancreas, truth).sum()), int(pancreas.sum() + truth.sum())
    voxel_ml = float(np.prod(mask.spacing)) / 1000.0
    return {
        "pancreas_dice": 2.0 * both / total if total else None,
        "pancreas_pred_ml": float(pancreas.sum()) * voxel_ml,
        "pancreas_true_ml": float(truth.sum()) * voxel_ml,
        # A healthy pancreas: any predicted tumor is a false tumor.
        "tumor_pred_ml": float((pred == 2).sum()) * voxel_ml,
    }


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("category", "outcome", "reason", "message", "tumor_volume_ml", "seconds")
    return {k: record.get(k) for k in keys}


def evaluate_real_ct(case_dir: Path, probe: PipelineProbe, out: Path) -> dict[str, Any]:
    """Localisation distances, the node's answer and the pancreas Dice on the real case.

    Parameters
    ----------
    case_dir
        The case folder (``dicom/`` and ``pancreas_label.nii.gz``).
    probe
        The observed pipeline of the evaluated bundle.
    out
        Folder for the analysis outputs (``node/`` as the node would answer, ``forced/`` past
        a localiser refusal).

    Returns
    -------
    dict
        The ``real_ct`` section of ``evaluation.json``.

    Raises
    ------
    ValueError
        If the CT or the mask cannot be read (volume errors are ``ValueError``).
    OSError
        On unreadable files.
    """
    volume = read_dicom_series(case_dir / "dicom").volume
    mask = read_nifti(case_dir / _MASK)
    voxels = np.argwhere(np.asarray(mask.array) > 0).astype(np.float64)
    if len(voxels) == 0:
        raise ValueError(f"{_MASK} holds no pancreas")
    centroid = mask.voxel_to_world(voxels).mean(axis=0)
    learned = probe.analyzer.bundle.localiser
    report: dict[str, Any] = {
        "case": case_dir.name,
        "mask_centroid_mm": [float(v) for v in centroid],
        "learned_localiser": None if learned is None else _distance(learned(volume), centroid),
        "landmarks": _distance(LandmarkLocaliser()(volume), centroid),
    }
    node, label_map = probe.analyse(case_dir / "dicom", None, out / "node", force=False)
    report["node"] = _answer(node)
    report["node_localisation"] = (
        None if probe.localiser.last is None else _distance(probe.localiser.last, centroid)
    )
    report["forced"] = node.get("reason") == "not-localised"
    if report["forced"]:
        forced, label_map = probe.analyse(case_dir / "dicom", None, out / "forced", force=True)
        report["forced_answer"] = _answer(forced)
    report["segmentation"] = _segmentation(label_map, mask)
    if report["forced"]:
        # Whether the network segments this real CT when its cube is placed well: the same
        # pipeline with the cube at the anatomical landmarks' centre.
        placed, label_map = probe.analyse(
            case_dir / "dicom", None, out / "landmarks", force=True, localiser=LandmarkLocaliser()
        )
        report["landmarks_answer"] = _answer(placed)
        report["segmentation_at_landmarks"] = _segmentation(label_map, mask)
    return report
