"""Partial labels of a training cohort: the labelled matrix, its checks and its report lines.

A case's label map may annotate only some of the 15 structures (truth.csv's ``labelled``,
:mod:`training.dataset`). Training carries that as a ``(N, NUM_CLASSES)`` boolean matrix on
:class:`training._loop.CohortArrays` (``None`` when every case labels everything, so fully
labelled cohorts train, hash and report exactly as before); the segmentation loss
marginalises the unlabelled classes per case and every per-structure Dice counts only the
cases that label the structure (:func:`training._metrics.labelled_dice_counts`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pancreas_contracts.labels import LABELS, NUM_CLASSES
from training.dataset import NCCN_UNKNOWN, CaseRecord, labelled_names

__all__ = ["check_unlabelled_voxels", "labelled_matrix", "partial_label_lines"]

# More partial cases than this and the report gives their label sets' counts, not their IDs.
_LISTED = 12


def labelled_matrix(cases: Sequence[CaseRecord]) -> npt.NDArray[np.bool_] | None:
    """``(N, NUM_CLASSES)`` labelled classes (background always ``True``); ``None`` when all are."""
    if not any(case.partial for case in cases):
        return None
    out = np.zeros((len(cases), NUM_CLASSES), dtype=bool)
    out[:, 0] = True
    for row, case in enumerate(cases):
        out[row, sorted(case.labelled)] = True
    return out


def check_unlabelled_voxels(case: CaseRecord, label: npt.NDArray[np.uint8]) -> None:
    """Refuse a label cube with voxels of a structure its case does not label.

    Raises
    ------
    ValueError
        Naming the case and the structure: truth.csv's ``labelled`` and the file disagree.
    """
    if not case.partial:
        return
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=NUM_CLASSES))
    extra = [int(v) for v in present if v and v not in case.labelled]
    if extra:
        names = ", ".join(LABELS[v].name for v in extra)
        raise ValueError(
            f"patient {case.patient_id}: label map has {names} voxels, but truth.csv's "
            f"labelled names only {labelled_names(case.labelled)}"
        )


def partial_label_lines(cases: Sequence[CaseRecord]) -> list[str]:
    """The report's lines on the cohort's partial labels (none for a fully labelled one).

    How many cases label each structure, and which cases are partial: their IDs with their
    label sets when few, else how many cases have each label set.
    """
    partial = [case for case in cases if case.partial]
    unknown = sum(case.nccn_label == NCCN_UNKNOWN for case in cases)
    lines = []
    if unknown:
        lines.append(
            f"- NCCN category unknown: {unknown} patient(s), left out of the classification "
            "loss, model selection and every NCCN metric (not counted as tumor-free)"
        )
    if not partial:
        return lines
    counts = Counter(value for case in cases for value in case.labelled)
    per = ", ".join(f"{label.name} {counts[label.value]}" for label in LABELS if label.value)
    lines.append(
        f"- partial labels: {len(partial)} of {len(cases)} patients label only some "
        "structures (marginal loss: their unlabelled structures merged into the background; "
        "per-structure Dice over the patients that label the structure)"
    )
    lines.append(f"- patients labelling each structure: {per}")
    if len(partial) <= _LISTED:
        listed = "; ".join(f"{c.patient_id}: {labelled_names(c.labelled)}" for c in partial)
        lines.append(f"- partially labelled patients: {listed}")
    else:
        sets = Counter(labelled_names(case.labelled) for case in partial)
        listed = "; ".join(f"{names} ({n} patients)" for names, n in sets.most_common())
        lines.append(f"- partial label sets: {listed}")
    return lines
