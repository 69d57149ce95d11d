"""CPU seconds per component of a ``make bench-scale`` run, read from ``/proc`` (Linux).

Used by :mod:`bench.scale_bench` (issue 27): where the CPU of a throughput run goes (node,
workers, Orthanc, RabbitMQ, PostgreSQL, the rest of the machine).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# A component is a set of process trees: its roots are picked from each `/proc` scan by a
# `Roots` function, and every descendant (by `ppid`) belongs to it. Membership is sticky:
# a process once seen in a component stays in it while it lives, even when it is re-parented
# (a daemon that detaches, an orphan).
#
# What a process has used is `utime + stime + cutime + cstime` from `/proc/<pid>/stat`: its own
# CPU plus that of the children it has reaped (the kernel adds a child's times to its parent's
# `cutime`/`cstime` when the parent waits for it). So for a run, per component:
#
# * a process alive at both ends counts with its end value less its start value;
# * a process born during the run counts from zero;
# * a process that vanished during the run was reaped. If its parent (or, where that vanished
#   too, the first ancestor up the chain of reaped parents) is a tracked process alive at the
#   end, that one's `cutime`/`cstime` holds all of it: it counts there (less what it had used
#   before the run) and not again. Otherwise (reaped by an untracked process: init, for an
#   orphan) it counts with its own `utime + stime` at its largest sample (the per-process
#   maximum over the samples taken during the run); what it used after its last sample is
#   lost, and so is a short-lived process that no sample saw.
#
# PostgreSQL's backends are the case in point: each connection forks one, and the postmaster
# reaps it; the postmaster's `cutime` keeps them after they exit.
#
# The machine's total comes from the `cpu` line of `/proc/stat`: busy is
# `user + nice + system + irq + softirq`, idle is `idle + iowait`. Both and the per-process
# times are in clock ticks (`os.sysconf("SC_CLK_TCK")`), sampled by the kernel, so small
# components carry a tick or two of noise.
#

__all__ = [
    "CLK_TCK",
    "CpuAccount",
    "CpuUsage",
    "Proc",
    "Roots",
    "environ_has",
    "machine_ticks",
    "postmasters",
    "read_proc",
    "scan",
    "self_cpu_s",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One line of ``/proc/<pid>/stat``, the fields used here (times in clock ticks)."""

    pid: int
    ppid: int
    comm: str
    start: int  #: starttime: with the pid, tells a reused pid from the process first seen
    own: int  #: utime + stime
    reaped: int  #: cutime + cstime: the children it has waited for

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start

    @property
    def total(self) -> int:
        return self.own + self.reaped


def read_proc(pid: int) -> Proc | None:
    try:
        data = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    close = data.rindex(b")")
    comm = data[data.index(b"(") + 1 : close].decode(errors="replace")
    fields = data[close + 2 :].split()  # fields[0] is field 3 (state) of proc(5)
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        comm=comm,
        start=int(fields[19]),
        own=utime + stime,
        reaped=cutime + cstime,
    )


def scan() -> dict[int, Proc]:
    """Every process now in ``/proc``."""
    procs: dict[int, Proc] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            procs[proc.pid] = proc
    return procs


def machine_ticks() -> tuple[int, int]:
    """The machine's busy and idle clock ticks since boot, all CPUs together."""
    with (PROC / "stat").open("rb") as stat:
        line = stat.readline().split()
    user, nice, system, idle, iowait, irq, softirq = (int(x) for x in line[1:8])
    return user + nice + system + irq + softirq, idle + iowait


def environ_has(pid: int, entry: str) -> bool:
    """Whether the process's environment holds ``entry`` (``NAME=value``); False if unreadable."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return entry.encode() in environ.split(b"\0")


def postmasters(procs: dict[int, Proc]) -> list[int]:
    """PostgreSQL's postmasters: processes named ``postgres`` whose parent is not one."""
    return [
        p.pid
        for p in procs.values()
        if p.comm == "postgres"
        and (parent := procs.get(p.ppid)) is not None
        and parent.comm != "postgres"
    ]


#: A component's root pids, picked from one scan.
Roots = Callable[[dict[int, Proc]], Iterable[int]]


