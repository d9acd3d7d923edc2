"""The inference cache: a model's output for an input, kept so that an unchanged model on an
unchanged set is not run again, and a killed session resumes where it stopped.

An output is determined by the model's identity, the input and the repeat index, so that is the
key. The model: its plugin and backend, every load and decode parameter it was registered or
declared with, and what the backend reports of itself (version, weights digest, dtype, device,
decode settings as applied). The input: the audio file's content digest and the transform to the
model's input (target rate, resampler and its version), and for a perturbed dataset the chain and
the version of the code that applies it. Scoring (normalizer, detectors,
thresholds) is not part of it: a cached output is scored again, so a changed normalizer applies.

The outputs live in the results database (table ``outputs``): one place to configure, runners that
share a PostgreSQL database share outputs, and a session killed half-way has already written what it
computed. A cached output keeps the timing measured when it was computed, with the run and the
machine; reports say how many outputs came from the cache, and speed checks re-time a sample here.
"""
from __future__ import annotations

import binascii
import hashlib
import importlib.metadata
import inspect
import json
import os
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._machine import compute_threads
from .._perturb import chain_label, perturbation_code
from .._text import redact
from .._types import Call, Invocation, Output, Segment, Transcript, Utterance
from ..metrics.stats import number
from ..tasks import ASR, TASKS

RESAMPLER = "soxr HQ"
# info() keys that describe a run, not the output: its name and where the weights sit. The thread
# count is kept: it can change a transcript (ctranslate2 4.8.5 decodes one fixture clip differently
# with 1 and 2 OpenMP threads), and where workers run the model it is theirs (``model_identity``).
VOLATILE_INFO = ("name", "weights_path", "languages")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8", "surrogatepass")).hexdigest()


def model_identity(loaded, threads: int | None = None, seed: int | None = None) -> dict:
    """What determines the model's outputs; ``threads``: the threads of the instances that compute
    them, where that is not what this instance reports (worker processes have their share);
    ``seed``: the session's seed (the calls' seeds derive from it). The registering plugin's
    distribution, version and a digest of its source files are part of it: an edited plugin,
    reinstalled or editable, misses the cache."""
    spec = loaded.spec
    info = {k: v for k, v in loaded.info.items() if k not in VOLATILE_INFO and k not in ("task", "params")}
    if threads is not None:
        info["threads"] = threads
    identity = {"plugin": spec.plugin, "backend": spec.backend, "weights": spec.weights, "params": spec.params,
                "info": info, "code": plugin_code(spec.load)}
    if seed is not None:
        identity["seed"] = seed
    return identity


def plugin_code(load: Any) -> dict:
    """The code a model's outputs depend on beyond its parameters: the module its loader lives in
    (its top-level package's every .py file, or the one file), its distribution and version."""
    target = getattr(load, "func", load)  # functools.partial
    try:
        path = inspect.getsourcefile(target) or inspect.getfile(target)
    except (TypeError, OSError):
        path = None
    if not path:
        return {"module": str(getattr(target, "__module__", "?")), "source_sha256": None}
    return _code_of(os.path.realpath(path))


@lru_cache(maxsize=None)
def _code_of(path: str) -> dict:
    folder = os.path.dirname(path)
    files = [path]
    if os.path.basename(path) == "__init__.py" or os.path.isfile(os.path.join(folder, "__init__.py")):
        while os.path.isfile(os.path.join(os.path.dirname(folder), "__init__.py")):  # up to the top-level package
            folder = os.path.dirname(folder)
        files = sorted(str(p) for p in Path(folder).rglob("*.py") if "__pycache__" not in p.parts)
        top = os.path.basename(folder)
    else:
        top = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha256()
    for name in files:
        digest.update(os.path.relpath(name, folder).encode("utf-8", "surrogatepass") + b"\0")
        digest.update((file_digest(name) or "unreadable").encode())
    distributions = _distributions().get(top) or []
    dist = distributions[0] if distributions else None
    try:
        release = importlib.metadata.version(dist) if dist else None
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        release = None
    return {"module": top, "distribution": dist, "version": release, "source_sha256": digest.hexdigest(),
            "files": len(files)}


@lru_cache(maxsize=1)
def _distributions() -> dict:
    try:
        return importlib.metadata.packages_distributions()
    except Exception:  # noqa: BLE001 - a broken installed distribution must not stop the cache
        return {}


