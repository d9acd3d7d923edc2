"""The machine a run happened on, described once: every figure and report reads it from here."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def machine() -> dict[str, Any]:
    """Host, CPU and Python of this process (the same for the whole session)."""
    return {"host": platform.node(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0], "platform": platform.platform(), "system": platform.system(),
            "release": platform.release(), "arch": platform.machine(), "processor": platform.processor()}


@functools.lru_cache(maxsize=None)
def git_state(root: Path) -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, commit time) of the git checkout at ``root``: the time is the committer's, ISO
    8601 (what the viewer orders trends by); (None, None, None) outside one or without git. Asked
    once per session."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    committed = git("show", "-s", "--format=%cI", "HEAD") if commit else None
    return commit, (bool(status) if status is not None else None), committed or None


def default_threads(cap: int = 4) -> int:
    """How many CPU threads a model should use: ``SPEECHLAB_THREADS`` when the session sets it (its
    share under ``--speechlab-workers``, or ``--speechlab-threads``), else up to ``cap`` of this
    machine's CPUs. Model plugins call it when they build a model."""
    value = os.environ.get("SPEECHLAB_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(cap, os.cpu_count() or 1))


def compute_threads(info: dict[str, Any], executor: Any = None) -> int | None:
    """The threads each model instance that computes runs with: a worker's share where worker
    processes or actors run the model, else what the model reports of itself."""
    return (getattr(executor, "threads", None) if getattr(executor, "workers", 1) > 1 else None) or info.get("threads")


def environment(info: dict[str, Any], batch_size: int = 1, executor: Any = None) -> dict[str, Any]:
    """What is recorded with every figure of a model (``info``: its identity) on this machine;
    ``executor``: what ran its invocations (its ``workers`` and ``threads``)."""
    here = machine()
    workers = getattr(executor, "workers", 1)
    return {
        "cpu": here["cpu"], "cpu_count": here["cpu_count"], "python": here["python"], "platform": here["platform"],
        "arch": here["arch"],
        "device": info.get("device", "cpu"),
        "threads": compute_threads(info, executor),
        "batch_size": batch_size, "workers": workers, "executor": getattr(executor, "kind", "serial"),
        "timing": ("inference timed per utterance; load and one warm-up call excluded" if batch_size <= 1 and workers <= 1
                   else f"each request timed on its own, {workers} in flight at once (latency per request, throughput "
                   "on the wall clock); load and one warm-up request excluded" if getattr(executor, "kind", "") == "threads"
                   else "inference timed per utterance; load and one warm-up call excluded" if batch_size <= 1 else
                   f"inference timed per batch of up to {batch_size}, shared among its utterances by audio length; "
                   "load and one warm-up call excluded"),
    }


def benchmark_machine_info() -> dict[str, Any]:
    """This machine in pytest-benchmark's ``machine_info`` layout."""
    here = machine()
    return {"node": here["host"], "processor": here["processor"], "machine": here["arch"],
            "python_version": platform.python_version(), "system": here["system"], "release": here["release"],
            "cpu": {"brand_raw": here["cpu"], "count": here["cpu_count"]}}


# -- contention: was the machine busy while a model was timed? ------------------------------------

BUSY_TOLERANCE = 0.25  # [tool.speechlab] busy_tolerance: the share of the CPUs other processes may use
MIN_PROBE_S = 1.0  # a stretch of timing shorter than this is too short to measure contention over


def _proc_stat() -> tuple[float, float, int] | None:
    """(busy, total) jiffies of all CPUs and the CPU count, from /proc/stat (Linux); None elsewhere.
    Steal time counts as busy: on a virtual machine it is CPU another guest took."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    first = lines[0].split() if lines else []
    if not first or first[0] != "cpu":
        return None
    values = [float(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    count = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    return sum(values) - idle, sum(values), max(1, count)


def _own_cpu_seconds() -> float:
    """CPU seconds of this process, its reaped children, and its live descendants (worker processes,
    a local Ray's raylet and actors): the work that is ours, not contention."""
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    try:
        tick = os.sysconf("SC_CLK_TCK")
        entries = [p for p in os.listdir("/proc") if p.isdigit()]
    except (OSError, ValueError, AttributeError):
        return own
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(pid)] = int(fields[1])
        cpu[int(pid)] = (float(fields[11]) + float(fields[12])) / tick  # utime, stime
    me = os.getpid()
    for pid in parents:
        ancestor, hops = parents.get(pid), 0
        while ancestor and ancestor != me and hops < 64:
            ancestor, hops = parents.get(ancestor), hops + 1
        if ancestor == me:
            own += cpu[pid]
    return own


def _psi_some() -> float | None:
    """Microseconds some task waited for a CPU since boot (Linux pressure stall information)."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("some"):
                    return float(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class ContentionProbe:
    """Measures how much CPU other processes took while a stretch of timing ran: the machine's busy
    CPU time (``/proc/stat``) less this process tree's own, as a share of all its CPUs over the
    wall-clock time. Also kept as evidence: the load average at the end, and the share of the time
    some task waited for a CPU (``/proc/pressure/cpu``, our own threads included). Where
    ``/proc/stat`` is missing (not Linux) the load average beyond this process's threads stands in."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._stat = _proc_stat()
        self._own = _own_cpu_seconds()
        self._psi = _psi_some()

    def finish(self, tolerance: float = BUSY_TOLERANCE) -> dict[str, Any]:
        wall = time.monotonic() - self._wall
        stat, own, psi = _proc_stat(), _own_cpu_seconds(), _psi_some()
        out: dict[str, Any] = {"wall_s": round(wall, 3), "tolerance": tolerance, "cpus": os.cpu_count()}
        try:
            out["loadavg_1m"] = round(os.getloadavg()[0], 2)
        except (OSError, AttributeError):
            pass
        if psi is not None and self._psi is not None and wall > 0:
            out["cpu_wait_share"] = round(max(0.0, psi - self._psi) / 1e6 / wall, 3)
        if wall < MIN_PROBE_S:  # /proc/stat counts in 10 ms ticks: a shorter stretch cannot be told apart
            out.update(others_share=None, method=f"not measured: {wall:.2f} s is too short (under {MIN_PROBE_S:g} s)")
        elif stat is not None and self._stat is not None and stat[1] > self._stat[1]:
            busy = (stat[0] - self._stat[0]) / (stat[1] - self._stat[1])  # share of all CPUs busy
            mine = max(0.0, own - self._own) / (wall * stat[2]) if wall > 0 else 0.0
            out.update(cpus=stat[2], machine_busy_share=round(busy, 3), own_share=round(min(mine, busy), 3),
                       others_share=round(max(0.0, busy - mine), 3), method="/proc/stat less this process tree")
        elif "loadavg_1m" in out:  # without /proc/stat: runnable tasks beyond ours, per CPU
            others = max(0.0, out["loadavg_1m"] - threading.active_count())
            out.update(others_share=round(min(1.0, others / (os.cpu_count() or 1)), 3), method="load average")
        else:
            out.update(others_share=None, method="not measured on this system")
        share = out["others_share"]
        out["busy"] = share is not None and share > tolerance
        return out


def contention_text(contention: dict | None) -> str:
    """``others took 61% of the 2 CPUs (tolerance 25%), load 4.3``: for messages and reports."""
    if not contention or contention.get("others_share") is None:
        return "contention not measured"
    parts = [f"other processes used {contention['others_share']:.0%} of the {contention.get('cpus')} CPUs "
             f"over {contention.get('wall_s', 0):.1f} s (tolerance {contention.get('tolerance', BUSY_TOLERANCE):.0%})"]
    if contention.get("loadavg_1m") is not None:
        parts.append(f"load average {contention['loadavg_1m']:.1f}")
    if contention.get("cpu_wait_share") is not None:
        parts.append(f"tasks waited for a CPU {contention['cpu_wait_share']:.0%} of the time")
    return ", ".join(parts)
