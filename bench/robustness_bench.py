"""``make bench-robustness``: the node under crashes and abuse (issue 22, item 6).

Runs against a real ``pancreas-node serve`` child process delivering to a real DCMTK
``storescp``, on loopback:

1. **kill -9** at ``KILLS`` points spread over intake, assembly, analysis and delivery (one
   new phantom series per kill, the phase chosen in turn and the moment within it at
   random); then a restart, every series re-sent as a sender would retry, and the checks:
   every acknowledged instance stored with its file, every series analysed and delivered
   (0 lost jobs), no object delivered twice (storescp keeps every copy, ``--unique-filenames``).
2. **Fuzzed instances**: structure-aware mutations of a CT slice (bench/_robustness_attacks.py)
   sent by C-STORE; the node must stay up and answer C-ECHO within 5 s throughout.
3. **Malformed PDU streams** on raw TCP connections, with the same C-ECHO checks.
4. **Half-open connections** (silent, partial PDU header, request then silence) held open
   while DCMTK ``storescu`` stores a whole series.
5. **Memory**: 16 concurrent associations each sending a decompression bomb or an instance
   above ``max_instance_mb``; the node's peak resident memory before and after.

``--fast`` is the subset ``make test`` runs (tests/bench/test_robustness.py). The report goes
to ``bench/results/local/robustness.md`` (``bench/results/`` with ``make ... PUBLISH=1``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench._robustness_attacks import (
    half_open,
    mutants,
    pdu_streams,
    send_raw,
    write_deflate_bomb,
    write_oversize,
)
from bench._robustness_kills import (
    ACK_WINDOW_S,
    PHASES,
    KillCampaign,
    KillOutcome,
    make_series,
)
from bench._robustness_peers import NodeUnderTest, echo_seconds, free_port, send_files, storescp

#: ``bench/results/local/`` (untracked) unless BENCH_RESULTS_DIR names another folder.
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "robustness.md"
#: The demo bundle analyses the kill campaign's series (phases up to delivery need it).
DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "demo"
#: A C-ECHO slower than this counts as unanswered.
ECHO_LIMIT_S = 5.0


@dataclass(frozen=True)
class Scale:
    """How much of each attack a run makes."""

    kills: int
    kill_phases: tuple[str, ...]
    fuzzed: int
    pdu_streams: int
    half_open: int
    memory_senders: int
    inflated_mb: int
    oversize_mb: int
    #: How long the re-sent series may take to drain before the audit counts what is left.
    drain_s: float = 900.0


FULL = Scale(
    kills=20, kill_phases=PHASES, fuzzed=10_000, pdu_streams=1_000, half_open=100,
    memory_senders=16, inflated_mb=256, oversize_mb=96,
)  # fmt: skip
FAST = Scale(
    kills=2, kill_phases=("analysis", "delivery"), fuzzed=300, pdu_streams=80, half_open=20,
    memory_senders=4, inflated_mb=128, oversize_mb=80, drain_s=240.0,
)  # fmt: skip


@dataclass
class Section:
    """One attack's outcome: counts, the worst C-ECHO, whether the node stayed up."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)
    echo_worst_s: float = 0.0
    echo_missed: int = 0
    crashed: bool = False
    notes: list[str] = field(default_factory=list)

    def probe(self, node: NodeUnderTest) -> None:
        """C-ECHO the node now; record the time or the miss, and whether it is still up."""
        if not node.alive():
            self.crashed = True
            return
        seconds = echo_seconds(node.port, ECHO_LIMIT_S)
        if seconds is None:
            self.echo_missed += 1
        else:
            self.echo_worst_s = max(self.echo_worst_s, seconds)

    @property
    def passed(self) -> bool:
        """Up throughout and every C-ECHO answered in time."""
        return not self.crashed and self.echo_missed == 0


