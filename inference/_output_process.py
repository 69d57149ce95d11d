"""The SEGs of an analysis, written in a helper process beside the rest.

Building the label-map SEG is the longest CPU step around the networks: highdicom makes one
functional-group item per frame and pydicom encodes them all (about 1,200 frames for a 300-slice
CT). Nothing else written waits for it except the SR, which cites it (TID 1500 references the
SEG's segments, PS3.16 TID 1411), and it needs nothing but the label map. With
``Settings.parallel_writing`` the analyzer hands a :class:`SegJob` (the label map, the source
headers, the bundle and the SEG's chosen UID) to one spawned helper process as soon as the task's
label map exists (:mod:`inference._analysis_writing`), and the lymph-node SEG after it; the
analysing process measures, writes ``label.nii.gz``, the PDF and the detection SEG meanwhile,
then the SR, citing the SEG header the helper sends back (the SEG without its frames).

This shortens an analysis where a core is free (a GPU server; one worker on a CPU machine); it
does not lower the CPU time an analysis uses, so where every core already analyses (one worker
per core) it is left off.

The helper is spawned, never forked (CUDA and forked parents do not mix), when the analyzer is
made, and it imports its writers then, not during the first job. A helper that dies mid-job
(killed, out of memory) loses nothing: the job's SEGs are written again in the analysing
process and a new helper is started for the next job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import MutableMapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from pydicom.dataset import Dataset

from inference._analysis_outputs import (
    DetectionSegTarget,
    write_detection_seg,
    write_label_seg,
    write_lymph_node_seg,
)
from inference.volume import Volume
from pancreas_contracts.lymph_nodes import LymphNodeFinding
from pancreas_contracts.result import BundleRef

__all__ = [
    "LesionSegJob",
    "LymphNodeSegJob",
    "PendingWrite",
    "SegJob",
    "SegWritten",
    "WriterProcess",
    "write_seg_job",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LymphNodeSegJob:
    """The lymph-node SEG of an analysis (its SR references the segments)."""

    nodes: Volume
    findings: tuple[LymphNodeFinding, ...]
    model: BundleRef
    target: DetectionSegTarget


@dataclass(frozen=True)
class LesionSegJob:
    """The PDAC detector's lesion SEG (known once the detector has run, before the staging)."""

    lesions: Volume
    probabilities: tuple[float, ...]
    model: BundleRef
    target: DetectionSegTarget

    def write(self, headers: Sequence[Dataset], timings: dict[str, float]) -> Path:
        """Write the lesion SEG on ``headers``' series (timed as ``write_detection_seg``)."""
        return write_detection_seg(
            self.lesions, self.probabilities, headers, self.model, self.target, timings
        )


@dataclass(frozen=True)
class SegJob:
    """The SEGs of one analysis to write (picklable: it crosses processes).

    Attributes
    ----------
    bundle
        The model that segmented (the SEG's algorithm identification).
    seg_sop_uid
        The label-map SEG's SOP Instance UID, chosen beforehand (the result names it).
    seg_label
        The label map in the source's native index order; ``None``: no label-map SEG in this
        job (it was started earlier).
    headers
        Source image headers (one per instance).
    out_dir
        Destination folder.
    lymph_nodes
        The lymph-node SEG, if any.
    lesions
        The detector's lesion SEG, if any.
    """

    bundle: BundleRef
    seg_sop_uid: str
    seg_label: Volume | None
    headers: tuple[Dataset, ...]
    out_dir: Path
    lymph_nodes: LymphNodeSegJob | None = None
    lesions: LesionSegJob | None = None


@dataclass(frozen=True)
class SegWritten:
    """What a :class:`SegJob` wrote: the SEG and its header (what the SR cites), the others."""

    seg: Path | None
    header: Dataset | None
    lymph_node_seg: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    detection_seg: Path | None = None


