"""The runner: builds models (once) and invokes them. The only code that calls a model, and the only
place that times one.

Every task's call goes through ``Runner.invoke``: one untimed warm-up per model, the timer around
the task's call (for ASR: turning the decoded file into the model's input and the whole
``transcribe`` call, including consuming any lazy generator inside it), the timeout and the error
path. Not timed: reading the file from disk and the model load. A dataset's utterances go through
an Executor (``executors``), and with an inference cache only the misses reach it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

from .._audio import (
    AudioError,
    RawAudio,
    duration_mismatch,
    header_duration,
    read_audio,
    silent_spans,
)
from .._perturb import chain_label, heard
from .._registry import ModelSpec
from .._text import storable, unicode_safe
from .._types import Call, InputError, Invocation, Output, Utterance, base_language
from ..tasks import ASR, EMBEDDING, TASKS, Task, protocol_problem
from ..tasks.asr import (
    ASR_BATCH,
    batch_size_of,
    hints_language,
    repaired,
    supports_language,
)

DEFAULT_SEED = 0  # [tool.speechlab] seed


def call_seed(seed: int, item: str, repeat: int) -> int:
    """The seed of one model call: from the session's seed, the item (utterance) id and the repeat
    index, so that every utterance and every repeat samples its own way, the same way each run."""
    digest = hashlib.sha256(f"{seed}\0{item}\0{repeat}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class CallTimeout(Exception):
    """A model call ran past ``[tool.speechlab] utterance_timeout``."""


def call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
    """``fn()``, or CallTimeout after ``timeout`` seconds. The call runs in a daemon thread that is
    left to finish on its own: Python cannot stop it, but the run goes on without it."""
    if not timeout:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="speechlab-model-call")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CallTimeout(f"no result after {timeout:g} s (utterance_timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class LoadedModel:
    spec: ModelSpec
    instance: Any
    load_seconds: float
    load_count: int = 1
    warmed_up: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # concurrent requests warm up once

    @property
    def name(self) -> str:
        return self.spec.name


class ModelLoadError(Exception):
    pass


class ModelPool:
    """Builds each model at most once per session and keeps it; records load time and count."""

    def __init__(self) -> None:
        self._loaded: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self._closed = False

    def get(self, spec: ModelSpec) -> LoadedModel:
        if spec.name in self._failed:
            raise ModelLoadError(self._failed[spec.name])
        if spec.name not in self._loaded:
            start = time.perf_counter()
            try:
                instance = spec.load(dict(spec.params))
            except Exception as exc:  # noqa: BLE001 - third-party loaders
                message = (
                    f"model {spec.name!r} (plugin {spec.plugin!r}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
                self._failed[spec.name] = message
                raise ModelLoadError(message) from exc
            seconds = time.perf_counter() - start
            missing = protocol_problem(spec.task, instance, spec.params)
            if missing:
                message = f"model {spec.name!r} (plugin {spec.plugin!r}) loaded, but {missing}"
                self._failed[spec.name] = message
                raise ModelLoadError(message)
            try:
                info = model_info(spec, instance)
            except Exception as exc:  # noqa: BLE001 - the identity is what makes results comparable
                message = (f"model {spec.name!r} (plugin {spec.plugin!r}) loaded, but its info() failed: "
                           f"{type(exc).__name__}: {exc}")
                self._failed[spec.name] = message
                _close(instance, spec.name)  # the load failure is what gets reported
                raise ModelLoadError(message) from exc
            self._loaded[spec.name] = LoadedModel(spec, instance, seconds, info=info)
        return self._loaded[spec.name]

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._loaded)

    def close(self) -> list[str]:
        """Close every model once; returns what went wrong (a close() that raised)."""
        if self._closed:
            return []
        self._closed = True
        return [p for loaded in self._loaded.values() if (p := _close(loaded.instance, loaded.name))]


def batch_size(model: LoadedModel) -> int:
    """The model's ``batch_size`` decode parameter (1 when it has none)."""
    return batch_size_of(model.spec.params)