@lru_cache(maxsize=1)
def _resampler_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{RESAMPLER} (soxr {version('soxr')})"
    except PackageNotFoundError:  # pragma: no cover
        return RESAMPLER


def file_digest(path: str, chunk: int = 1 << 20) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def output_key(model: dict, audio_digest: str, rate: int, repeat: int, segment: tuple | None = None,
               perturbation: str = "") -> str:
    """``segment``: (offset, duration) when the input is a part of the file; ``perturbation``: the
    chain's label when the audio is perturbed (each absent otherwise, so that the keys of whole,
    clean files stay what they were)."""
    source = {"audio_sha256": audio_digest, "rate": rate, "resampler": _resampler_version()}
    if segment is not None:
        source["segment"] = list(segment)
    if perturbation:
        source["perturbation"] = perturbation
        source["perturbation_code"] = perturbation_code()
    return _digest({"model": model, "input": source, "repeat": repeat})


def transcript_to_json(t: Transcript) -> dict:
    return {"text": t.text, "language": t.language, "extra": json.loads(json.dumps(t.extra, default=str)),
            "segments": [[s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob, s.compression_ratio, s.temperature]
                         for s in t.segments]}


def transcript_from_json(data: dict) -> Transcript:
    return Transcript(data["text"], tuple(Segment(*s) for s in data.get("segments") or ()),
                      data.get("language"), data.get("extra") or {})


def _silences(data: dict) -> tuple[tuple[float, float], ...]:
    """The input's silent stretches kept beside a cached transcript (a property of the audio, whose
    digest is in the key)."""
    spans = data.get("input_silences") if isinstance(data, dict) else None
    return tuple((float(span[0]), float(span[1])) for span in (spans if isinstance(spans, list) else ())
                 if isinstance(span, list) and len(span) == 2 and all(isinstance(v, (int, float)) for v in span))


def _latency(data: dict) -> dict:
    """A service's timings kept beside a cached transcript (measured with it, and said to be cached)."""
    value = data.get("service_latency") if isinstance(data, dict) else None
    if not isinstance(value, dict):
        return {}
    out = {k: float(v) for k, v in value.items()
           if k in ("first_partial_s", "after_audio_s", "sending_s") and isinstance(v, (int, float))}
    out["faults"] = [str(f)[:40] for f in value.get("faults") or () if isinstance(f, str)][:100]
    out["partials"] = value["partials"] if isinstance(value.get("partials"), int) else 0
    return out


