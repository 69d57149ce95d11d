"""Training-test helpers: a tiny in-memory cohort and ``train_cohort`` run on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import training.cohort as training
from inference.clinical_preprocessing import clinical_matrix
from phantom import plan_cohort
from training._loop import CohortArrays
from training.config import TrainConfig
from training.dataset import CaseRecord


def tiny_arrays(n: int = 8) -> CohortArrays:
    """``n`` cases of 32 x 32 x 64 voxels; clinical rows and NCCN labels from phantom plans."""
    plans = plan_cohort(n, seed=9)
    rng = np.random.default_rng(0)
    labels = np.zeros((n, 32, 32, 64), dtype=np.uint8)
    labels[:, 8:20, 8:20, 20:40] = 1
    labels[:, 10:14, 10:14, 24:30] = 2
    images = (labels * 0.5 + rng.normal(0, 0.1, labels.shape)).astype(np.float32)
    return CohortArrays(
        images=images,
        labels=labels,
        clinical=clinical_matrix([p.clinical for p in plans]),
        targets=np.array([p.nccn_label for p in plans], dtype=np.int64),
        patient_ids=tuple(p.patient_id for p in plans),
    )


def train_in_memory(
    monkeypatch: pytest.MonkeyPatch, arrays: CohortArrays, config: TrainConfig, out: Path
) -> training.TrainingRun:
    """``train_cohort`` on ``arrays`` (cohort discovery, loading and domain statistics patched)."""
    records = [
        CaseRecord(pid, None, None, None, {}, int(target))
        for pid, target in zip(arrays.patient_ids, arrays.targets, strict=True)
    ]
    monkeypatch.setattr(training, "discover_cases", lambda _: records)
    monkeypatch.setattr(training, "load_cohort", lambda *_args, **_kwargs: arrays)
    # The in-memory cohort has no files to measure: no domain section (tested on a real
    # cohort in tests/training/test_augment.py and tests/inference/test_domain.py).
    monkeypatch.setattr(training, "cohort_domain", lambda *_args, **_kwargs: None)
    return training.train_cohort(out, out, config)


def tiny_config(**changes: object) -> TrainConfig:
    """A one-fold, one-epoch CPU configuration for :func:`tiny_arrays`, with ``changes``."""
    base = TrainConfig(
        outer_folds=2, folds_to_run=1, max_epochs=1, patience=1, batch_size=(2,),
        augment=False, device="cpu", localiser_epochs=0, selection_min_tumor_dice=0.0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
