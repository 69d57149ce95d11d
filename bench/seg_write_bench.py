"""``python -m bench.seg_write_bench [OUT]``: time :func:`inference.seg_writer.write_seg`.

Generates the demo's phantom (default :class:`PhantomOptions`, seed 7, as ``pancreas-node demo``
does) under ``OUT`` (default: a temporary folder), then writes its label map as a SEG ``REPEAT``
times from headers already read (only the SEG write is timed), and prints the median wall and
CPU time, the SEG's geometry, type, frame count and file size.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom

from inference import read_nifti
from inference.seg_writer import write_seg
from pancreas_contracts.result import BundleRef
from phantom import PhantomOptions, generate_cohort

REPEAT = 5
SEED = 7
BUNDLE = BundleRef(name="bench", version="0", sha256="cd" * 32)


def main(argv: list[str]) -> int:
    """Generate the phantom, time the writes and print the medians."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(argv[1]) if len(argv) > 1 else Path(tmp)
        (patient,) = generate_cohort(out / "phantom", n=1, seed=SEED, options=PhantomOptions())
        label = read_nifti(patient.files.label)
        headers = [
            pydicom.dcmread(path, stop_before_pixels=True)
            for path in sorted(patient.dicom_dir.glob("*.dcm"))
        ]
        walls, cpus = [], []
        path = out / "seg.dcm"
        for _ in range(REPEAT):
            wall, cpu = time.perf_counter(), time.process_time()
            write_seg(label, headers, BUNDLE, path)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        seg = pydicom.dcmread(path, stop_before_pixels=True)
        print(
            f"grid {seg.Rows} x {seg.Columns} x {len(headers)} slices, "
            f"{len(seg.SegmentSequence)} segments, {seg.SegmentationType}, "
            f"{seg.NumberOfFrames} frames, {path.stat().st_size / 1e6:.1f} MB; "
            f"median of {REPEAT}: wall {statistics.median(walls):.2f} s, "
            f"CPU {statistics.median(cpus):.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
