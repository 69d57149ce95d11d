"""``make bench-phantom``: seconds to generate one phantom patient at default settings.

For each of ``SEEDS`` a one-patient cohort is generated with the default options (300 x 300 x
200 mm, random 0.6-0.9 mm pixels and 1-3 mm slices, explicit VR DICOM, NIfTI, CSVs), timing
planning + rendering and writing separately. The per-seed table and the median total go to
``bench/results/local/phantom.md`` (see ``RESULTS``). Everything runs in this one process; the
generator itself uses no threads (numpy element-wise work, scipy.ndimage filters, zlib).
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from phantom import PhantomOptions, plan_cohort, render_patient, write_patient

SEEDS = (1, 2, 3)
#: ``bench/results/local/`` (untracked) unless BENCH_RESULTS_DIR names another folder:
#: ``make bench-* PUBLISH=1`` sets it to ``bench/results/``, the committed reference results.
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "phantom.md"


def time_one(seed: int, work: Path) -> dict[str, float | str]:
    """Generate patient 1 of cohort ``seed`` into ``work`` and time the two stages."""
    options = PhantomOptions()
    start = time.perf_counter()
    plan = plan_cohort(1, seed, options)[0]
    scan = render_patient(plan)
    rendered = time.perf_counter()
    write_patient(plan, scan, work, options)
    written = time.perf_counter()
    nz, ny, nx = scan.grid.shape
    return {
        "seed": str(seed),
        "grid": f"{nx} x {ny} x {nz}",
        "spacing": f"{plan.pixel_spacing:.3f} / {plan.slice_thickness:g} mm",
        "render": rendered - start,
        "write": written - rendered,
        "total": written - start,
    }


def main() -> int:
    # Warm-up: first-call imports and plugin discovery are not part of a patient's cost.
    with tempfile.TemporaryDirectory(prefix="bench-phantom-") as tmp:
        time_one(0, Path(tmp))
    rows = []
    for seed in SEEDS:
        work = Path(tempfile.mkdtemp(prefix="bench-phantom-"))
        try:
            rows.append(time_one(seed, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    median = statistics.median(float(r["total"]) for r in rows)
    lines = [
        "# Phantom generation benchmark",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}, one process",
        "- settings: `PhantomOptions()` defaults (FOV 300 x 300 x 200 mm, explicit VR LE)",
        "",
        "| seed | grid (x y z) | pixel / slice | render s | write s | total s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['grid']} | {r['spacing']} | {float(r['render']):.2f} "
            f"| {float(r['write']):.2f} | {float(r['total']):.2f} |"
        )
    lines += ["", f"**median seconds per patient: {median:.2f}** (target <= 5 s)", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(RESULTS.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