@dataclass
class OutputCache:
    """Reads and writes model outputs for one session, in the mode given."""

    store: Any  # a Store, or None (no database: nothing is cached)
    mode: str = "on"
    run_id: str | None = None
    machine: dict | None = None
    # models whose cached outputs the re-timing audit found stale: recomputed, and replaced, this session
    stale: set = field(default_factory=set)
    # why the cache stopped (the database failed reading or writing it): an optimization that fails
    # degrades to computing, said once, and never costs a measured figure
    problem: str | None = None
    said: list = field(default_factory=list)  # what the session should say of the cache (each once)

    def reads_for(self, model: str) -> bool:
        return self.reads and model not in self.stale

    def replaces_for(self, model: str) -> bool:
        return self.mode == "refresh" or model in self.stale

    @property
    def reads(self) -> bool:
        return self.store is not None and self.problem is None and self.mode in ("on", "read-only")

    @property
    def writes(self) -> bool:
        return self.store is not None and self.problem is None and self.mode in ("on", "refresh")

    def _failed(self, doing: str, exc: Exception) -> None:
        self.problem = redact(f"inference cache off for the rest of the session: {doing} failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}); outputs are computed instead")
        self.said.append(self.problem)

    def keys(self, loaded, utterances: list, repeats: int, threads: int | None = None,
             seed: int | None = None) -> dict[str, list[str]]:
        """item id -> its keys (one per repeat index); an unreadable file has none (the runner
        reports it). ``threads``, ``seed``: see ``model_identity``. Items of a task whose input is
        not audio are keyed by the task's request (and repeated as the task repeats them)."""
        model = model_identity(loaded, threads, seed)
        task = TASKS[loaded.spec.task]
        if task is not ASR:
            n = 1 + task.again(loaded.instance)
            return {item.id: [_digest({"model": model, "input": {task.name: task.request(item)}, "repeat": i})
                              for i in range(n)] for item in utterances}
        rate = getattr(loaded.instance, "sample_rate", 16000)
        out = {}
        for utt in utterances:
            digest = file_digest(utt.audio_path)
            if digest is not None:
                segment = None if utt.offset is None else (utt.offset, utt.duration)
                chain = chain_label(utt.perturbation) if utt.perturbation else ""
                out[utt.id] = [output_key(model, digest, rate, i, segment, chain) for i in range(repeats)]
        return out

    def lookup(self, keys: dict[str, list[str]], utterances: list[Utterance]) -> dict[str, Output]:
        """The outputs this cache has for every repeat of an utterance."""
        if not self.reads or not keys:
            return {}
        unreadable = getattr(self.store, "unreadable_outputs", 0)
        try:
            found = self.store.outputs([k for ks in keys.values() for k in ks])
        except Exception as exc:  # noqa: BLE001 - a dropped connection, a damaged table: compute instead
            self._failed("reading cached outputs", exc)
            return {}
        if skipped := getattr(self.store, "unreadable_outputs", 0) - unreadable:
            self.said.append(f"inference cache: {skipped} cached output(s) could not be decoded (damaged rows in "
                             "the outputs table): computed again")
        hits = {}
        for utt in utterances:
            records = [found.get(k) for k in keys.get(utt.id, ())]
            if not records or any(r is None for r in records):
                continue
            first = records[0]
            if not isinstance(utt, Utterance):
                if (call := self._call(utt, records)) is not None:
                    hits[utt.id] = call
                continue
            hits[utt.id] = Output(
                utt, transcript_from_json(first["transcript"]), first["processing_seconds"], first["audio_seconds"],
                repeats=tuple(transcript_from_json(r["transcript"]) for r in records[1:]),
                notes=tuple(first.get("notes") or ()), silences=_silences(first["transcript"]),
                snr_db=number(first["transcript"].get("input_snr_db")
                              if isinstance(first["transcript"], dict) else None),
                latency=_latency(first["transcript"]),
                cached={"run_id": first.get("run_id"), "cpu": first.get("cpu"), "measured_at": first.get("created_at")})
        return hits

    @staticmethod
    def _call(item, records: list[dict]) -> Call | None:
        """A cached synthesis or reply (None where a record is not one: computed again)."""
        first = records[0]
        task = TASKS.get(first["transcript"].get("task")) if isinstance(first.get("transcript"), dict) else None
        if task is None or task.decode is None:
            return None
        try:
            values = [task.decode(r["transcript"].get("value")) for r in records]
        except (ValueError, TypeError, AttributeError, zlib.error, binascii.Error):
            return None
        seconds = number(first.get("processing_seconds")) or 0.0
        invocation = Invocation(values[0], seconds, number(first["transcript"].get("first_token_seconds")),
                                tuple(values[1:]))
        return Call(item, invocation, task=task.name, cached={"run_id": first.get("run_id"), "cpu": first.get("cpu"),
                                              "measured_at": first.get("created_at")})

    def put(self, model: str, output, keys: list[str]) -> None:
        """Write a computed output under its keys (an error or a skip is never cached)."""
        rows = self.rows(model, output, keys)
        if rows:
            try:
                self.store.put_outputs(rows, replace=self.replaces_for(model))
            except Exception as exc:  # noqa: BLE001 - a full disk, a dropped connection: the run goes on
                self._failed("writing an output", exc)

    def rows(self, model: str, output: Output, keys: list[str]) -> list[dict]:
        """The rows to write for a computed output (none for an error or a skip: never cached)."""
        if isinstance(output, Call):
            return self._call_rows(model, output, keys)
        if not self.writes or output.transcript is None or output.error is not None or not keys:
            return []
        transcripts = [output.transcript, *output.repeats]
        machine = self.machine or {}
        return [{"key": key, "model": model, "utterance_id": output.utterance.id,
                 "transcript": {**transcript_to_json(t), "input_silences": [list(x) for x in output.silences],
                                **({"input_snr_db": output.snr_db} if output.snr_db is not None else {}),
                                **({"service_latency": output.latency} if output.latency and i == 0 else {})},
                 "processing_seconds": output.processing_seconds if i == 0 else None,
                 "audio_seconds": output.audio_seconds, "notes": list(output.notes), "run_id": self.run_id,
                 "cpu": machine.get("cpu"), "host": machine.get("host")}
                for i, (key, t) in enumerate(zip(keys, transcripts))]


    def _call_rows(self, model: str, call: Call, keys: list[str]) -> list[dict]:
        invocation, task = call.invocation, TASKS.get(call.task)
        if not self.writes or invocation.error or not keys or task is None or task.encode is None:
            return []
        machine = self.machine or {}
        audio = getattr(invocation.value, "seconds", 0.0)
        return [{"key": key, "model": model, "utterance_id": call.item_id,
                 "transcript": {"task": task.name, "value": task.encode(value),
                                **({"first_token_seconds": invocation.first_token_seconds} if i == 0 else {})},
                 "processing_seconds": invocation.seconds if i == 0 else None,
                 "audio_seconds": audio if isinstance(audio, (int, float)) else 0.0, "notes": [],
                 "run_id": self.run_id, "cpu": machine.get("cpu"), "host": machine.get("host")}
                for i, (key, value) in enumerate(zip(keys, [invocation.value, *invocation.again]))]


