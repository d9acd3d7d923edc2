"""The Ray executor (``--speechlab-executor ray``): the runner's units on Ray actors.

Actors rather than Ray Data's ``map_batches``: a unit is a handful of utterances whose outputs must
stream back to the session as each finishes (it scores and records them as they arrive, and the
cache makes a killed run resumable); an actor builds the model once and keeps it, ``ray.wait`` hands
back whichever unit finished first, and a dead actor (``RayActorError``) loses only the unit it held,
which goes to another actor. Ray Data would add a dataset layer that converts our values to blocks
and buffers results, for no gain at this granularity.

Every task runs here (ASR utterances, TTS texts, chat prompts). By default audio is shipped, not
shared: the session reads each file and sends its bytes with the unit, so a cluster
(``ray://host:10001`` or ``auto``) needs no shared storage, only the model plugins installed on its
nodes; with ``audio="shared"`` (``--speechlab-ray-audio shared``) units carry paths, which every node
reads from storage they all mount at the same place. Actors are spread over the cluster's nodes
(Ray's SPREAD strategy), and each utterance records the actor and the node that ran it
(``ray-2@node-1a2b3c4d``); a node lost mid-run loses only the units its actors held, which go to
actors on the nodes left. Without an address a local Ray is started for the session (dashboard off, its files
under a temporary folder, token authentication on with a token made for the session and kept in its
environment, never in a file) and stopped after it.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import secrets
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from .._types import Output, SpeechlabError, Utterance
from .executors import Retries, threads_environment, worker_payload
from .runner import ModelPool, Runner

INSTALL = 'pip install "pytest-speechlab[ray]"'


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SpeechlabError(f"--speechlab-executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


class _Actor:
    """One model, built once in the actor's process; runs units whose audio travels with them."""

    def __init__(self, payload: bytes, worker_id: str, threads: int | None) -> None:
        import ray

        os.environ.update(threads_environment(threads))
        spec, repeats, timeout, seed = pickle.loads(payload)
        self.pool = ModelPool()
        self.model = self.pool.get(spec)  # a load failure surfaces as the actor's creation error
        node = ray.get_runtime_context().get_node_id() or "?"
        self.runner = Runner(repeats=repeats, timeout=timeout, worker=f"{worker_id}@node-{node[:8]}", seed=seed)
        self.folder = Path(tempfile.mkdtemp(prefix="speechlab-ray-"))

    def run(self, unit: list[tuple[Any, bytes | None]]) -> list:
        local, originals = [], {}
        for i, (utt, data) in enumerate(unit):
            originals[utt.id] = utt
            if data is None:  # not audio (a text, a prompt), or the session could not read it (reported)
                local.append(utt)
                continue
            path = self.folder / f"{i}{Path(utt.audio_path).suffix[:10]}"
            path.write_bytes(data)
            local.append(dataclasses.replace(utt, audio_path=str(path)))
        outputs = self.runner.run_unit(self.model, local)
        for path in self.folder.iterdir():
            path.unlink()
        for output in outputs:  # the records keep the session's own paths
            if isinstance(output, Output):
                output.utterance = originals[output.utterance.id]
        return outputs

    def threads(self):
        return self.model.info.get("threads")


class RayExecutor:
    kind = "ray"

    AUDIO = ("ship", "shared")

    def __init__(self, workers: int, threads: int | None, address: str | None, retries: int = 2,
                 audio: str = "ship") -> None:
        if audio not in self.AUDIO:
            raise SpeechlabError(f"--speechlab-ray-audio {audio!r}: ship (the session sends each clip with its "
                                 "unit) or shared (every node reads the same paths)")
        self.workers, self.threads, self.address, self.retries, self.audio = workers, threads or 1, address, retries, audio
        self.events: list[str] = []
        # per unit: items, audio bytes sent, seconds from sending to outputs back, and whether it was
        # its actor's first (which includes starting the actor and building the model)
        self.shipped: list[tuple[int, int, float, bool]] = []
        self._ray = None
        self._started_here = False
        self._temp: tempfile.TemporaryDirectory | None = None

    def _connect(self):
        if self._ray is not None:
            return self._ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not self.address and "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules:
            # the session's own Ray takes a token only this process and its workers know: its servers
            # listen beyond 127.0.0.1, and without one any local user could attach. Set before Ray is
            # imported (it reads the mode then, once per process: a later session here keeps the token);
            # given in the environment, Ray writes no token file.
            os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_urlsafe(32))
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address:  # a cluster's own authentication (RAY_AUTH_MODE, its token) is the user's
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
                self._started_here = True  # connected here: disconnected at the end (the cluster stays)
            else:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # Ray imported before us: as it was
                self._temp = tempfile.TemporaryDirectory(prefix="speechlab-ray-")
                ray.init(num_cpus=self.workers * self.threads, include_dashboard=False, log_to_driver=False,
                         _temp_dir=self._temp.name, _node_ip_address="127.0.0.1")
                self._started_here = True
        self._ray = ray
        return ray

    def close(self) -> None:
        """Stop the session's own Ray, or disconnect from a cluster this session connected to."""
        if self._ray is not None and self._started_here:
            self._ray.shutdown()
            self._started_here = False
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def run(self, runner, model, units):
        ray = self._connect()
        payload = worker_payload(runner, model.spec, "Ray actors")
        remote = ray.remote(num_cpus=self.threads, max_restarts=0, scheduling_strategy="SPREAD")(_Actor)
        count = 0

        def new_actor():
            nonlocal count
            count += 1
            return remote.remote(payload, f"ray-{count}", self.threads)

        def shipped(unit):
            out = []
            for utt in unit:
                try:
                    ship = isinstance(utt, Utterance) and self.audio == "ship"
                    out.append((utt, Path(utt.audio_path).read_bytes() if ship else None))
                except OSError:
                    out.append((utt, None))
            return out

        pending = deque(enumerate(units))
        retries = Retries(self.retries, self.events)
        actors = [new_actor() for _ in range(min(self.workers, len(pending)))]
        idle = deque(actors)
        in_flight: dict[Any, tuple[Any, tuple[int, list]]] = {}  # ref -> (actor, unit)
        sent_at: dict[int, tuple[float, int]] = {}  # unit -> (when it was sent, audio bytes with it)
        warmed: set = set()  # actors that have finished a unit
        try:
            while pending or in_flight:
                while idle and pending:
                    actor, unit = idle.popleft(), pending.popleft()
                    sent = shipped(unit[1])
                    in_flight[actor.run.remote(sent)] = (actor, unit)
                    sent_at[unit[0]] = (time.perf_counter(), sum(len(data or b"") for _, data in sent))
                done, _ = ray.wait(list(in_flight), num_returns=1)
                actor, unit = in_flight.pop(done[0])
                started, size = sent_at.pop(unit[0])
                self.shipped.append((len(unit[1]), size, time.perf_counter() - started, actor not in warmed))
                warmed.add(actor)
                try:
                    outputs = ray.get(done[0])
                except ray.exceptions.RayActorError as exc:
                    if "failed to load" in str(exc) or "ModelLoadError" in str(exc):
                        raise SpeechlabError(f"model {model.spec.name!r} failed to load on a Ray actor: "
                                             f"{str(exc).splitlines()[-1][:500]}") from None
                    yield from retries.lost(unit, pending, "a Ray actor", "Ray actor", type(exc).__name__)
                    idle.append(new_actor())
                    continue
                idle.append(actor)
                yield from outputs
        finally:
            for actor in [*idle, *(a for a, _ in in_flight.values())]:
                ray.kill(actor)
