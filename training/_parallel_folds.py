"""Run a fold's independent fits at the same time, each in its own process.

Every fit checkpoints to its own file (:func:`training._loop.fit_model`), so the
parallel pass only has to bring those files to their finished state: the serial code that
follows calls :func:`fit_model` again with the same arguments, which reloads a finished
checkpoint instead of training. A fit that failed in a worker is simply trained again there.

Worker processes are spawned (never forked: CUDA and forked parents do not mix) and read the
cohort from ``.npy`` files memory-mapped read-only, so ``workers`` processes share one copy of
the images in the page cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.resectability.model import ModelMode
from training._loop import CohortArrays, checkpoint_finished, fit_model
from training.config import HyperParams, TrainConfig

__all__ = ["FitJob", "fit_in_parallel", "share_cohort"]

_LOG = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FitJob:
    """The arguments of one :func:`fit_model` call."""

    train: IntArray
    val: IntArray
    hp: HyperParams
    mode: ModelMode
    adaptive: bool
    checkpoint: Path
    seed: int
    tag: str = "multimodal"
    init_weights: Path | None = None


def share_cohort(arrays: CohortArrays, folder: Path) -> Path:
    """Write the cohort where worker processes can memory-map it; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("images", "labels", "clinical", "targets"):
        partial = folder / f"{name}.partial.npy"
        np.save(partial, getattr(arrays, name))
        partial.replace(folder / f"{name}.npy")
    labelled = folder / "labelled.npy"
    if arrays.labelled is not None:
        np.save(labelled, arrays.labelled)
    else:
        labelled.unlink(missing_ok=True)
    (folder / "patients.txt").write_text("\n".join(arrays.patient_ids) + "\n", encoding="utf-8")
    return folder


def _open_cohort(folder: Path) -> CohortArrays:
    ids = (folder / "patients.txt").read_text(encoding="utf-8").split()
    return CohortArrays(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        labels=np.load(folder / "labels.npy", mmap_mode="r"),
        clinical=np.load(folder / "clinical.npy"),
        targets=np.load(folder / "targets.npy"),
        patient_ids=tuple(ids),
        labelled=np.load(folder / "labelled.npy") if (folder / "labelled.npy").is_file() else None,
    )


def _run(folder: Path, config: TrainConfig, job: FitJob) -> str:
    """Worker entry point: train one job to its finished checkpoint."""
    # A spawned worker starts with no logging set up; its per-epoch lines go to stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    fit_model(
        _open_cohort(folder), job.train, job.val, job.hp, config, mode=job.mode,
        adaptive=job.adaptive, checkpoint=job.checkpoint, seed=job.seed,
        init_weights=job.init_weights,
    )  # fmt: skip
    return job.checkpoint.name


def fit_in_parallel(
    folder: Path,
    config: TrainConfig,
    jobs: Sequence[FitJob],
    done: Callable[[str, int, int], None] | None = None,
) -> None:
    """Train ``jobs`` in up to ``config.workers`` processes (nothing to do for fewer than 2).

    Parameters
    ----------
    folder
        A cohort written by :func:`share_cohort`.
    config
        The run's configuration (``workers``, ``num_threads``, the protocol).
    jobs
        Independent fits; each must have its own checkpoint path. Those already finished
        are left out.
    done
        Called with ``(checkpoint name, finished, total)`` as each job ends.
    """
    jobs = [job for job in jobs if not checkpoint_finished(job.checkpoint, config)]
    if config.workers < 2 or len(jobs) < 2:
        return
    context = get_context("spawn")
    with ProcessPoolExecutor(min(config.workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(_run, folder, config, job): job for job in jobs}
        for finished, future in enumerate(as_completed(futures), start=1):
            job = futures[future]
            try:
                future.result()
            except (RuntimeError, OSError, ValueError) as exc:
                # The serial pass retrains this job in the main process, where the error
                # surfaces with its full context if it happens again.
                _LOG.warning("parallel fit %s failed: %s", job.checkpoint.name, exc)
            if done is not None:
                done(job.checkpoint.name, finished, len(jobs))
