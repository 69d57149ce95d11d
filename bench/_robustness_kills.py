"""``kill -9`` of the node at chosen phases of a study's life, and the audit afterwards
(``make bench-robustness``, issue 22 item 6).

A phase is recognised from the node's own database (read-only here): *intake* while the
sender is still storing, *assembly* between the last acknowledgement and the job, *analysis*
while the job runs, *delivery* once it is done. The kill falls at a random moment inside the
phase. Afterwards every series is re-sent in full (a sender retrying what it could not finish)
and the node runs until its queue is empty; then nothing acknowledged may be missing, every
series must have been delivered, and no object may reach the destination twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread

from bench._robustness_peers import NodeUnderTest, send_files, wait_for
from db import (
    DeliveryStatus,
    JobInfo,
    NodeDatabase,
    list_delivery_attempts,
    list_recent_jobs,
    series_instance_paths,
)
from pancreas_contracts import JobState
from phantom import PhantomOptions, generate_cohort

PHASES: tuple[str, ...] = ("intake", "assembly", "analysis", "delivery")
#: Job states with nothing left to do.
#: A second copy whose first copy reached the destination this shortly before a kill fell in
#: the window no node can close over C-STORE: between the peer storing an object and the
#: node seeing (and recording) its response. DCMTK storescp answers about 40 ms after it
#: wrote the file (without TCP_NODELAY); the node records an object about 1 ms after.
ACK_WINDOW_S = 0.5
FINAL: frozenset[JobState] = frozenset(
    {JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED, JobState.SUPERSEDED}
)


@dataclass(frozen=True)
class CampaignSeries:
    """One phantom CT series of the campaign."""

    files: tuple[Path, ...]
    SeriesInstanceUID: str


def make_series(out: Path, seed: int) -> CampaignSeries:
    """A small phantom CT series (40 slices of 3 mm, 200 mm field of view)."""
    options = PhantomOptions(fov_mm=(200.0, 200.0, 120.0), pixel_spacing=1.0, slice_thickness=3.0)
    generate_cohort(out, 1, seed, options)
    files = tuple(sorted(next(out.glob("*/dicom")).glob("*.dcm")))
    uid = str(dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    return CampaignSeries(files, uid)


@dataclass
class KillOutcome:
    """What the kills did and what the audit found."""

    kills: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    lost_instances: int = 0
    series: int = 0
    lost_jobs: int = 0
    duplicate_deliveries: int = 0
    duplicates_in_ack_window: int = 0
    duplicate_success_rows: int = 0
    final_states: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """0 lost acknowledged instances, 0 lost jobs, 0 duplicate deliveries."""
        return (
            self.lost_instances == 0
            and self.lost_jobs == 0
            and self.duplicate_deliveries == 0
            and self.duplicate_success_rows == 0
        )


def _jobs_of(database: NodeDatabase, series_uid: str) -> list[JobInfo]:
    return [j for j in list_recent_jobs(database, limit=500) if j.series_instance_uid == series_uid]


def _in_state(database: NodeDatabase, series_uid: str, states: set[JobState]) -> bool:
    return any(job.state in states for job in _jobs_of(database, series_uid))


@dataclass
class KillCampaign:
    """Kills the node once per series, phase by phase in turn."""

    node: NodeUnderTest
    destination: Path
    seed: int
    phases: tuple[str, ...] = PHASES
    outcome: KillOutcome = field(default_factory=KillOutcome)
    kill_times: list[float] = field(default_factory=list)
    acknowledged: dict[str, set[str]] = field(default_factory=dict)

    def run(self, series: list[CampaignSeries], timeout_s: float = 900.0) -> KillOutcome:
        """Kill once per series, then re-send everything and audit."""
        rng = np.random.default_rng(self.seed)
        for index, item in enumerate(series):
            self._round(item, self.phases[index % len(self.phases)], rng)
        self.node.start()
        for item in series:
            acked = send_files(self.node.port, item.files)
            self.acknowledged.setdefault(item.SeriesInstanceUID, set()).update(acked)
        database = NodeDatabase(self.node.database_url)
        try:
            wait_for(lambda: self._drained(database, series), timeout_s, "the queue to drain")
        except TimeoutError as error:
            self.outcome.notes.append(str(error))
        self.node.stop()
        self._audit(database, series)
        database.engine.dispose()
        return self.outcome

    def _round(self, item: CampaignSeries, phase: str, rng: np.random.Generator) -> None:
        if not self.node.alive():
            self.node.start()
        database = NodeDatabase(self.node.database_url)
        acked: set[str] = self.acknowledged.setdefault(item.SeriesInstanceUID, set())
        sender = threading.Thread(
            target=lambda: acked.update(send_files(self.node.port, item.files)), daemon=True
        )
        sender.start()
        try:
            self._wait_for_phase(database, item, phase, sender, rng)
        except TimeoutError as error:
            self.outcome.notes.append(f"{phase}: {error}")
        self.node.kill9()
        self.kill_times.append(time.time())
        sender.join(timeout=60)
        self.outcome.kills[phase] += 1
        database.engine.dispose()

    def _wait_for_phase(
        self,
        database: NodeDatabase,
        item: CampaignSeries,
        phase: str,
        sender: threading.Thread,
        rng: np.random.Generator,
    ) -> None:
        uid = item.SeriesInstanceUID
        if phase == "intake":
            time.sleep(float(rng.uniform(0.05, 0.8)))
            return
        sender.join(timeout=120)
        if phase == "assembly":
            time.sleep(float(rng.uniform(0.0, 2.5)))
            return
        if phase == "analysis":
            wait_for(lambda: _in_state(database, uid, {JobState.RUNNING}), 300, "a running job")
            # The campaign's 120 mm series are refused by the localiser about a second after
            # the claim: a later kill would fall in delivery, not in the analysis.
            time.sleep(float(rng.uniform(0.0, 0.5)))
            return
        done = {JobState.DONE, JobState.DELIVERED}
        wait_for(lambda: _in_state(database, uid, done), 300, "a finished job")
        time.sleep(float(rng.uniform(0.0, 0.3)))

    def _drained(self, database: NodeDatabase, series: list[CampaignSeries]) -> bool:
        for item in series:
            jobs = _jobs_of(database, item.SeriesInstanceUID)
            if not jobs or any(job.state not in FINAL for job in jobs):
                return False
        return True

    def _audit(self, database: NodeDatabase, series: list[CampaignSeries]) -> None:
        outcome = self.outcome
        outcome.series = len(series)
        for item in series:
            acked = self.acknowledged.get(item.SeriesInstanceUID, set())
            outcome.acknowledged += len(acked)
            stored = {
                str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
                for path in series_instance_paths(database, item.SeriesInstanceUID)
                if Path(path).is_file()
            }
            outcome.lost_instances += len(acked - stored)
            jobs = _jobs_of(database, item.SeriesInstanceUID)
            outcome.final_states.update(str(job.state) for job in jobs)
            if not any(job.state == JobState.DELIVERED for job in jobs):
                outcome.lost_jobs += 1
            for job in jobs:
                successes = Counter(
                    attempt.destination
                    for attempt in list_delivery_attempts(database, job.id)
                    if attempt.status == DeliveryStatus.SUCCESS
                )
                outcome.duplicate_success_rows += sum(n - 1 for n in successes.values() if n > 1)
        copies: dict[str, list[float]] = {}
        for path in self.destination.iterdir():
            if path.is_file():
                uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
                copies.setdefault(uid, []).append(path.stat().st_mtime)
        for times in copies.values():
            if len(times) < 2:
                continue
            first = min(times)
            if any(0.0 <= kill - first <= ACK_WINDOW_S for kill in self.kill_times):
                outcome.duplicates_in_ack_window += len(times) - 1
            else:
                outcome.duplicate_deliveries += len(times) - 1
