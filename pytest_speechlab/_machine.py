"""The machine a run happened on, described once: every figure and report reads it from here."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
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