class CachedRun:
    """The inference cache around the runner (lm-eval's CachingLM placement): outputs it has are
    handed over as they are (they keep the timing measured when they were computed), and only the
    misses reach the runner; each computed output is written as soon as it exists, so that a session
    killed half-way resumes from there. Without a cache (``cache`` None) it is the runner itself."""

    def __init__(self, runner, cache: OutputCache | None) -> None:
        self.runner, self.cache = runner, cache

    def lookup(self, model, items: list) -> tuple[dict, dict]:
        """(keys, hits): each item's cache keys, and the outputs the cache has for every repeat of an
        item (none where the cache is off or the model's outputs were found stale)."""
        cache = self.cache
        if cache is None:
            return {}, {}
        threads = compute_threads(model.info, self.runner.executor_for(model))
        keys = cache.keys(model, items, self.runner.repeats, threads, self.runner.seed)
        return keys, (cache.lookup(keys, items) if cache.reads_for(model.name) else {})

    def run(self, model, items: list, on_output, found: tuple[dict, dict] | None = None) -> None:
        """Every item's output handed to ``on_output``: cached ones first (an utterance's input is
        checked again: a file that changed its declared duration, became unreadable or silent is an
        input error, never scored), then the computed ones as they arrive. ``found``: ``lookup``'s
        answer where the caller has it already."""
        keys, hits = found if found is not None else self.lookup(model, items)
        if self.cache is not None and not self.cache.reads_for(model.name):  # found stale since it was looked up
            hits = {}
        for item in items:
            if item.id in hits:
                on_output(self.runner.checked(model, item) or hits[item.id])

        def computed(output) -> None:
            if self.cache is not None:
                self.cache.put(model.name, output, keys.get(output.item_id, []))
            on_output(output)

        self.runner.run(model, [i for i in items if i.id not in hits], on_output=computed)


def _differs(cached, fresh) -> tuple[bool, bool] | None:
    """(differs, sampled) of a re-computed output against its cached one; None when either failed.
    A synthesis or reply differing counts as stale only where the model claims to be deterministic
    (it was synthesized twice to check that), else as nondeterminism."""
    if isinstance(fresh, Call):
        if cached.invocation.error or fresh.invocation.error or cached.invocation.value is None:
            return None
        task = TASKS[fresh.task]
        differs = task.encode(cached.invocation.value) != task.encode(fresh.invocation.value)
        return differs, not fresh.invocation.again
    if cached.transcript is None or fresh.transcript is None:
        return None
    return (cached.transcript.text.strip() != fresh.transcript.text.strip(),
            cached.transcript.sampled or fresh.transcript.sampled)


def cache_audit(hits: dict, outputs: list) -> dict:
    """Re-computed outputs against their cached ones: how many compared, how many differ where
    neither was decoded with sampling (``stale``: the cache no longer holds this model's outputs),
    and how many differ where one was (nondeterminism, not staleness)."""
    stale, sampled, compared = [], [], 0
    for output in outputs:
        cached = hits.get(output.item_id)
        found = _differs(cached, output) if cached is not None else None
        if found is None:
            continue
        compared += 1
        if found[0]:
            (sampled if found[1] else stale).append(output.item_id)
    return {"compared": compared, "stale": len(stale), "stale_ids": stale[:50],
            "sampled_differed": len(sampled), "sampled_ids": sampled[:50]}
