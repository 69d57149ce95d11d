"""``make bench-seg``: time writing the DICOM-SEG of the demo's phantom.

Generates the demo's phantom (default :class:`PhantomOptions`, seed 7, as ``pancreas-node demo``
does), then writes its label map as a SEG ``REPEAT`` times from headers already read, timing
the two stages apart: building the Segmentation (:func:`inference.seg_writer.build_seg`:
cutting the frames, highdicom's per-frame functional groups, RLE) and saving it (pydicom).
Median wall and CPU times go to ``bench/results/local/seg-write.md`` with the SEG's geometry,
type, frame count and size.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pydicom

from inference import read_nifti
from inference.seg_writer import build_seg
from pancreas_contracts.result import BundleRef
from phantom import PhantomOptions, generate_cohort

REPEAT = 5
SEED = 7
BUNDLE = BundleRef(name="bench", version="0", sha256="cd" * 32)
#: ``bench/results/local/`` (untracked) unless BENCH_RESULTS_DIR names another folder:
#: ``make bench-* PUBLISH=1`` sets it to ``bench/results/``, the committed reference results.
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "seg-write.md"


def _timed(run: list[tuple[float, float]], start: tuple[float, float]) -> tuple[float, float]:
    now = (time.perf_counter(), time.process_time())
    run.append((now[0] - start[0], now[1] - start[1]))
    return now


def main(argv: list[str]) -> int:
    """Generate the phantom, time the writes and write the report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(argv[1]) if len(argv) > 1 else Path(tmp)
        (patient,) = generate_cohort(out / "phantom", n=1, seed=SEED, options=PhantomOptions())
        label = read_nifti(patient.files.label)
        headers = [
            pydicom.dcmread(path, stop_before_pixels=True)
            for path in sorted(patient.dicom_dir.glob("*.dcm"))
        ]
        build: list[tuple[float, float]] = []
        save: list[tuple[float, float]] = []
        total: list[tuple[float, float]] = []
        path = out / "seg.dcm"
        for _ in range(REPEAT):
            start = (time.perf_counter(), time.process_time())
            seg = build_seg(label, headers, BUNDLE)
            built = _timed(build, start)
            seg.save_as(path, enforce_file_format=True)
            _timed(save, built)
            _timed(total, start)
        seg = pydicom.dcmread(path, stop_before_pixels=True)
        geometry = (
            f"{seg.Rows} x {seg.Columns} x {len(headers)} slices, "
            f"{len(seg.SegmentSequence)} segments, {seg.SegmentationType}, "
            f"{seg.file_meta.TransferSyntaxUID.name}, {seg.NumberOfFrames} frames "
            f"(empty frames omitted), {path.stat().st_size / 1e6:.1f} MB"
        )
    rows = [("build (highdicom)", build), ("save (pydicom)", save), ("total", total)]
    lines = [
        "# DICOM-SEG write (`make bench-seg`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.",
        "",
        f"The demo's phantom (seed {SEED}, default options): {geometry}. "
        f"Median of {REPEAT} writes from headers already read.",
        "",
        "| stage | wall s | CPU s |",
        "|---|---|---|",
        *(
            f"| {name} | {statistics.median(w for w, _ in times):.2f} "
            f"| {statistics.median(c for _, c in times):.2f} |"
            for name, times in rows
        ),
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
