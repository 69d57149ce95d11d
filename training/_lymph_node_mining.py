"""What the trained networks see on their own training rows, fed back into training.

- :func:`with_predicted_attention`: once the organ segmenter is trained, each training row's
  ``A^all`` is recomputed from the **predicted** structures (on the same node cube), so that
  the node segmenter learns on the attention it will get at analysis. The paper trains on
  the predicted organs too; attention from the truth organs taught the segmenter to trust
  thin vessels that the CPU organ segmenter never finds, and cut its recall at analysis.
- :func:`false_positive_crops`: the node segmenter's candidates (run end to end, as at
  analysis) that touch no truth node, cut as the classifier's crops: the *not a node* class
  of the false-positive reduction stage
  (:attr:`inference.tasks.lymph_nodes.model.NodeClassifierConfig.not_node_class`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from inference.tasks.lymph_nodes.task import LymphNodeAnalysis, LymphNodeModel
from inference.volume import Volume
from inference.volume_io import resample_to_reference
from training._lymph_node_data import (
    CaseArrays,
    LymphNodeCase,
    node_crop,
    read_case_volumes,
    seg_attention,
)
from training.lymph_node_config import LymphNodeConfig

__all__ = ["false_positive_crops", "on_truth_grid", "with_predicted_attention"]


def on_truth_grid(instances: npt.NDArray[np.int32], cube: Volume, nodes: Volume) -> (
    npt.NDArray[np.int64]
):  # fmt: skip
    """An instance map on the node cube ``cube``, resampled onto ``nodes.nii.gz``'s grid.

    Nearest neighbour: an instance smaller than a truth voxel can vanish.
    """
    moved = resample_to_reference(Volume(instances, cube.affine), nodes, 0, fill_value=0)
    return np.asarray(moved.array, dtype=np.int64)


def with_predicted_attention(
    model: LymphNodeModel,
    cases: Sequence[LymphNodeCase],
    arrays: Sequence[CaseArrays],
    config: LymphNodeConfig,
) -> list[CaseArrays]:
    """``arrays`` with ``seg_attention`` from ``model``'s organ segmenter (same node cubes)."""
    out = []
    for case, row in zip(cases, arrays, strict=True):
        organs = model.organ_map(read_case_volumes(case).image)
        centre = tuple(float(v) for v in row.seg_centre)
        out.append(replace(row, seg_attention=seg_attention(organs, centre, config)))
    return out


def _missed_truth(analysis: LymphNodeAnalysis, nodes: Volume) -> list[int]:
    """Candidates (numbers, from 1) that touch no truth node on the truth grid."""
    found = on_truth_grid(analysis.candidates, analysis.probability, nodes)
    truth = np.asarray(nodes.array) > 0
    touching = set(np.unique(found[truth]).tolist())
    present = set(np.unique(found).tolist())
    return [k for k in sorted(present - {0}) if k not in touching]


def false_positive_crops(
    model: LymphNodeModel,
    cases: Sequence[LymphNodeCase],
    config: LymphNodeConfig,
    per_case: int = 40,
) -> npt.NDArray[np.float32]:
    """Crops of ``model``'s candidates that touch no truth node, at most ``per_case`` each.

    ``model`` should keep every candidate (a bundle ``node_threshold`` of 0). A candidate that
    overlaps a truth node without hitting it (IoU < 0.3) is not used: it is a badly outlined
    node, not something else.
    """
    size = config.classifier.crop_size
    crop_mm = size * config.segmenter.spacing_mm
    crops = []
    for case in cases:
        volumes = read_case_volumes(case)
        analysis = model.analyse_with_maps(volumes.image)
        for k in _missed_truth(analysis, volumes.nodes)[:per_case]:
            lx, ly, z = analysis.result.nodes[k - 1].centre_lps_mm
            crops.append(node_crop(volumes.image, (-lx, -ly, z), size, crop_mm))
    if not crops:
        return np.zeros((0, size, size, size), np.float32)
    return np.stack(crops).astype(np.float32)
