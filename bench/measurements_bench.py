"""``make bench-measurements``: contact-angle accuracy and speed of :func:`measure` on phantoms.

A cohort of ``N`` phantoms (seed ``SEED``, balanced NCCN classes so that arterial contact is
common, otherwise default :class:`PhantomOptions`: FOV 300 x 300 x 200 mm, random 0.6-0.9 mm
pixels, 1-3 mm slices; HFS or FFS at random) is rendered in memory; each
label map goes through :func:`inference.tasks.resectability.measurements.measure` exactly as a
network's prediction would. Measured angles are compared with the constructed ones
(``PatientPlan``),
the rule category with the phantom's truth, the volume with the phantom's. Only ``measure``
is timed. Results go to ``bench/results/local/measurements.md``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inference.tasks.resectability.measurements import MeasurementResult, measure
from pancreas_contracts.result import KEY_VESSELS
from phantom import PatientPlan, PhantomOptions, plan_cohort, render_patient, scan_volumes

N = 30
SEED = 2024
#: ``bench/results/local/`` (untracked) unless BENCH_RESULTS_DIR names another folder:
#: ``make bench-* PUBLISH=1`` sets it to ``bench/results/``, the committed reference results.
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "measurements.md"


@dataclass(frozen=True)
class Row:
    """One phantom: its plan, its truth volume, what was measured and how long it took."""

    plan: PatientPlan
    truth_ml: float
    result: MeasurementResult
    seconds: float

    def error(self, key: str) -> float:
        """Signed angle error in degrees (an unmeasured vessel counts as 0 degrees)."""
        return (self.result.contact_deg[key] or 0.0) - float(self.plan.angles[key])


def run_one(plan: PatientPlan) -> Row:
    """Render one phantom and time :func:`measure` on its label map."""
    scan = render_patient(plan)
    _, label = scan_volumes(scan)
    start = time.perf_counter()
    result = measure(label)
    return Row(plan, scan.tumor_volume_ml, result, time.perf_counter() - start)


def _mae(values: list[float]) -> str:
    return f"{np.mean(np.abs(values)):.1f}" if values else "-"


def accuracy_table(rows: list[Row]) -> list[str]:
    """Per-vessel MAE over all patients, over touched vessels, and the signed bias."""
    lines = [
        "| vessel | MAE all (deg) | n | MAE touched (deg) | n touched | bias touched | max abs |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in (*KEY_VESSELS, "all"):
        keys = KEY_VESSELS if key == "all" else (key,)
        every = [r.error(k) for r in rows for k in keys]
        touched = [r.error(k) for r in rows for k in keys if r.plan.angles[k] > 0]
        bias = f"{np.mean(touched):+.1f}" if touched else "-"
        lines.append(
            f"| {key} | {_mae(every)} | {len(every)} | {_mae(touched)} | {len(touched)} "
            f"| {bias} | {np.max(np.abs(every)):.1f} |"
        )
    return lines


def thickness_table(rows: list[Row]) -> list[str]:
    """MAE over touched vessels by slice thickness."""
    lines = ["| slice thickness | patients | MAE touched (deg) |", "|---|---|---|"]
    for thickness in sorted({r.plan.slice_thickness for r in rows}):
        group = [r for r in rows if r.plan.slice_thickness == thickness]
        touched = [r.error(k) for r in group for k in KEY_VESSELS if r.plan.angles[k] > 0]
        lines.append(f"| {thickness:g} mm | {len(group)} | {_mae(touched)} |")
    return lines


def patient_table(rows: list[Row]) -> list[str]:
    """Each patient: grid, truth vs measured angles, rule categories, volume, time."""
    lines = [
        "| patient | pixel / slice | truth angles | measured | rule truth / measured "
        "| volume truth / measured mL | diameter mm | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        truth = " ".join(f"{k} {r.plan.angles[k]:.0f}" for k in KEY_VESSELS if r.plan.angles[k])
        measured = " ".join(
            f"{k} {v:.0f}" for k, v in r.result.contact_deg.items() if v or r.plan.angles[k]
        )
        lines.append(
            f"| {r.plan.patient_id} | {r.plan.pixel_spacing:.2f} / {r.plan.slice_thickness:g} "
            f"| {truth or 'none'} | {measured or 'none'} | {r.plan.rule_category} / "
            f"{r.result.rule_category} | {r.truth_ml:.2f} / {r.result.tumor_volume_ml or 0:.2f} "
            f"| {r.result.tumor_max_diameter_mm or 0:.1f} | {r.seconds:.2f} |"
        )
    return lines


def main() -> int:
    options = PhantomOptions(class_counts=(1.0, 1.0, 1.0), position="random")
    plans = plan_cohort(N, SEED, options)
    run_one(plans[0])  # warm-up: first-call imports are not part of a case's cost
    rows = [run_one(plan) for plan in plans]
    seconds = [r.seconds for r in rows]
    agree = sum(r.result.rule_category == r.plan.rule_category for r in rows)
    overall = np.mean([abs(r.error(k)) for r in rows for k in KEY_VESSELS])
    lines = [
        "# Measurements benchmark (contact angles, size, NCCN rule)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}, one process",
        f"- cohort: {N} phantoms, seed {SEED}, `PhantomOptions(class_counts=(1, 1, 1), "
        "position='random')` (balanced classes; FOV 300 x 300 x 200 mm, random 0.6-0.9 mm "
        "pixels and 1-3 mm slices, HFS/FFS)",
        "- command: `make bench-measurements` (`.venv/bin/python bench/measurements_bench.py`)",
        "- MAE all: every patient x vessel (truth 0 included); touched: truth angle > 0",
        "",
        f"**overall MAE {overall:.1f} deg** (issue 6 goal <= 10); rule category agrees with "
        f"the truth for {agree} / {N}; **median {statistics.median(seconds):.2f} s per case** "
        f"(max {max(seconds):.2f} s; `measure` only, label map in memory)",
        "",
        *accuracy_table(rows),
        "",
        *thickness_table(rows),
        "",
        *patient_table(rows),
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(RESULTS.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