@dataclass
class Campaign:
    """Everything one run measured."""

    scale: Scale
    kills: KillOutcome | None = None
    sections: list[Section] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)
    storescu_ok: bool | None = None
    storescu_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether every criterion of the issue held."""
        return (
            (self.kills is None or self.kills.passed)
            and all(section.passed for section in self.sections)
            and self.storescu_ok is not False
            and self.memory.get("growth_mb", 0.0) <= self.memory.get("limit_mb", float("inf"))
        )


def fuzz(node: NodeUnderTest, template: Path, count: int, seed: int) -> Section:
    """Send ``count`` mutants, a C-ECHO every 100."""
    section = Section("fuzzed instances")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.dcm"
        for index, mutant in enumerate(mutants(template, count, seed)):
            path.write_bytes(mutant.data)
            try:
                acknowledged = send_files(node.port, [path])
            except Exception as error:  # noqa: BLE001 - the sender's own reader, fed garbage
                # The sender (pynetdicom) cannot even read it: nothing reaches the node.
                section.counts[f"not sendable ({type(error).__name__})"] += 1
                continue
            section.counts["acknowledged" if acknowledged else "refused"] += 1
            if index % 100 == 99:
                section.probe(node)
                if section.crashed:
                    section.notes.append(f"node down after mutant {index} ({mutant.operation})")
                    break
    section.probe(node)
    return section


def pdu_attack(node: NodeUnderTest, count: int, seed: int) -> Section:
    """Send ``count`` malformed PDU streams, a C-ECHO every 50."""
    section = Section("malformed PDU streams")
    for index, (kind, data) in enumerate(pdu_streams(count, seed)):
        try:
            send_raw(node.port, data)
            section.counts[kind] += 1
        except OSError:
            section.counts["connection refused"] += 1
        if index % 50 == 49:
            section.probe(node)
            if section.crashed:
                break
    section.probe(node)
    return section


def half_open_attack(campaign: Campaign, node: NodeUnderTest, series: Path, seed: int) -> Section:
    """Hold half-open connections while DCMTK storescu stores ``series``."""
    section = Section("half-open connections")
    sockets = half_open(node.port, campaign.scale.half_open, seed)
    try:
        section.counts["held open"] = len(sockets)
        section.probe(node)
        binary = shutil.which("storescu") or "storescu"
        start = time.monotonic()
        done = subprocess.run(
            [binary, "--scan-directories", "--aetitle", "SENDER", "--call", "PANCREAS_AI",
             "127.0.0.1", str(node.port), str(series)],
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        campaign.storescu_s = time.monotonic() - start
        campaign.storescu_ok = done.returncode == 0
        section.counts["storescu exit code"] = done.returncode
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
            section.notes.append("storescu: " + " / ".join(tail[-2:]))
        section.probe(node)
    finally:
        for conn in sockets:
            conn.close()
    return section


def memory_attack(campaign: Campaign, node: NodeUnderTest, workdir: Path) -> Section:
    """Concurrent decompression bombs and oversize instances; peak memory before and after."""
    section = Section("bombs and oversize instances")
    scale = campaign.scale
    files = []
    for index in range(scale.memory_senders):
        path = workdir / f"heavy-{index}.dcm"
        if index % 2 == 0:
            files.append(write_deflate_bomb(path, scale.inflated_mb))
        else:
            files.append(write_oversize(path, scale.oversize_mb))
    before = node.memory_mb("VmHWM")
    baseline = node.memory_mb("VmRSS")
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        acknowledged = list(pool.map(lambda p: bool(send_files(node.port, [p])), files))
    section.counts["acknowledged"] = sum(acknowledged)
    section.counts["refused"] = len(files) - sum(acknowledged)
    after = node.memory_mb("VmHWM")
    section.probe(node)
    campaign.memory = {
        "rss_before_mb": baseline,
        "peak_before_mb": before,
        "peak_after_mb": after,
        "growth_mb": max(0.0, after - max(before, baseline)),
        # Bounded by design: far below one instance's inflated size, let alone sixteen.
        "limit_mb": 512.0,
        "inflated_mb": float(scale.inflated_mb),
        "oversize_mb": float(scale.oversize_mb),
    }
    for path in files:
        path.unlink()
    return section


def run_campaign(workdir: Path, scale: Scale, seed: int = 22) -> Campaign:
    """Run every attack of ``scale`` against fresh nodes under ``workdir``."""
    campaign = Campaign(scale)
    destination_port = free_port()
    with storescp(workdir / "received", destination_port) as received:
        series = [make_series(workdir / f"series-{i}", seed + i) for i in range(scale.kills)]
        if scale.kills:
            bundle = DEMO_BUNDLE if (DEMO_BUNDLE / "bundle.json").is_file() else None
            killed = NodeUnderTest(workdir / "kill-node", destination_port, bundle)
            campaign.kills = KillCampaign(killed, received, seed, scale.kill_phases).run(
                series, scale.drain_s
            )
            _write(report(campaign, 0.0) + "\n(kill part only; the abuse part is running)\n")
        node = NodeUnderTest(workdir / "abuse-node", destination_port, None)
        node.start()
        try:
            template = make_series(workdir / "template", seed + 1000)
            campaign.sections.append(fuzz(node, template.files[0], scale.fuzzed, seed))
            campaign.sections.append(pdu_attack(node, scale.pdu_streams, seed))
            sent = template.files[0].parent
            campaign.sections.append(half_open_attack(campaign, node, sent, seed))
            campaign.sections.append(memory_attack(campaign, node, workdir))
        finally:
            node.stop()
    return campaign


def _kill_lines(campaign: Campaign) -> list[str]:
    outcome = campaign.kills
    if outcome is None:
        return []
    phases = ", ".join(f"{phase} {n}" for phase, n in sorted(outcome.kills.items()))
    states = ", ".join(f"{state} {n}" for state, n in sorted(outcome.final_states.items()))
    return [
        "## kill -9",
        "",
        f"{sum(outcome.kills.values())} kills ({phases}); {outcome.series} series, "
        f"{outcome.acknowledged} instances acknowledged; final job states: {states}.",
        "",
        "| check | found | goal |",
        "|---|---:|---:|",
        f"| acknowledged instances lost | {outcome.lost_instances} | 0 |",
        f"| series never delivered (lost jobs) | {outcome.lost_jobs} | 0 |",
        f"| objects received twice by storescp | {outcome.duplicate_deliveries} | 0 |",
        f"| objects received twice whose first copy arrived <= {ACK_WINDOW_S} s before a kill "
        "(the acknowledgement-to-record window no C-STORE sender can close; reported apart) | "
        f"{outcome.duplicates_in_ack_window} | - |",
        f"| extra success rows per (job, destination) | {outcome.duplicate_success_rows} | 0 |",
        *(f"\nNote: {note}" for note in outcome.notes),
        "",
    ]


def report(campaign: Campaign, seconds: float) -> str:
    """The campaign as Markdown."""
    scale = campaign.scale
    lines = [
        "# Robustness campaign (`make bench-robustness`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {seconds:.0f} s. Real `pancreas-node serve` child "
        "processes, DCMTK `storescp` as the destination and `storescu` as a sender, loopback.",
        "",
        f"**Overall: {'PASS' if campaign.passed else 'FAIL'}.**",
        "",
        *_kill_lines(campaign),
        "## Abuse (one node, no model bundle: jobs wait in the queue)",
        "",
        f"C-ECHO must be answered within {ECHO_LIMIT_S:.0f} s after every 100 fuzzed instances, "
        "every 50 PDU streams and around each other attack.",
        "",
        "| attack | outcome | C-ECHO missed | slowest C-ECHO s | node crashed |",
        "|---|---|---:|---:|---|",
        *(
            f"| {s.name} | {', '.join(f'{k} {v}' for k, v in sorted(s.counts.items()))} | "
            f"{s.echo_missed} | {s.echo_worst_s:.2f} | {'yes' if s.crashed else 'no'} |"
            for s in campaign.sections
        ),
        "",
        *(f"- {s.name}: {note}" for s in campaign.sections for note in s.notes),
        "",
    ]
    if campaign.storescu_ok is not None:
        lines += [
            f"storescu with {scale.half_open} half-open connections held: "
            f"{'stored the series' if campaign.storescu_ok else 'FAILED'} in "
            f"{campaign.storescu_s:.1f} s.",
            "",
        ]
    if campaign.memory:
        m = campaign.memory
        lines += [
            "## Memory",
            "",
            f"{scale.memory_senders} concurrent associations, half sending a deflate bomb "
            f"({m['inflated_mb']:.0f} MB inflated), half an uncompressed instance of "
            f"{m['oversize_mb']:.0f} MB (limit {64} MB): node resident {m['rss_before_mb']:.0f} "
            f"MB before, peak {m['peak_before_mb']:.0f} MB before and {m['peak_after_mb']:.0f} MB "
            f"after: growth {m['growth_mb']:.0f} MB (goal <= {m['limit_mb']:.0f} MB).",
            "",
        ]
    return "\n".join(lines)


def _write(text: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the campaign, write the report, exit 1 when a criterion failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fast", action="store_true", help="the subset make test runs")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        campaign = run_campaign(workdir, FAST if args.fast else FULL)
    text = report(campaign, time.monotonic() - start)
    _write(text)
    print(text)
    print(f"wrote {RESULTS}")
    return 0 if campaign.passed else 1


if __name__ == "__main__":
    sys.exit(main())