def write_seg_job(job: SegJob) -> SegWritten:
    """Write the job's lesion, lymph-node and label-map SEGs (each if any); in any process.

    Raises
    ------
    ValueError
        If a writer refuses its input (as :func:`inference._analysis_outputs.write_label_seg`).
    """
    timings: dict[str, float] = {}
    lesion_seg = None if job.lesions is None else job.lesions.write(job.headers, timings)
    node_seg = None
    if job.lymph_nodes is not None:
        nodes = job.lymph_nodes
        node_seg = write_lymph_node_seg(
            nodes.nodes, nodes.findings, job.headers, nodes.model, nodes.target, timings
        )
    seg = header = None
    if job.seg_label is not None:
        seg, header = write_label_seg(
            job.bundle, job.seg_sop_uid, job.seg_label, job.headers, job.out_dir, timings
        )
    return SegWritten(seg, header, node_seg, timings, lesion_seg)


def _ready() -> int:
    """Run first in a new helper, so its imports (highdicom, the writers) are done; its pid."""
    return os.getpid()


class PendingWrite:
    """A :class:`SegJob` under way in the helper (or already written, if it could not go)."""

    def __init__(
        self, owner: WriterProcess, job: SegJob, future: Future[SegWritten] | None
    ) -> None:
        self._owner = owner
        self._job = job
        self._future = future
        self._helper = owner.generation

    def result(self, timings: MutableMapping[str, float], job_id: str | None) -> SegWritten:
        """Wait for the files; a helper that died has them written here instead.

        The helper's stage times are added to ``timings``, and the time this process waited
        for it to ``write_wait``.

        Raises
        ------
        ValueError
            If a writer refused its input (raised in the helper, re-raised here).
        """
        start = time.perf_counter()
        written = None
        if self._future is not None:
            try:
                written = self._future.result()
            except BrokenProcessPool:
                _log.warning(
                    "job %s: the SEG writer process ended mid-job; writing the SEGs here",
                    job_id,
                )
                self._owner.restart(self._helper)
        waited = time.perf_counter() - start
        timings["write_wait"] = round(timings.get("write_wait", 0.0) + waited, 3)
        if written is None:
            written = write_seg_job(self._job)
        timings.update(written.timings_s)
        return written

    def settle(self) -> None:
        """Wait until the helper is done with this job, whatever its outcome (after a failure).

        So that no helper still writes into a job's folder once the analysis has given up.
        """
        if self._future is not None:
            try:
                self._future.exception()
            except BrokenProcessPool:
                self._owner.restart(self._helper)


class WriterProcess:
    """One spawned helper process that writes :class:`SegJob` s (see the module notes)."""

    def __init__(self) -> None:
        self._pool, self._started = self._start()
        #: Counts the helpers started: a job names the one it went to, so that two jobs that
        #: met the same dead helper replace it once.
        self.generation = 0

    @staticmethod
    def _start() -> tuple[ProcessPoolExecutor, Future[int]]:
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
        # Spawns the helper and imports its writers now, not in the first job.
        return pool, pool.submit(_ready)

    def submit(self, job: SegJob) -> PendingWrite:
        """Start writing ``job`` in the helper; its :class:`PendingWrite`.

        A helper that cannot take the job (it broke since) is replaced, and the job is written
        in this process when its result is asked for.
        """
        try:
            return PendingWrite(self, job, self._pool.submit(write_seg_job, job))
        except BrokenProcessPool:
            _log.warning("the SEG writer process had ended; starting a new one")
            self.restart(self.generation)
            return PendingWrite(self, job, None)

    def restart(self, generation: int) -> None:
        """Replace the helper ``generation`` (broken) with a new one, unless already replaced."""
        if generation != self.generation:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool, self._started = self._start()
        self.generation += 1

    def close(self) -> None:
        """Stop the helper (waiting for a job under way)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def pid(self, timeout_s: float = 60.0) -> int:
        """The helper's process id, once it has started (for diagnostics and tests).

        Raises
        ------
        TimeoutError
            If the helper has not started within ``timeout_s``.
        BrokenProcessPool
            If it could not start.
        """
        return self._started.result(timeout_s)