def _descendants(roots: Iterable[int], procs: dict[int, Proc]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in procs]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds used during one run."""

    wall_s: float
    components: dict[str, float]  #: per component, in the order given, then the extras
    machine_busy_s: float
    machine_idle_s: float
    #: The largest consumers outside every component, by command name: their own CPU as the
    #: samples saw it (a process that no sample saw is missing).
    others: list[tuple[str, float]]

    @property
    def other_s(self) -> float:
        """The machine's busy time that no component accounts for (kernel, other processes)."""
        return self.machine_busy_s - sum(self.components.values())


@dataclass
class CpuAccount:
    """Samples ``/proc`` at :meth:`start`, :meth:`sample` and :meth:`stop` of one run.

    ``roots`` maps each component's name to its :data:`Roots`; the benchmark's own process is
    added as ``benchmark`` (``RUSAGE_SELF``: all its threads).
    """

    roots: dict[str, Roots]
    _owner: dict[tuple[int, int], str] = field(default_factory=dict)
    _first: dict[tuple[int, int], Proc] = field(default_factory=dict)
    _last: dict[tuple[int, int], Proc] = field(default_factory=dict)
    _start_all: dict[tuple[int, int], Proc] = field(default_factory=dict)
    _seen: dict[tuple[int, int], Proc] = field(default_factory=dict)
    _machine: tuple[int, int] = (0, 0)
    _self_s: float = 0.0
    _t0: float = 0.0

    def start(self, now: float) -> None:
        procs = self.sample()
        self._start_all = {p.key: p for p in procs.values()}
        for key in self._owner:
            self._first[key] = self._last[key]
        self._machine = machine_ticks()
        self._self_s = self_cpu_s()
        self._t0 = now

    def sample(self) -> dict[int, Proc]:
        procs = scan()
        for name, roots in self.roots.items():
            for pid in _descendants(roots(procs), procs):
                self._owner.setdefault(procs[pid].key, name)
        for p in procs.values():
            self._seen[p.key] = p
            if p.key in self._owner:
                last = self._last.get(p.key)
                if last is None or p.total >= last.total:
                    self._last[p.key] = p
        return procs

    def _landing(self, key: tuple[int, int], alive: set[tuple[int, int]]) -> tuple[int, int] | None:
        """The live tracked process whose cutime/cstime holds a vanished one, if any."""
        seen: set[tuple[int, int]] = set()
        while key not in seen:
            seen.add(key)
            child = self._last[key]
            parents = [k for k in self._owner if k[0] == child.ppid and k[1] <= child.start]
            if not parents:
                return None
            key = max(parents, key=lambda k: k[1])
            if key in alive:
                return key
        return None

    def stop(self, now: float, extra: dict[str, float]) -> CpuUsage:
        """The usage since :meth:`start`; ``extra`` adds components measured elsewhere."""
        procs = self.sample()
        busy, idle = machine_ticks()
        self_s = self_cpu_s() - self._self_s
        alive = {key for key in self._owner if (p := procs.get(key[0])) and p.key == key}
        used = dict.fromkeys(self.roots, 0)
        for key, name in self._owner.items():
            first = self._first.get(key)
            if key in alive:
                used[name] += procs[key[0]].total - (first.total if first else 0)
                continue
            landed = self._landing(key, alive)
            if landed is not None:
                # Reaped into a tracked process alive now (its parent, or up a chain of reaped
                # parents): all of it is in that one's cutime/cstime, also what it had used
                # before the run.
                used[self._owner[landed]] -= first.total if first else 0
                continue
            # Reaped by an untracked process (init, for an orphan): its own last sample;
            # its reaped children count by theirs.
            used[name] += self._last[key].own - (first.own if first else 0)
        components = {name: ticks / CLK_TCK for name, ticks in used.items()}
        components.update(extra)
        components["benchmark"] = self_s
        me = os.getpid()
        by_name: dict[str, int] = {}
        for key, p in self._seen.items():
            # Not the benchmark, nor its children outside the components (storescu, counted
            # by its rusage).
            if key not in self._owner and me not in (p.pid, p.ppid):
                before = self._start_all.get(key)
                by_name[p.comm] = by_name.get(p.comm, 0) + p.own - (before.own if before else 0)
        others = sorted(((n, t / CLK_TCK) for n, t in by_name.items()), key=lambda x: -x[1])
        return CpuUsage(
            wall_s=now - self._t0,
            components=components,
            machine_busy_s=(busy - self._machine[0]) / CLK_TCK,
            machine_idle_s=(idle - self._machine[1]) / CLK_TCK,
            others=others[:3],
        )


def self_cpu_s() -> float:
    """This process's own CPU seconds (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
