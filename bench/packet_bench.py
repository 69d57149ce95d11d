"""``make bench-packet``: time building a tumor-board packet at real size (issue 26).

Generates one phantom at 512 x 512 x 300 (0.78 mm pixels, 1 mm slices), analyses it with the
demo bundle through ``pancreas-node analyze`` (SEG + ``result.json``, as the node writes them),
then renders board packets of 1 and of 5 cases of that analysis ``REPEAT`` times each
(:func:`inference.board_packet.render_board_packet`: only the two key planes of the CT and the
key segments of the SEG are decoded). Median wall and CPU seconds, per packet and per case, go
to ``bench/results/local/board-packet.md`` with the packet's size and page count.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inference.board_packet import (
    AI_RESULT_FILE,
    AI_SEG_FILE,
    BoardPacket,
    PacketCase,
    render_board_packet,
)
from pancreas_contracts.result import AnalysisResult
from phantom import PhantomOptions, generate_cohort

REPEAT = 3
SEED = 7
CASES = (1, 5)
OPTIONS = PhantomOptions(fov_mm=(400.0, 400.0, 300.0), pixel_spacing=0.78125, slice_thickness=1.0)
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "board-packet.md"


def _analyse(work: Path) -> tuple[tuple[Path, ...], Path, AnalysisResult]:
    (patient,) = generate_cohort(work / "phantom", n=1, seed=SEED, options=OPTIONS)
    out = work / "analysis"
    cli = Path(sys.executable).parent / "pancreas-node"
    subprocess.run([str(cli), "analyze", str(patient.dicom_dir), "--out", str(out)], check=True)
    result = AnalysisResult.model_validate_json((out / AI_RESULT_FILE).read_text("utf-8"))
    return tuple(sorted(patient.dicom_dir.glob("*.dcm"))), out / AI_SEG_FILE, result


def _packet(cases: int, ct: tuple[Path, ...], seg: Path, result: AnalysisResult) -> BoardPacket:
    return BoardPacket(
        board_id=1,
        board_date=dt.date(2026, 12, 10),
        title="Benchmark board",
        members=("Dr A (surgery)", "Dr B (oncology)"),
        cases=tuple(
            PacketCase(
                position=i + 1,
                study_instance_uid=result.study_uid,
                ct_files=ct,
                seg_file=seg,
                result=result,
            )
            for i in range(cases)
        ),
    )


def main(argv: list[str]) -> int:
    """Generate and analyse the phantom, time the packets and write the report."""
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(argv[1]) if len(argv) > 1 else Path(tmp)
        ct, seg, result = _analyse(work)
        for cases in CASES:
            packet = _packet(cases, ct, seg, result)
            wall: list[float] = []
            cpu: list[float] = []
            pdf = b""
            for _ in range(REPEAT):
                start = (time.perf_counter(), time.process_time())
                pdf = render_board_packet(packet)
                wall.append(time.perf_counter() - start[0])
                cpu.append(time.process_time() - start[1])
            pages = pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ")
            rows.append(
                f"| {cases} | {statistics.median(wall):.2f} | {statistics.median(cpu):.2f} "
                f"| {statistics.median(wall) / cases:.2f} | {len(pdf) / 1e6:.2f} | {pages} |"
            )
    lines = [
        "# Tumor-board packet (`make bench-packet`)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        f"One phantom of {len(ct)} slices of 512 x 512 (seed {SEED}) analysed by the demo bundle; "
        f"packets of that case repeated. Median of {REPEAT} renders.",
        "",
        "| cases | wall s | CPU s | wall s per case | PDF MB | pages |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
