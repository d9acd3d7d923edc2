"""Executors: how the runner's units of work (one item of any task, or one batch) are run. Only cache
misses reach an executor; it yields each Output as soon as it exists, so that the session scores and
records it as it arrives.

- ``SerialExecutor``: one after another in this process (the default).
- ``ProcessExecutor``: N worker processes on this machine, each building the model once with its
  share of the CPU threads. A worker that dies (a crash, a SIGKILL, the OOM killer) has its unit
  given to another worker, at most ``retries`` times; a model that fails to load in a worker stops
  the evaluation once, with the worker's message.
- ``ray_executor.RayExecutor``: the same units on Ray actors (``--speechlab-executor ray``).
"""
from __future__ import annotations

import os
import pickle
import sys
import traceback
from collections import deque
from typing import Any, Iterator

from .._types import Call, InputError, Invocation, Output, SpeechlabError, Utterance
from .runner import ModelLoadError, ModelPool, Runner, SerialExecutor

__all__ = ["ProcessExecutor", "Retries", "SerialExecutor", "threads_environment"]

THREAD_VARIABLES = ("SPEECHLAB_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def threads_environment(threads: int | None) -> dict[str, str]:
    """What tells a model how many threads to use: ``SPEECHLAB_THREADS`` (read by the plugins'
    ``default_threads()``) and the OpenMP/BLAS variables torch and NumPy read at import."""
    return {name: str(threads) for name in THREAD_VARIABLES} if threads else {}


class Retries:
    """A unit whose worker died goes back to the front of the queue, at most ``limit`` times; after
    that its utterances fail with the reason. Never dropped silently, never counted twice. Shared by
    the process and Ray executors; what happened goes to ``events`` (said in the summary)."""

    def __init__(self, limit: int, events: list[str]) -> None:
        self.limit, self.events = limit, events
        self.attempts: dict[int, int] = {}

    def lost(self, unit: tuple[int, list], pending: deque, who: str, what: str, detail: str) -> list[Output]:
        """``who`` died ("worker w2"), being a ``what`` ("worker process"), with ``detail``
        ("exit code -9") while running ``unit``."""
        unit_id, utterances = unit
        tries = self.attempts[unit_id] = self.attempts.get(unit_id, 0) + 1
        names = ", ".join(u.id for u in utterances)
        if tries <= self.limit:
            self.events.append(f"{who} died ({detail}) while running {names}; retried on another "
                               f"{what} (attempt {tries + 1})")
            pending.appendleft(unit)
            return []
        self.events.append(f"{who} died ({detail}) on {names} {tries} times; not retried again")
        return [failed(u, f"the {what} died {tries} times on this item (last {detail})") for u in utterances]


def failed(item, message: str):
    """The output of an item that could not be run: an utterance's input error, another item's
    failed call."""
    if isinstance(item, Utterance):
        return Output(item, error=InputError(item.source, message, item.id))
    return Call(item, Invocation(error=message))


def worker_payload(runner, spec, where: str) -> bytes:
    """What a worker process or Ray actor builds the model from: its spec and the runner's settings,
    pickled; a loader a new process cannot import (a lambda, a local function) is a clear error."""
    try:
        return pickle.dumps((spec, runner.repeats, runner.timeout, runner.seed))
    except Exception as exc:  # noqa: BLE001 - PicklingError, AttributeError, TypeError...
        raise SpeechlabError(
            f"model {spec.name!r} cannot be sent to {where} ({type(exc).__name__}: {exc}); its loader must be "
            "importable (a module-level function of an installed plugin or a conftest.py, not a lambda); "
            "run it without --speechlab-workers") from None


def _worker_main(conn, payload: bytes, worker_id: str, threads: int | None, path: list[str]) -> None:
    """A worker process: build the model once, then run every unit it is sent until told to stop."""
    os.environ.update(threads_environment(threads))
    sys.path[:0] = [p for p in path if p not in sys.path]
    try:
        spec, repeats, timeout, seed = pickle.loads(payload)
        pool = ModelPool()
        model = pool.get(spec)
        runner = Runner(repeats=repeats, timeout=timeout, worker=worker_id, seed=seed)
    except BaseException as exc:  # noqa: BLE001 - reported to the session, once
        message = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
        conn.send(("load_error", message, traceback.format_exc(limit=5)))
        return
    conn.send(("ready", model.info.get("threads")))
    while True:
        message = conn.recv()
        if message is None:
            break
        unit_id, unit = message
        conn.send(("outputs", unit_id, runner.run_unit(model, unit)))
    pool.close()


class ProcessExecutor:
    """``workers`` processes on this machine; units are handed out one at a time, so a slow unit
    never holds back the others and a dead worker loses only the unit it was running."""

    kind = "processes"

    def __init__(self, workers: int, threads: int | None = None, retries: int = 2) -> None:
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.retries = retries
        self.events: list[str] = []  # what happened to workers (deaths, retries), for the summary

    def close(self) -> None:
        return None

    def run(self, runner, model, units):
        spec = model.spec
        payload = worker_payload(runner, spec, "worker processes")
        import multiprocessing  # not at import: the plugin loads this module in every pytest run
        from multiprocessing.connection import wait

        context = multiprocessing.get_context("spawn")
        pending = deque(enumerate(units))
        retries = Retries(self.retries, self.events)
        started = 0  # worker processes started, for their names
        live: dict[Any, dict] = {}  # connection -> {"process", "id", "unit"}

        def start() -> None:
            nonlocal started
            started += 1
            parent, child = context.Pipe()
            worker_id = f"w{started}"
            process = context.Process(target=_worker_main, name=f"speechlab-{worker_id}", daemon=True,
                                      args=(child, payload, worker_id, self.threads, list(sys.path)))
            process.start()
            child.close()
            live[parent] = {"process": process, "id": worker_id, "unit": None, "ready": False}

        for _ in range(min(self.workers, len(pending))):
            start()
        try:
            while pending or any(w["unit"] is not None for w in live.values()):
                for conn, worker in live.items():
                    if worker["ready"] and worker["unit"] is None and pending:
                        worker["unit"] = pending.popleft()
                        conn.send(worker["unit"])
                sentinels = {w["process"].sentinel: conn for conn, w in live.items()}
                for conn in dict.fromkeys(sentinels.get(r, r) for r in wait([*live, *sentinels])):
                    worker = live.get(conn)
                    if worker is None:
                        continue
                    dead = False
                    try:
                        while conn.poll():  # what it sent before it died still counts, once
                            yield from self._receive(spec, worker, conn.recv())
                    except (EOFError, OSError):
                        dead = True
                    if dead or not worker["process"].is_alive():
                        worker["process"].join(timeout=5)
                        yield from self._lost(live.pop(conn), pending, retries)
                        conn.close()
                        busy = pending or any(w["unit"] is not None for w in live.values())
                        # every death with work in flight spends one of that unit's tries, so replacing
                        # the worker is bounded; deaths with none (at start-up) are bounded here
                        idle_deaths = sum("no work in flight" in e for e in self.events)
                        if busy and len(live) < self.workers and idle_deaths <= self.workers + 2:
                            start()
                        elif busy and not live:
                            raise SpeechlabError(f"every worker process of {spec.name} died; "
                                                 + "; ".join(self.events[-3:]))
        finally:
            for conn, worker in live.items():
                try:
                    conn.send(None)
                except OSError:
                    pass
            for conn, worker in live.items():
                worker["process"].join(timeout=10)
                if worker["process"].is_alive():
                    worker["process"].kill()
                conn.close()

    @staticmethod
    def _receive(spec, worker: dict, message: tuple) -> Iterator[Output]:
        kind = message[0]
        if kind == "load_error":
            raise SpeechlabError(f"{message[1]} (in worker process {worker['id']}; model {spec.name!r})")
        if kind == "ready":
            worker["ready"], worker["threads"] = True, message[1]
        elif kind == "outputs":
            worker["unit"] = None
            yield from message[2]

    def _lost(self, worker: dict, pending: deque, retries: Retries) -> list[Output]:
        code = worker["process"].exitcode
        if worker["unit"] is None:
            self.events.append(f"worker {worker['id']} exited ({code}) with no work in flight")
            return []
        return retries.lost(worker["unit"], pending, f"worker {worker['id']}", "worker process", f"exit code {code}")
