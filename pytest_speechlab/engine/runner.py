"""The runner: builds models (once) and runs them over utterances. The only place that times inference.

What is timed for each utterance: turning the decoded file into the model's input (downmix,
resample) and the whole ``transcribe`` call, including consuming any lazy generator inside it.
Not timed: reading the file from disk, the model load, and one warm-up call per model.

Execution goes through an Executor so that batching, an inference cache or a process pool can be
added here later without touching suites or metrics.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

from .._audio import AudioError, duration_mismatch, read_audio, to_model_input
from .._registry import ModelSpec
from .._text import MAX_TEXT_CHARS, bounded, storable, unicode_safe
from .._types import Audio, InputError, Output, Response, Segment, Transcript, Utterance


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
            missing = protocol_problem(spec.task, instance)
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


PROTOCOLS = {  # task -> (methods of which one is required, the protocol's name in pytest_speechlab)
    "asr": (("transcribe",), "ASRModel: transcribe(audio) -> Transcript | str"),
    "tts": (("synthesize",), "TTSModel: synthesize(text) -> Audio"),
    "chat": (("respond", "stream"), "ChatModel: respond(messages) -> Response | str, or stream(messages)"),
    "embedding": (("embed",), "embed(texts) -> vectors"),
}


def protocol_problem(task: str, instance: Any) -> str | None:
    """What the instance lacks of its task's protocol, checked once at load; None when it is fine."""
    methods, protocol = PROTOCOLS.get(task, ((), ""))
    if methods and not any(callable(getattr(instance, m, None)) for m in methods):
        return f"its instance ({type(instance).__name__}) does not implement the {task} protocol ({protocol})"
    return None


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
    def map(self, fn: Callable[[Utterance], Output], items: Iterable[Utterance]) -> Iterator[Output]: ...


class SerialExecutor:
    """Runs utterances one after another in this process (the right thing for timing)."""

    def map(self, fn, items):
        for item in items:
            yield fn(item)


def as_transcript(value: Any) -> Transcript:
    if isinstance(value, str):
        value = Transcript(text=value)
    if not isinstance(value, Transcript):
        raise TypeError(f"transcribe() must return a Transcript or str, got {type(value).__name__}")
    if not isinstance(value.text, str):
        raise TypeError(f"transcribe() returned a Transcript whose text is {type(value.text).__name__}, not str")
    if not isinstance(value.segments, (tuple, list)) or not all(
            isinstance(s, Segment) and isinstance(s.text, str) and _finite(s.start) and _finite(s.end)
            for s in value.segments):
        raise TypeError("transcribe() returned segments that are not Segments with text and finite start/end")
    return value


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def repaired(transcript: Transcript, audio_seconds: float) -> tuple[Transcript, tuple[str, ...]]:
    """Model output made safe to score, store and show: unpaired surrogates replaced, an output
    longer than any transcript of this audio could be cut (the cut is stated, never silent)."""
    notes = []
    text = unicode_safe(transcript.text)
    if text != transcript.text:
        notes.append("model output held unpaired UTF-16 surrogates, replaced by U+FFFD")
    limit = max(MAX_TEXT_CHARS, int(50 * audio_seconds))
    text, original = bounded(text, limit)
    if original:
        notes.append(f"model output truncated from {original:,} to {limit:,} characters")
    segments = tuple(s if unicode_safe(s.text) == s.text and len(s.text) <= limit else
                     dataclasses.replace(s, text=bounded(unicode_safe(s.text), limit)[0]) for s in transcript.segments[:10_000])
    if len(transcript.segments) > 10_000:
        notes.append(f"{len(transcript.segments):,} segments: the first 10,000 kept")
    if not notes and segments == tuple(transcript.segments):
        return transcript, ()
    return dataclasses.replace(transcript, text=text, segments=segments), tuple(notes)


def supports_language(model: LoadedModel, language: str | None) -> bool:
    languages = model.info.get("languages")
    if not language or not languages:
        return True
    return language.split("-")[0].lower() in languages


@dataclass
class TTSOutput:
    """One synthesis: the audio (or the error) and its timing; ``repeat`` is a second, untimed run."""

    id: str
    text: str
    audio: Any = None  # Audio
    seconds: float = 0.0
    repeat: Any = None
    error: str = ""