def _close(instance: Any, name: str) -> str | None:
    """A model's close() that raises is reported; the others are still closed."""
    close = getattr(instance, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:  # noqa: BLE001
            return f"model {name!r}: close() raised {type(exc).__name__}: {unicode_safe(str(exc))[:500]}"
    return None


def model_info(spec: ModelSpec, instance: Any) -> dict[str, Any]:
    """The identity that makes results comparable: registry facts plus what the backend reports."""
    info: dict[str, Any] = {
        "name": spec.name,
        "task": spec.task,
        "backend": spec.backend,
        "plugin": spec.plugin,
        "weights": spec.weights,
        "params": dict(spec.params),
    }
    reported = getattr(instance, "info", None)
    if callable(reported):
        extra = reported()
        if not isinstance(extra, dict):
            raise TypeError(f"info() must return a dict, got {type(extra).__name__}")
        info.update(storable({str(k): v for k, v in extra.items()}))
    return info


class Executor(Protocol):
    workers: int

    def run(self, runner: Any, model: Any, units: Iterable[list[Utterance]]) -> Iterator[Output]: ...


class SerialExecutor:
    """Runs units one after another in this process, on the session's own model."""

    workers = 1
    kind = "serial"

    def run(self, runner, model, units):
        for unit in units:
            yield from runner.run_unit(model, unit)

    def close(self) -> None:
        return None


class ThreadExecutor:
    """``workers`` requests in flight at once, from threads of this process, on the session's one
    model: how a model behind a service (its ``concurrency`` parameter) is run. Each request is timed
    on its own (its latency under that load); outputs are yielded as they complete."""

    kind = "threads"
    threads = None

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, runner, model, units):
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(self.workers, thread_name_prefix="speechlab-request") as pool:
            running: set = set()
            for unit in units:
                running.add(pool.submit(runner.run_unit, model, unit))
                while len(running) >= self.workers:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield from future.result()
            for future in wait(running).done:
                yield from future.result()

    def close(self) -> None:
        return None


