"""``make bench-scale``: studies per hour with 1 and 2 distributed workers, and a killed worker.

Issue 27, item 5. Everything real and on this machine: phantom studies sent with DCMTK
``storescu`` to ``pancreas-node serve`` in the distributed mode (``worker_mode = "celery"``), a
private RabbitMQ (:mod:`pancreas_node.rabbitmq_server`), a fresh PostgreSQL database per run as
the record of truth, ``pancreas-node worker --threads 1`` processes analysing with the trained
demo bundle ``bundles/demo/``, and a private Orthanc receiving the results (SEG, SR, PDF).

1. Throughput: the same ``BENCH_SCALE_STUDIES`` (40) studies, sent in one association, with 1
   and then 2 workers; studies per hour from the start of the send to the last delivery, and
   the ratio.
2. A killed worker: 2 workers; while the first study's job runs, its worker gets SIGKILL; the
   time until the other worker restarts the job is measured, a new worker is started (as a
   supervisor would) and more studies are sent; then every study must have exactly one result,
   one successful delivery and its objects once in Orthanc.

For each throughput run, where the CPU went: CPU seconds of the node, the workers, Orthanc,
RabbitMQ, PostgreSQL, storescu and the benchmark itself, from ``/proc`` (see
:mod:`bench._cpu_accounting`), against the machine's busy and idle time.

Writes ``scale.md`` to ``BENCH_RESULTS_DIR`` (``bench/results/local/`` by default).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import TupleRow
from pynetdicom import AE

from bench._cpu_accounting import (
    CpuAccount,
    CpuUsage,
    Proc,
    environ_has,
    postmasters,
)
from pancreas_node.orthanc_server import OrthancConfig, OrthancServer
from pancreas_node.rabbitmq_server import RabbitMQConfig, RabbitMQServer
from phantom import PhantomOptions, generate_cohort

ROOT = Path(__file__).resolve().parents[1]
DEMO_BUNDLE = ROOT / "bundles" / "demo"
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or LOCAL_RESULTS) / "scale.md"
PG_SERVER = os.environ.get("PANCREAS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
STUDIES = int(os.environ.get("BENCH_SCALE_STUDIES", "40"))
KILL_STUDIES = min(6, STUDIES)
LEASE_S = 6.0
#: How often the benchmark polls the jobs' states (one query on one persistent connection):
#: the time of the last delivery, a job's takeover, are known to this resolution.
POLL_S = 0.5
#: A /proc sample for the CPU accounting every this many polls (and at each run's ends).
SAMPLE_EVERY = 4
#: Small phantoms: 300 x 300 x 200 mm at 1.5 mm pixels and 3 mm slices (200 x 200 x 67).
PHANTOM = PhantomOptions(fov_mm=(300.0, 300.0, 200.0), pixel_spacing=1.5, slice_thickness=3.0)
PHANTOM_TEXT = "300 x 300 x 200 mm field of view, 1.5 mm pixels, 3 mm slices (200 x 200 x 67)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise RuntimeError(f"not within {timeout_s:.0f} s: {what}")


def echo_answers(port: int) -> bool:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="PANCREAS_AI")
    if not assoc.is_established:
        return False
    assoc.release()
    return True


@dataclass
class Stack:
    """One run: its database, Orthanc, node and workers."""

    work: Path
    broker: str
    database: str
    orthanc: OrthancServer
    port: int = field(default_factory=free_port)
    queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    node: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: The benchmark's own connection for its polling and checks: opened on the first query,
    #: kept (a new connection per poll would fork a PostgreSQL backend each time), closed by
    #: :meth:`stop`.
    conn: psycopg.Connection[TupleRow] | None = None

    @property
    def url(self) -> str:
        return f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{self.database}"

    def env(self) -> dict[str, str]:
        destination = {"ae_title": "ORTHANC", "host": "127.0.0.1"}
        destination["port"] = str(self.orthanc.config.dicom_port)
        return {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PANCREAS_AI_DATA_DIR": str(self.work / "data"),
            "PANCREAS_AI_PORT": str(self.port),
            "PANCREAS_AI_DATABASE_URL": self.url,
            "PANCREAS_AI_WORKER_MODE": "celery",
            "PANCREAS_AI_BROKER_URL": self.broker,
            "PANCREAS_AI_CELERY_QUEUE": self.queue,
            "PANCREAS_AI_JOB_LEASE_S": str(LEASE_S),
            "PANCREAS_AI_QUIET_PERIOD_S": "2",
            "PANCREAS_AI_BUNDLE_PATH": str(DEMO_BUNDLE),
            "PANCREAS_AI_DEVICE": "cpu",
            "PANCREAS_AI_DESTINATIONS": json.dumps([destination]),
        }

    def start_node(self) -> None:
        log = (self.work / "node.out").open("wb")
        self.node = subprocess.Popen(
            [sys.executable, "-m", "pancreas_node", "serve"],
            env=self.env(),
            cwd=self.work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: echo_answers(self.port), 120, "the node answers C-ECHO")

    def start_worker(self) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        out = self.work / f"worker-{index}.out"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pancreas_node",
                "worker",
                "--threads",
                "1",
                "--name",
                f"w{index}@bench",
            ],
            env=self.env(),
            cwd=self.work,
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        wait_until(lambda: b" ready." in out.read_bytes(), 180, f"worker {index} is ready")
        return process

    def stop(self) -> None:
        for process in [*self.workers, self.node]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.node]:
            if process is None:
                continue
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                f"{PG_SERVER}/{self.database}", connect_timeout=5, autocommit=True
            )
        return list(self.conn.execute(sql, args).fetchall())

    def states(self) -> dict[str, int]:
        return {str(s): int(str(n)) for s, n in self.query(self._STATES)}

    _STATES = "SELECT state, count(*) FROM jobs GROUP BY state"


@contextmanager
def stack(work: Path, broker: str) -> Iterator[Stack]:
    work.mkdir(parents=True)
    name = f"bench_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a fresh name of hex digits, quoted
    orthanc = OrthancServer(
        OrthancConfig(work_dir=work / "orthanc", http_port=free_port(), dicom_port=free_port())
    )
    orthanc.start()
    made = Stack(work=work, broker=broker, database=name, orthanc=orthanc)
    try:
        yield made
    finally:
        made.stop()
        orthanc.stop()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def send(port: int, series: list[Path]) -> float:
    """Send the series with ``storescu`` in one association; the CPU seconds it used.

    The process is reaped with ``os.wait4``, whose rusage is storescu's own (user + system),
    exact whatever else the benchmark does meanwhile.
    """
    files = [str(f) for folder in series for f in sorted(folder.glob("*.dcm"))]
    command = ["storescu", "-aet", "BENCH", "-aec", "PANCREAS_AI", "127.0.0.1", str(port)]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen([*command, *files], stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(1800, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            out.seek(0)
            raise subprocess.CalledProcessError(process.returncode, command, out.read())
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Check:
    """What the database and Orthanc hold at the end of a run."""

    jobs: int
    delivered: int
    results: int
    jobs_with_one_success: int
    objects: int
    orthanc_instances: int
    orthanc_studies: int
    attempts: dict[int, int]
    mean_analysis_s: float

    @property
    def exactly_once(self) -> bool:
        return (
            self.jobs == self.delivered == self.results == self.jobs_with_one_success
            and self.objects == self.orthanc_instances
        )


def check(run: Stack) -> Check:
    stats = run.orthanc.get_json("/statistics")
    successes = run.query(
        "SELECT job_id, count(*) FROM delivery_attempts WHERE status = 'success' GROUP BY job_id"
    )
    attempts = run.query("SELECT attempts, count(*) FROM jobs GROUP BY attempts")
    analysis = run.query("SELECT avg((timings_s->>'total')::float) FROM results")[0][0]
    return Check(
        jobs=int(str(run.query("SELECT count(*) FROM jobs")[0][0])),
        delivered=run.states().get("delivered", 0),
        results=int(str(run.query("SELECT count(*) FROM results")[0][0])),
        jobs_with_one_success=sum(1 for _, n in successes if n == 1),
        objects=int(
            str(run.query("SELECT count(DISTINCT sop_instance_uid) FROM delivered_objects")[0][0])
        ),
        orthanc_instances=int(stats["CountInstances"]),
        orthanc_studies=int(stats["CountStudies"]),
        attempts={int(str(a)): int(str(n)) for a, n in attempts},
        mean_analysis_s=float(str(analysis or 0.0)),
    )


@dataclass(frozen=True)
class Throughput:
    workers: int
    send_s: float
    total_s: float
    first_claim_s: float
    load: float
    check: Check
    cpu: CpuUsage

    @property
    def per_hour(self) -> float:
        return STUDIES / self.total_s * 3600.0


#: The private broker's processes that carry its epmd port in their environment (the start
#: script, the Erlang VM, and epmd, which detaches from the VM's tree).
BROKER_COMMANDS = ("rabbitmq-server", "beam.smp", "epmd")


def accounting(run: Stack, broker: RabbitMQServer) -> CpuAccount:
    """Per-component CPU of one run: node, workers, Orthanc, RabbitMQ, PostgreSQL trees."""
    me = os.getpid()
    marker = f"ERL_EPMD_PORT={broker.config.epmd_port}"

    def node(_: dict[int, Proc]) -> list[int]:
        return [run.node.pid] if run.node is not None else []

    def workers(_: dict[int, Proc]) -> list[int]:
        return [worker.pid for worker in run.workers]

    def orthanc(procs: dict[int, Proc]) -> list[int]:
        return [p.pid for p in procs.values() if p.ppid == me and p.comm == "Orthanc"]

    def rabbitmq(procs: dict[int, Proc]) -> list[int]:
        return [
            p.pid
            for p in procs.values()
            if p.comm in BROKER_COMMANDS and environ_has(p.pid, marker)
        ]

    return CpuAccount(
        {
            "node (`serve`)": node,
            "workers": workers,
            "Orthanc": orthanc,
            "RabbitMQ": rabbitmq,
            "PostgreSQL": postmasters,
        }
    )


def throughput(work: Path, broker: RabbitMQServer, series: list[Path], workers: int) -> Throughput:
    with stack(work, broker.url) as run:
        run.start_node()
        for _ in range(workers):
            run.start_worker()
        run.states()  # the polling connection, opened before the run
        account = accounting(run, broker)
        storescu_s: list[float] = []

        def sending() -> None:
            storescu_s.append(send(run.port, series))

        sender = threading.Thread(target=sending, daemon=True)
        account.start(time.monotonic())
        start = time.monotonic()
        sender.start()
        send_s = first_claim_s = 0.0
        loads: list[float] = []
        deadline = start + 3600
        polls = 0
        while time.monotonic() < deadline:
            states = run.states()
            now = time.monotonic() - start
            loads.append(os.getloadavg()[0])
            if not first_claim_s and sum(states.values()) > states.get("queued", 0):
                first_claim_s = now
            if not send_s and not sender.is_alive():
                send_s = now
            if states.get("failed", 0):
                reasons = run.query("SELECT failure_reason FROM jobs WHERE state = 'failed'")
                raise RuntimeError(f"a job failed: {reasons}")
            if states.get("delivered", 0) == len(series):
                break
            polls += 1
            if polls % SAMPLE_EVERY == 0:
                account.sample()
            time.sleep(POLL_S)
        else:
            raise RuntimeError(f"{len(series)} studies not delivered within an hour")
        total_s = time.monotonic() - start
        sender.join(timeout=60)  # storescu has sent everything; its release and exit
        cpu = account.stop(time.monotonic(), {"storescu": sum(storescu_s)})
        load = sum(loads) / len(loads) if loads else 0.0
        return Throughput(workers, send_s, total_s, first_claim_s, load, check(run), cpu)


@dataclass(frozen=True)
class Kill:
    killed_after_s: float
    restart_s: float
    check: Check


def killed_worker(work: Path, broker: str, series: list[Path]) -> Kill:
    with stack(work, broker) as run:
        run.start_node()
        first, _second = run.start_worker(), run.start_worker()
        send(run.port, series[:1])
        wait_until(lambda: run.states().get("running", 0) == 1, 120, "the first job runs", POLL_S)
        job_id, owner = run.query("SELECT id, lease_owner FROM jobs WHERE state = 'running'")[0]
        holder = int(str(owner).split("/")[2])  # <host>/worker/<pid>/<random>
        running_since = time.monotonic()
        time.sleep(3.0)  # mid-job: past the claim, well before the end
        os.kill(holder, signal.SIGKILL)
        killed = time.monotonic()
        killed_after = killed - running_since

        def taken_over() -> bool:
            rows = run.query("SELECT state, lease_owner FROM jobs WHERE id = %s", job_id)
            state, now_owner = rows[0]
            return state != "running" or now_owner != owner

        wait_until(taken_over, 120, "another worker takes the killed worker's job", POLL_S)
        restart = time.monotonic() - killed
        assert holder in {first.pid, _second.pid}
        run.start_worker()  # the supervisor's replacement (systemd Restart=always)
        send(run.port, series[1:KILL_STUDIES])
        wait_until(
            lambda: run.states().get("delivered", 0) == KILL_STUDIES, 1800, "all delivered", POLL_S
        )
        return Kill(killed_after, restart, check(run))


def cpu_section(runs: list[Throughput]) -> list[str]:
    """Where each throughput run's CPU went: per component, per study, share of the busy CPU."""
    cores = os.cpu_count() or 1
    names = list(runs[0].cpu.components)
    head = " | ".join(f"{r.workers} worker(s): CPU s | per study s | share" for r in runs)
    lines = [
        "",
        "## Where the CPU goes",
        "",
        "CPU seconds (user + system) each component used from the start of the send to the "
        "last delivery, per study, and its share of the machine's busy CPU in that time. Process "
        "trees from `/proc/<pid>/stat` (`utime + stime`, with `cutime + cstime` for the "
        "children a process reaped), sampled at each run's ends and every "
        f"{POLL_S * SAMPLE_EVERY:.0f} s; PostgreSQL is the postmaster's tree (its `cutime` "
        "keeps the backends that exited, the benchmark's own polling backend among them). "
        "storescu: its rusage from `os.wait4`; the benchmark: its own `RUSAGE_SELF` (polling "
        f"the jobs' states every {POLL_S:.1f} s on one connection, and these samples). Machine: "
        "`/proc/stat`, busy = user + nice + system + irq + softirq; other = machine busy less "
        "the components (kernel threads, other processes on the machine).",
        "",
        f"| component | {head} |",
        "|---" + "|---:" * (3 * len(runs)) + "|",
    ]

    def row(label: str, values: list[float]) -> str:
        cells = []
        for run, value in zip(runs, values, strict=True):
            busy = max(run.cpu.machine_busy_s, 1e-9)
            cells += [f"{value:.1f}", f"{value / STUDIES:.2f}", f"{100 * value / busy:.0f} %"]
        return f"| {label} | " + " | ".join(cells) + " |"

    for name in names:
        lines.append(row(name, [r.cpu.components[name] for r in runs]))
    lines += [
        row("other (machine busy less the above)", [r.cpu.other_s for r in runs]),
        row("**machine busy**", [r.cpu.machine_busy_s for r in runs]),
        "",
    ]
    for run in runs:
        cpu = run.cpu
        capacity = cores * cpu.wall_s
        w = cpu.components["workers"] / STUDIES
        o = (cpu.machine_busy_s - cpu.components["workers"]) / STUDIES
        best = cores * 3600.0 / (w + o)
        others = ", ".join(f"`{name}` {s:.1f} s" for name, s in cpu.others) or "none"
        lines.append(
            f"- {run.workers} worker(s): {cpu.wall_s:.1f} s x {cores} cores = {capacity:.1f} "
            f"CPU s; busy {cpu.machine_busy_s:.1f} s, idle {cpu.machine_idle_s:.1f} s "
            f"({100 * cpu.machine_idle_s / max(capacity, 1e-9):.0f} %). Per study: workers "
            f"W = {w:.2f} s, everything else O = {o:.2f} s; {cores} cores / (W + O) = "
            f"**{best:.0f} studies/hour** with every core busy, measured {run.per_hour:.0f}. "
            f"Largest others by command name, own CPU as the {POLL_S * SAMPLE_EVERY:.0f}-s "
            f"samples saw it: {others}."
        )
    return lines


