"""``make bench-inference``: per-stage time and peak memory of the analysis on a 300-slice phantom.

One phantom CT series (``PhantomOptions(fov_mm=(300, 300, 300), slice_thickness=1.0)``, seed 3,
pixel size drawn by the generator) is analysed ``REPEATS`` times by one
:class:`inference.analysis.Analyzer` on CPU with ONE torch thread, writing SEG, SR, PDF and
``result.json`` each time, as the node runs it: the routing's contrast-phase check first keeps
the series' landmarks (:mod:`inference.landmark_store`) for the localiser; the localiser
without them is timed apart. The median seconds of each stage (``result.timings_s``) and the peak
resident memory (``resource.getrusage``) go to ``bench/results/local/inference.md`` (see
``RESULTS``).

The model is the trained demo bundle ``bundles/demo/`` when it is there (with its learned
localiser), else the tiny UNTRAINED test bundle of ``training/structure_bundle.py`` (two
Swin-UNETR members, feature size 12, a 64-voxel cube at 2.5 mm, whose output layer labels the
whole cube pancreas), which times only the pipeline's structure.

The PDAC detector (issue 23) runs first, as the node runs it with ``detection_bundle_path``
set: the trained ``bundles/detection-demo/`` when it is there, else a detection bundle of the
CPU demo configuration's sizes (``bundles/demo/train-config-detection.toml``) with untrained
weights, which times the stage, not its answer. Its time is the ``detection`` row.

The phantom and the bundle are made in one child process and the analysis runs in another,
started by a parent that imports nothing heavy: Linux carries ``ru_maxrss`` across ``execve``,
so a big parent would inflate the analysing child's peak. ``VmHWM`` (``/proc/self/status``) of
the analysing process is reported beside it as a cross-check.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPEATS = 3
SEED = 3
ROOT = Path(__file__).resolve().parents[1]
#: ``bench/results/local/`` (untracked) unless BENCH_RESULTS_DIR names another folder:
#: ``make bench-* PUBLISH=1`` sets it to ``bench/results/``, the committed reference results.
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "inference.md"
DEMO_BUNDLE = ROOT / "bundles" / "demo"
DETECTION_BUNDLE = ROOT / "bundles" / "detection-demo"
DETECTION_CONFIG = DEMO_BUNDLE / "train-config-detection.toml"
STAGES = (
    "read",
    "detection",
    "localise",
    "preprocess",
    "inference",
    "postprocess",
    "measure",
    "domain",
    "write_label",
    "write_seg",
    "write_sr",
    "write_pdf",
    "write_detection_seg",
    "total",
)
#: Stages that run a network (with their own CPU pre- and post-processing inside): the rest
#: of ``total`` is the CPU work around the networks (issue 27's target: <= 3 s).
NETWORK_STAGES = ("detection", "localise", "inference")


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _vm_hwm_mb() -> float | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024.0
    return None


def prepare(work: Path) -> None:
    """Write the phantom series and the test bundle under ``work`` (a child process)."""
    sys.path.insert(0, str(ROOT))  # the test bundle builder lives in tests/
    import torch

    torch.set_num_threads(1)
    from phantom import PhantomOptions, generate_cohort
    from training.structure_bundle import build_test_bundle

    options = PhantomOptions(fov_mm=(300.0, 300.0, 300.0), slice_thickness=1.0)
    generate_cohort(work / "phantom", 1, SEED, options)
    if not (DEMO_BUNDLE / "bundle.json").is_file():
        build_test_bundle(work / "bundle")
    if not (DETECTION_BUNDLE / "bundle.json").is_file():
        _untrained_detection_bundle(work / "detection")


def _untrained_detection_bundle(out: Path) -> None:
    """A detection bundle of the CPU demo configuration's sizes, untrained (timing only)."""
    from inference.tasks.detection.bundle import DetectionSettings, save_detection_bundle
    from inference.tasks.detection.model import MultiTaskNet, build_stage1
    from training.detection_config import load_detection_config

    config = load_detection_config(DETECTION_CONFIG)
    save_detection_bundle(
        out,
        (build_stage1(config.stage1), config.stage1),
        MultiTaskNet(config.stage2),
        DetectionSettings(),
        name="untrained-detector",
        version="0",
        config_sha256="0" * 64,
        data_hash="0" * 64,
        metrics={},
        weights_dtype="float16",
    )


def _model_text(bundle: Path) -> str:
    if bundle.resolve() == DEMO_BUNDLE.resolve():
        meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
        model, pre = meta.get("model", {}), meta.get("preprocessing", {})
        localiser = "learned localiser" if "localiser" in meta else "landmark localiser"
        return (
            f"the trained demo bundle `bundles/demo/` ({model.get('name')} "
            f"{model.get('version')}, {len(meta.get('members', []))} member(s), "
            f"{pre.get('target_size')}^3 cube at {float(pre.get('spacing_mm', 0.0)):.3g} mm, "
            f"{localiser})"
        )
    return (
        "**the tiny untrained test bundle** (`training/structure_bundle.py`, output "
        "fixed to 'pancreas'): the pipeline's structure only"
    )