def concurrency(model: LoadedModel) -> int:
    """The model's ``concurrency`` parameter (requests in flight at once; 1 when it has none)."""
    value = model.spec.params.get("concurrency", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


class Runner:
    def __init__(self, executor: Executor | None = None, repeats: int = 1, timeout: float | None = None,
                 worker: str = "", seed: int | None = DEFAULT_SEED) -> None:
        self.executor = executor or SerialExecutor()
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise ValueError(f"repeats must be a whole number of at least 1, got {repeats!r}")
        self.repeats = repeats  # > 1 measures non-determinism; only the first run is timed
        self.seed = seed  # None: models are never seeded
        self.timeout = timeout  # seconds one model call may take (None: no limit)
        self.worker = worker  # recorded with every output: which process computed it

    def run(self, model: LoadedModel, items: Iterable, on_output: Callable[[Any], None] | None = None) -> list | None:
        """Every item's output, in order (or, with ``on_output``, each handed over as it arrives and
        none kept here), computed on the session's executor. The inference cache wraps this
        (``cache.CachedRun``): only its misses reach the runner."""
        items = list(items)
        outputs = {}
        for output in self.executor_for(model).run(self, model, self.plan(model, items)):
            if on_output is None:
                outputs[output.item_id] = output
            else:
                on_output(output)
        return [outputs[item.id] for item in items] if on_output is None else None

    def checked(self, model: LoadedModel, item: Any) -> Output | None:
        """An utterance's input read and checked again (untimed): the Output saying why it cannot be
        run, or None when it can (a cached output is still an input checked like any other)."""
        found = self._read(model, item) if isinstance(item, Utterance) else None
        return found if isinstance(found, Output) else None

    def executor_for(self, model: LoadedModel) -> Executor:
        """The session's executor; for a model with a ``concurrency`` above 1 run in this process,
        that many concurrent requests (a service's declared concurrency)."""
        n = concurrency(model)
        return ThreadExecutor(n) if n > 1 and isinstance(self.executor, SerialExecutor) else self.executor

    @staticmethod
    def plan(model: LoadedModel, utterances: list) -> list[list]:
        """Units of work: one item each, or for ASR with a ``batch_size`` above 1 batches of
        utterances of similar length (sorted by duration, so that little of a batch is padding)."""
        size = batch_size(model) if model.spec.task == "asr" else 1
        if size <= 1:
            return [[u] for u in utterances]
        by_language = hints_language(model.spec.params)  # a batch then holds one language where it can
        ordered = sorted(utterances, key=lambda u: ((base_language(u.language) or "") if by_language else "",
                                                    u.duration or header_duration(u.audio_path), u.id))
        return [ordered[i:i + size] for i in range(0, len(ordered), size)]

    def run_unit(self, model: LoadedModel, unit: list) -> list:
        """One unit of any task, where it runs (this process, a worker, a Ray actor): utterances are
        read, checked and transcribed (a batching model gets every unit through its batch method, a
        lone long recording too); other items are the task's request, timed (``run_call``)."""
        task = TASKS[model.spec.task]
        if task is not ASR:
            return [self.run_call(model, task, item) for item in unit]
        return self.run_batch(model, unit) if batch_size(model) > 1 else [self.run_one(model, u) for u in unit]

    def run_call(self, model: LoadedModel, task: Task, item: Any) -> Call:
        """A text to synthesize or a conversation to answer: the task's request, timed, repeated
        untimed where the task asks (a determinism check). Seeded by the request itself."""
        request = task.request(item)
        return Call(item, self.invoke(model, task, request, again=task.again(model.instance),
                                      item=request if isinstance(request, str) else repr(request)),
                    task.name, self.worker)

    def run_batch(self, model: LoadedModel, unit: list[Utterance]) -> list[Output]:
        """One batch: the files read and checked one by one (untimed), the batch decoded in one timed
        call, the time shared among the utterances by audio length. Should the batch call fail,
        its utterances are decoded one at a time, and the note says so."""
        done: dict[str, Output] = {}
        ready = []
        for utt in unit:
            checked = self._read(model, utt)
            if isinstance(checked, Output):
                done[utt.id] = checked
            else:
                ready.append((utt, checked))
        rate = getattr(model.instance, "sample_rate", 16000)
        if ready:
            languages = [base_language(u.language) for u, _ in ready] if hints_language(model.spec.params) else None
            call = self.invoke(model, ASR_BATCH, ([raw for _, raw in ready], rate, languages), again=self.repeats - 1,
                               warmup=([ready[0][1]], rate, languages[:1] if languages else None),
                               item="\0".join(u.id for u, _ in ready))
            if call.error:
                for utt, raw in ready:
                    single = self._transcribe(model, utt, raw, self._where(utt))
                    done[utt.id] = dataclasses.replace(single, notes=single.notes + (
                        f"its batch of {len(ready)} failed ({call.error[:300]}); decoded alone",))
            else:
                total = sum(raw.duration for _, raw in ready) or 1.0
                for i, (utt, raw) in enumerate(ready):
                    transcript, notes = repaired(call.value[i], raw.duration)
                    repeats = tuple(repaired(again[i], raw.duration)[0] for again in call.again)
                    done[utt.id] = Output(utt, transcript, call.seconds * raw.duration / total, raw.duration,
                                          cpu_seconds=call.cpu_seconds * raw.duration / total,
                                          repeats=repeats, notes=notes, worker=self.worker,
                                          threads=model.info.get("threads"), batch_size=len(ready),
                                          silences=raw.silences)
        return [done[u.id] for u in unit]

    def invoke(self, model: LoadedModel, task: Task, request: Any, again: int = 0, warmup: Any = None,
               item: str = "") -> Invocation:
        """``task.call(model, request)``, timed: the one place any model is invoked (judges and
        embedding models included). The first call of each model is an untimed warm-up; each call
        may take ``utterance_timeout`` seconds; a model that raises, hangs or returns the wrong type
        fails this request only. ``again``: further untimed calls (repeats, determinism checks);
        ``warmup``: a smaller request to warm up with (a batch warms up on one clip). ``item``: the
        id the seeds derive from: a model with ``seed(n)`` is seeded before each call with
        ``call_seed(seed, item, repeat)``. Wall and CPU time of the timed call are both kept (CPU
        time against wall x threads is evidence of contention)."""
        instance = model.instance
        seeder = getattr(instance, "seed", None) if self.seed is not None else None
        seeder = seeder if callable(seeder) else None

        def timed(on=request, repeat=0):
            if seeder is not None:
                seeder(call_seed(self.seed, item, repeat))
            start, cpu = time.perf_counter(), time.process_time()
            value, first = task.call(instance, on)
            return value, first, time.perf_counter() - start, time.process_time() - cpu

        try:
            with model.lock:  # concurrent requests (a service's concurrency) wait for the one warm-up
                if not model.warmed_up:
                    model.warmed_up = True
                    call_with_timeout(lambda: timed(request if warmup is None else warmup), self.timeout)
            value, first, elapsed, cpu = call_with_timeout(timed, self.timeout)
            more = tuple(call_with_timeout(lambda i=i: timed(request, i), self.timeout)[0] for i in range(1, again + 1))
        except CallTimeout as exc:
            return Invocation(error=f"model {model.name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a model that raises fails its request only
            return Invocation(error=f"model {model.name} raised {type(exc).__name__}: {unicode_safe(str(exc))[:2000]}",
                              latency=dict(getattr(exc, "speechlab_latency", None) or {}))
        if isinstance(first, dict):  # a service's event timings
            return Invocation(value, elapsed, first.get("first_partial_s"), more, latency=first, cpu_seconds=cpu)
        return Invocation(value, elapsed, first, more, cpu_seconds=cpu)

    def embed(self, model: LoadedModel, texts: list[str]) -> Invocation:
        """Vectors from an embedding model (the chat relevance judge)."""
        return self.invoke(model, EMBEDDING, list(texts))

    @staticmethod
    def _where(utt: Utterance) -> str:
        return f"{utt.source}: audio '{os.path.basename(utt.audio_path)}'"

    def _read(self, model: LoadedModel, utt: Utterance) -> RawAudio | Output:
        """The decoded file (not timed), or the Output saying why the utterance is not run."""
        if not supports_language(model.info, utt.language):
            return Output(utt, audio_seconds=utt.duration or 0.0, worker=self.worker,
                          skipped=f"language {utt.language!r} not supported by {model.name} "
                          f"(supports {', '.join(model.info['languages'])})")
        try:  # a segment of a longer recording (offset) is read alone, never the whole file
            raw = read_audio(utt.audio_path, utt.offset, utt.duration)
        except AudioError as exc:
            return Output(utt, error=InputError(self._where(utt), str(exc), utt.id), worker=self.worker)
        mismatch = duration_mismatch(utt.duration, raw.duration)
        if mismatch:
            return Output(utt, error=InputError(self._where(utt), mismatch, utt.id), worker=self.worker)
        if utt.perturbation:  # untimed, like the read: the input the model is judged on, at its input rate
            rate = getattr(model.instance, "sample_rate", 16000)
            try:
                raw, snr = heard(raw, utt.perturbation, utt.id, rate if isinstance(rate, int) and rate > 0 else 16000)
                raw.snr_db = snr
            except Exception as exc:  # noqa: BLE001 - a transform that fails is this utterance's error
                return Output(utt, error=InputError(self._where(utt), f"perturbation {chain_label(utt.perturbation)} "
                                                    f"failed: {type(exc).__name__}: {exc}", utt.id), worker=self.worker)
        raw.silences = silent_spans(raw)  # for the text-in-silence detector
        return raw

    def run_one(self, model: LoadedModel, utt: Utterance) -> Output:
        """One utterance of a dataset: read (untimed), checked, transcribed."""
        checked = self._read(model, utt)
        return checked if isinstance(checked, Output) else self._transcribe(model, utt, checked, self._where(utt))

    def transcribe_audio(self, model: LoadedModel, item_id: str, samples, sample_rate: int) -> Output:
        """Transcribe audio held in memory (the spoken-question pipeline's synthesized questions),
        through the same path as a dataset's utterances."""
        utt = Utterance(item_id, "", None, source=f"synthesized {item_id}")
        return self._transcribe(model, utt, RawAudio(samples, sample_rate), utt.source)

    def _transcribe(self, model: LoadedModel, utt: Utterance, raw: RawAudio, where: str) -> Output:
        rate = getattr(model.instance, "sample_rate", 16000)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            return Output(utt, error=InputError(where, f"model {model.name} has an unusable sample_rate {rate!r}", utt.id))
        language = base_language(utt.language) if hints_language(model.spec.params) else None
        # a long recording warms the model up on its first 10 s, not on the whole of it
        warmup = (RawAudio(raw.samples[:10 * raw.sample_rate], raw.sample_rate), rate, language) if raw.duration > 30 else None
        call = self.invoke(model, ASR, (raw, rate, language), again=self.repeats - 1, warmup=warmup, item=utt.id)
        if call.error:
            return Output(utt, audio_seconds=raw.duration, error=InputError(where, call.error, utt.id),
                          worker=self.worker, latency=call.latency)
        transcript, notes = repaired(call.value, raw.duration)
        repeats = tuple(repaired(r, raw.duration)[0] for r in call.again)
        return Output(utt, transcript, call.seconds, raw.duration, cpu_seconds=call.cpu_seconds, repeats=repeats,
                      notes=notes, worker=self.worker, threads=model.info.get("threads"), silences=raw.silences,
                      latency=call.latency, snr_db=getattr(raw, "snr_db", None))