@dataclass
class ChatOutput:
    """One chat turn: the response (or the error), time to first token and total time."""

    id: str
    messages: list
    response: Any = None  # Response
    first_token_seconds: float | None = None
    seconds: float = 0.0
    error: str = ""


def as_audio(value: Any) -> Audio:
    import numpy as np

    if isinstance(value, tuple) and len(value) == 2:
        value = Audio(*value)
    if not isinstance(value, Audio):
        raise TypeError(f"synthesize() must return an Audio or (samples, sample_rate), got {type(value).__name__}")
    samples = np.asarray(value.samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return Audio(samples, int(value.sample_rate))


def as_response(value: Any) -> Response:
    if isinstance(value, Response):
        return value
    if isinstance(value, str):
        return Response(value)
    raise TypeError(f"respond() must return a Response or str, got {type(value).__name__}")


class Runner:
    def __init__(self, executor: Executor | None = None, repeats: int = 1, timeout: float | None = None) -> None:
        self.executor = executor or SerialExecutor()
        self.repeats = max(1, repeats)  # > 1 measures non-determinism; only the first run is timed
        self.timeout = timeout  # seconds one model call may take (None: no limit)

    def run(
        self,
        model: LoadedModel,
        utterances: Iterable[Utterance],
        on_output: Callable[[Output], None] | None = None,
        cache: Any = None,
    ) -> list[Output]:
        """Every utterance's Output, in order. With an OutputCache, outputs it has are taken from it
        (they keep the timing measured when they were computed) and only the misses reach the
        executor; each computed output is written to the cache as soon as it exists, so that a
        session killed half-way resumes from there."""
        utterances = list(utterances)
        keys = cache.keys(model, utterances, self.repeats) if cache is not None else {}
        hits = cache.lookup(keys, utterances) if cache is not None else {}
        outputs = {}
        for utt in utterances:
            if utt.id in hits:
                outputs[utt.id] = hits[utt.id]
                if on_output is not None:
                    on_output(hits[utt.id])
        misses = [u for u in utterances if u.id not in hits]
        for output in self.executor.map(lambda u: self.run_one(model, u), misses):
            if cache is not None:
                rows = cache.rows(model.name, output, keys.get(output.utterance.id, []))
                if rows:
                    cache.store.put_outputs(rows, replace=cache.mode == "refresh")
            outputs[output.utterance.id] = output
            if on_output is not None:
                on_output(output)
        return [outputs[u.id] for u in utterances]

    def embed(self, model: LoadedModel, texts: list[str]) -> tuple[Any, str]:
        """(vectors, "") from an embedding model (a judge), or (None, the error): the same timeout
        and error path as every other model call."""
        try:
            return call_with_timeout(lambda: model.instance.embed(list(texts)), self.timeout), ""
        except Exception as exc:  # noqa: BLE001 - CallTimeout included
            return None, f"model {model.name} raised {type(exc).__name__}: {unicode_safe(str(exc))[:500]}"

    def retime(self, model: LoadedModel, utterances: list[Utterance]) -> tuple[int, float, float]:
        """Time ``utterances`` again on this machine: (how many ran, audio seconds, processing seconds)."""
        count, audio, seconds = 0, 0.0, 0.0
        for utt in utterances:
            output = self.run_one(model, utt)
            if output.transcript is not None:
                count, audio, seconds = count + 1, audio + output.audio_seconds, seconds + output.processing_seconds
        return count, audio, seconds

    def run_one(self, model: LoadedModel, utt: Utterance) -> Output:
        where = f"{utt.source}: audio '{os.path.basename(utt.audio_path)}'"
        if not supports_language(model, utt.language):
            return Output(
                utt,
                audio_seconds=utt.duration or 0.0,
                skipped=f"language {utt.language!r} not supported by {model.name} "
                f"(supports {', '.join(model.info['languages'])})",
            )
        try:
            raw = read_audio(utt.audio_path)
        except AudioError as exc:
            return Output(utt, error=InputError(where, str(exc), utt.id))
        mismatch = duration_mismatch(utt.duration, raw.duration)
        if mismatch:
            return Output(utt, error=InputError(where, mismatch, utt.id))
        return self._transcribe(model, utt, raw, where)

    def transcribe_audio(self, model: LoadedModel, item_id: str, samples, sample_rate: int) -> Output:
        """Transcribe audio held in memory (the spoken-question pipeline's synthesized questions),
        through the same warm-up, timer, timeout and error path as a dataset's utterances."""
        from .._audio import RawAudio

        utt = Utterance(item_id, "", None, source=f"synthesized {item_id}")
        return self._transcribe(model, utt, RawAudio(samples, sample_rate), utt.source)

    def _transcribe(self, model: LoadedModel, utt: Utterance, raw, where: str) -> Output:
        instance = model.instance
        rate = getattr(instance, "sample_rate", 16000)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            return Output(utt, error=InputError(where, f"model {model.name} has an unusable sample_rate {rate!r}", utt.id))

        def timed():
            start = time.perf_counter()
            transcript = as_transcript(instance.transcribe(to_model_input(raw, rate)))
            return transcript, time.perf_counter() - start

        try:
            if not model.warmed_up:
                model.warmed_up = True
                call_with_timeout(timed, self.timeout)
            transcript, elapsed = call_with_timeout(timed, self.timeout)
            repeats = tuple(call_with_timeout(timed, self.timeout)[0] for _ in range(self.repeats - 1))
        except CallTimeout as exc:
            return Output(utt, audio_seconds=raw.duration,
                          error=InputError(where, f"model {model.name}: {exc}", utt.id))
        except Exception as exc:  # noqa: BLE001 - a model that raises fails its utterance only
            return Output(
                utt,
                audio_seconds=raw.duration,
                error=InputError(
                    where, f"model {model.name} raised {type(exc).__name__}: {unicode_safe(str(exc))[:2000]}", utt.id
                ),
            )
        transcript, notes = repaired(transcript, raw.duration)
        repeats = tuple(repaired(r, raw.duration)[0] for r in repeats)
        return Output(utt, transcript, elapsed, raw.duration, repeats=repeats, notes=notes)


    # -- other tasks: the same rules (one untimed warm-up per model, the timer around the call) ----

    def synthesize(self, model: LoadedModel, item_id: str, text: str, repeat: bool = False) -> TTSOutput:
        instance = model.instance

        def timed():
            start = time.perf_counter()
            audio = as_audio(instance.synthesize(text))
            return audio, time.perf_counter() - start

        try:
            if not model.warmed_up:
                model.warmed_up = True
                call_with_timeout(timed, self.timeout)
            audio, elapsed = call_with_timeout(timed, self.timeout)
            again = call_with_timeout(timed, self.timeout)[0] if repeat else None
        except CallTimeout as exc:
            return TTSOutput(item_id, text, error=f"model {model.name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a model that raises fails its item only
            return TTSOutput(item_id, text, error=f"model {model.name} raised {type(exc).__name__}: {unicode_safe(str(exc))[:2000]}")
        return TTSOutput(item_id, text, audio, elapsed, again)

    def respond(self, model: LoadedModel, item_id: str, messages: list) -> ChatOutput:
        """Streams where the model can (time to first token), else one call."""
        instance = model.instance
        stream = getattr(instance, "stream", None)

        def call():
            if not callable(stream):
                return as_response(instance.respond(messages)), None
            pieces, first = [], None
            start = time.perf_counter()
            for piece in stream(messages):
                if first is None and piece:
                    first = time.perf_counter() - start
                pieces.append(piece if isinstance(piece, str) else str(piece))
            return Response("".join(pieces), len(pieces)), first

        def timed():
            start = time.perf_counter()
            response, first = call()
            return response, first, time.perf_counter() - start

        try:
            if not model.warmed_up:
                model.warmed_up = True
                call_with_timeout(timed, self.timeout)
            response, first, elapsed = call_with_timeout(timed, self.timeout)
        except CallTimeout as exc:
            return ChatOutput(item_id, messages, error=f"model {model.name}: {exc}")
        except Exception as exc:  # noqa: BLE001
            return ChatOutput(item_id, messages, error=f"model {model.name} raised {type(exc).__name__}: {unicode_safe(str(exc))[:2000]}")
        if not isinstance(response.text, str):
            return ChatOutput(item_id, messages, error=f"model {model.name} returned a {type(response.text).__name__} as text")
        text, original = bounded(unicode_safe(response.text))
        if original or text != response.text:
            response = dataclasses.replace(response, text=text)
        return ChatOutput(item_id, messages, response, first, elapsed)