def measure(series: Path, bundle: Path, detection: Path, out: Path, device: str) -> dict[str, Any]:
    """Analyse ``series`` ``REPEATS`` times in this process (the child) and describe it."""
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    from inference import LandmarkStore, estimate_series_phase, read_dicom_series
    from inference.analysis import Analyzer, PdacDetector, resolve_device

    start = time.perf_counter()
    detector = PdacDetector(detection, resolve_device(device), 0.5)
    store = LandmarkStore(out / "landmarks")
    analyzer = Analyzer(bundle, device, detector=detector, landmark_store=store)
    load_s = time.perf_counter() - start
    rss_loaded = _peak_rss_mb()
    # The same analysis with the SEG and SR in a helper process, alternating with the first.
    helped = Analyzer(
        bundle, device, detector=detector, landmark_store=store, parallel_writing=True
    )
    files = sorted(series.glob("*.dcm"))
    # The node's routing measures the contrast phase first and keeps the landmarks it found.
    start = time.perf_counter()
    estimate_series_phase(files, store)
    phase_s = time.perf_counter() - start
    runs: list[dict[str, float]] = []
    helped_runs: list[dict[str, float]] = []
    wall: list[float] = []
    standalone: list[float] = []
    for repeat in range(REPEATS):
        start = time.perf_counter()
        output = analyzer.analyze(files, None, out_dir=out / f"run{repeat}")
        wall.append(time.perf_counter() - start)
        runs.append(dict(output.result.timings_s))
        parallel = helped.analyze(files, None, out_dir=out / f"helped{repeat}")
        helped_runs.append(dict(parallel.result.timings_s))
        volume = read_dicom_series(files).volume
        start = time.perf_counter()
        analyzer.localiser(volume)
        standalone.append(time.perf_counter() - start)
    result = output.result
    helped.close()
    return {
        "load_s": load_s,
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": _peak_rss_mb(),
        "vm_hwm_mb": _vm_hwm_mb(),
        "timings": runs,
        "parallel_timings": helped_runs,
        "wall_s": wall,
        "phase_s": phase_s,
        "standalone_localise_s": standalone,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "localisation": result.localisation.model_dump(),
        "model": _model_text(bundle),
        "detector": (
            "the trained `bundles/detection-demo/`"
            if detection.resolve() == DETECTION_BUNDLE.resolve()
            else "an UNTRAINED detection bundle of the CPU demo configuration's sizes (timing only)"
        ),
        "warnings": list(result.warnings),
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--prepare":
        prepare(Path(sys.argv[2]))
        return 0
    if len(sys.argv) == 7 and sys.argv[1] == "--measure":
        series, bundle, detection, out = (Path(a) for a in sys.argv[2:6])
        print(json.dumps(measure(series, bundle, detection, out, sys.argv[6])))
        return 0
    device = "cuda" if sys.argv[1:] == ["--device", "cuda"] else "cpu"
    if sys.argv[1:] not in ([], ["--device", "cuda"], ["--device", "cpu"]):
        print("usage: inference_bench.py [--device cpu|cuda]", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        return run(work, device)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, device: str) -> int:
    subprocess.run([sys.executable, __file__, "--prepare", str(work)], check=True, cwd=ROOT)
    series = next((work / "phantom").glob("*/dicom"))
    files = sorted(series.glob("*.dcm"))
    bundle = DEMO_BUNDLE if (DEMO_BUNDLE / "bundle.json").is_file() else work / "bundle"
    detection = (
        DETECTION_BUNDLE if (DETECTION_BUNDLE / "bundle.json").is_file() else work / "detection"
    )
    measure_argv = [
        "--measure", str(series), str(bundle), str(detection), str(work / "out"), device
    ]  # fmt: skip
    child = subprocess.run(
        [sys.executable, __file__, *measure_argv],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(write_report(files, report).read_text())
    return 0


def _series_facts(files: list[Path]) -> str:
    from pydicom import dcmread

    first = dcmread(files[0], stop_before_pixels=True)
    rows, cols = int(first.Rows), int(first.Columns)
    pixel = float(first.PixelSpacing[0])
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    return (
        f"{len(files)} slices of {rows} x {cols}, {pixel:.3f} mm pixels, 1.0 mm slices, "
        f"{megabytes:.0f} MB"
    )


def _stage_rows(runs: list[dict[str, float]], stages: tuple[str, ...]) -> list[str]:
    """A table row (median, min, max seconds) for each of ``stages`` that the runs timed."""
    rows = []
    for stage in stages:
        values = [r[stage] for r in runs if stage in r]
        if values:
            rows.append(
                f"| {stage} | {statistics.median(values):.2f} | {min(values):.2f} | "
                f"{max(values):.2f} |"
            )
    return rows


def _around(run: dict[str, float]) -> float:
    return run["total"] - sum(run.get(n, 0.0) for n in NETWORK_STAGES)


def _parallel_lines(runs: list[dict[str, float]], helped: list[dict[str, float]]) -> list[str]:
    """The same analysis with ``parallel_writing``, run alternately with the rows above."""
    if not helped:
        return []
    stages = ("detection", "localise", "inference", "measure", "domain", "write_seg",
              "write_label", "write_pdf", "write_detection_seg", "write_wait", "write_sr",
              "total")  # fmt: skip
    lines = [
        "With `parallel_writing` (the label-map SEG in a spawned helper process, started as "
        "soon as the label map exists, while the task measures and this process writes the "
        "label map, the PDF and the detection SEG; each repeat right after the one above, so "
        "both met the same machine):",
        "",
        "| stage | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    lines += _stage_rows(helped, stages)
    alone = statistics.median(_around(r) for r in runs)
    together = statistics.median(_around(r) for r in helped)
    totals = [r["total"] for r in helped]
    lines += [
        "",
        f"Around the networks with the helper: median {together:.2f} s against {alone:.2f} s "
        f"without it ({together - alone:+.2f} s); in total {statistics.median(totals):.2f} s "
        f"against {statistics.median(r['total'] for r in runs):.2f} s (the networks' own time "
        "varies by a second or more between repeats on this machine, so the totals differ by "
        "more than the writing). `write_seg` is the helper's time, spent "
        "beside `measure`, `domain`, `write_label`, `write_pdf` and `write_detection_seg`; "
        "`write_wait` is how long this process then waited for it before writing the SR.",
        "",
    ]
    return lines


def write_report(files: list[Path], report: dict[str, Any]) -> Path:
    """Write the results page (``inference.md`` on CPU, ``inference-gpu.md`` on CUDA)."""
    runs: list[dict[str, float]] = report["timings"]
    gpu = report.get("gpu")
    where = (
        f"GPU {gpu} (CUDA), torch {report['torch']} ({report['threads']} CPU threads)"
        if gpu
        else f"CPU only, torch {report['torch']} with {report['threads']} thread"
    )
    loc = report["localisation"]
    lines = [
        "# Analysis time and memory (make bench-inference)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.processor() or platform.machine()}), {where}, {REPEATS} repeats of "
        "`Analyzer.analyze` in one process.",
        f"Series: a phantom CT, {_series_facts(files)} (seed {SEED}); no clinical row "
        "(knock-out path); SEG, SR, PDF and result.json written each time.",
        f"Model: {report['model']}; PDAC detector (run first): {report['detector']}.",
        "",
        "| stage | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    lines += _stage_rows(runs, STAGES)
    around = [_around(r) for r in runs]
    lines += [
        "",
        "Around the networks (`total` minus "
        + ", ".join(f"`{n}`" for n in NETWORK_STAGES)
        + f"; issue 27's target <= 3 s): median {statistics.median(around):.2f} s "
        f"(min {min(around):.2f}, max {max(around):.2f}); besides the rows it holds the "
        "small steps that have none (the gate, the result, `result.json`).",
        "",
        *_parallel_lines(runs, report.get("parallel_timings") or []),
        f"Bundle load (once, not in `total`): {report['load_s']:.2f} s.",
        f"Peak RSS of the analysing process: {report['peak_rss_mb']:.0f} MB "
        f"({report['rss_after_load_mb']:.0f} MB after imports and bundle load; VmHWM "
        f"{report['vm_hwm_mb'] or 0:.0f} MB).",
        f"Localisation: found {loc['found']}, confidence {loc['confidence']:.2f}.",
        "",
        "As in the node: the routing's contrast-phase check ran first "
        f"({report['phase_s']:.2f} s, once, not in `total`) and kept the landmarks it found "
        "(`inference.landmark_store`), which the landmark localiser reused. Without them "
        "(`pancreas-node analyze`, no node) `localise` finds them again: median "
        f"{statistics.median(report['standalone_localise_s']):.2f} s (the analyzer's localiser "
        "timed on the same volume after each repeat).",
        "",
        "Goal (issue 6): at most 90 s end to end on 2 CPU cores; median total here "
        f"{statistics.median(r['total'] for r in runs):.1f} s ({where}).",
        "",
    ]
    path = RESULTS if not gpu else RESULTS.with_name("inference-gpu.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    sys.exit(main())