def report(runs: list[Throughput], kill: Kill, load: str, seconds: float) -> str:
    one, two = runs
    ratio = two.per_hour / one.per_hour
    slowdown = two.check.mean_analysis_s / max(one.check.mean_analysis_s, 1e-9)
    lines = [
        "# Scale-out: studies per hour with 1 and 2 workers (make bench-scale)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.machine()}), {os.cpu_count()} CPU cores, CPU only; each worker "
        "`pancreas-node worker --threads 1` (solo pool, one job at a time, prefetch 1).",
        f"Studies: {STUDIES} phantom CTs (`phantom.generate_cohort`, seed 27), {PHANTOM_TEXT}, "
        "sent with DCMTK `storescu` in one association to `pancreas-node serve` "
        '(`worker_mode = "celery"`, quiet period 2 s); a private RabbitMQ '
        f"3.10 broker, a fresh PostgreSQL database per run, job lease {LEASE_S:.0f} s; results "
        "(SEG, SR, PDF) delivered by the worker to a private Orthanc.",
        "Model: the trained demo bundle `bundles/demo/` (no detection, lymph-node or survival "
        "bundle).",
        f"The benchmark polls the jobs' states every {POLL_S:.1f} s (one query on one "
        "connection): the last delivery and the takeover of a killed worker's job are timed "
        "to that resolution.",
        "",
        "| workers | send s | first job claimed s | send to last delivery s | studies/hour "
        "| mean analysis s per study | mean 1-min load average |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.workers} | {run.send_s:.1f} | {run.first_claim_s:.1f} | "
            f"{run.total_s:.1f} | {run.per_hour:.0f} | {run.check.mean_analysis_s:.1f} | "
            f"{run.load:.1f} |"
        )
    lines += [
        "",
        f"Ratio 2 workers / 1 worker: **{ratio:.2f}x** (target >= 1.8x).",
        "",
        f"One study's analysis took {one.check.mean_analysis_s:.1f} s with 1 worker and "
        f"{two.check.mean_analysis_s:.1f} s with 2 ({slowdown:.2f}x): two workers scale only as "
        f"far as the cores are free; {2 / slowdown:.2f}x is what the slower analyses allow "
        "(2 / that slowdown). Two single-threaded workers on two idle cores keep it near 1.",
        "",
        "Each run's end state (every study exactly once):",
        "",
        "| workers | jobs | delivered | result rows | jobs with one successful delivery "
        "| objects delivered | instances in Orthanc | studies in Orthanc | exactly once |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for run in runs:
        c = run.check
        lines.append(
            f"| {run.workers} | {c.jobs} | {c.delivered} | {c.results} | "
            f"{c.jobs_with_one_success} | {c.objects} | {c.orthanc_instances} | "
            f"{c.orthanc_studies} | {'yes' if c.exactly_once else 'NO'} |"
        )
    lines += cpu_section(runs)
    c = kill.check
    lines += [
        "",
        "## A worker killed mid-job",
        "",
        f"2 workers; the first study's worker got SIGKILL {kill.killed_after_s:.1f} s into the "
        f"job; **another worker restarted the job {kill.restart_s:.1f} s later** (target "
        f"<= 10 s; the lease is {LEASE_S:.0f} s, renewed every {LEASE_S / 3:.0f} s, and the "
        "killed worker's unacknowledged message went back to the queue as its connection "
        f"closed). A replacement worker was started and {KILL_STUDIES - 1} more studies sent.",
        "",
        f"End state: {c.jobs} jobs, {c.delivered} delivered, {c.results} result rows, "
        f"{c.jobs_with_one_success} with exactly one successful delivery, {c.objects} objects "
        f"delivered and {c.orthanc_instances} instances in Orthanc ({c.orthanc_studies} "
        f"studies); attempts per job: "
        + ", ".join(f"{n} job(s) with {a}" for a, n in sorted(c.attempts.items()))
        + f". Nothing lost or duplicated: **{'yes' if c.exactly_once else 'NO'}**.",
        "",
        f"Load average before the runs: {load}. The 2-worker ratio is only meaningful when "
        "the two cores are otherwise idle: each analysis is single-threaded (torch 1 thread), "
        "so two workers need two free cores; the node (intake, assembly, publishing) and "
        "Orthanc share them too.",
        "",
        f"Whole benchmark: {seconds / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    os.environ["TCP_NODELAY"] = "1"  # see intake_bench.py: Nagle on loopback
    for tool in ("storescu", "/usr/sbin/Orthanc", "/usr/lib/rabbitmq/bin/rabbitmq-server"):
        if shutil.which(tool) is None and not Path(tool).is_file():
            print(f"bench-scale: {tool} is missing (run make system-deps)", file=sys.stderr)
            return 1
    if not (DEMO_BUNDLE / "bundle.json").is_file():
        print("bench-scale: bundles/demo/ is missing", file=sys.stderr)
        return 1
    started = time.monotonic()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        generate_cohort(work / "phantom", STUDIES, 27, PHANTOM)
        series = sorted(p for p in (work / "phantom").glob("*/dicom") if p.is_dir())
        with RabbitMQServer(RabbitMQConfig(work / "rabbitmq")) as broker:
            runs = [throughput(work / f"run-{n}", broker, series, n) for n in (1, 2)]
            for run in runs:
                print(f"{run.workers} worker(s): {run.per_hour:.0f} studies/hour", flush=True)
            kill = killed_worker(work / "kill", broker.url, series)
            print(f"killed worker: restarted after {kill.restart_s:.1f} s", flush=True)
        text = report(runs, kill, load, time.monotonic() - started)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text, encoding="utf-8")
        print(text)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
