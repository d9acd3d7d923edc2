"""The runner: builds models (once) and runs them over utterances. The only place that times inference.

What is timed for each utterance: turning the decoded file into the model's input (downmix,
resample) and the whole ``transcribe`` call, including consuming any lazy generator inside it.
Not timed: reading the file from disk, the model load, and one warm-up call per model.

Execution goes through an Executor so that batching, an inference cache or a process pool can be
added here later without touching suites or metrics.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

from ._audio import AudioError, read_audio, to_model_input
from ._registry import ModelSpec
from ._types import Audio, InputError, Output, Response, Transcript, Utterance


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
            self._loaded[spec.name] = LoadedModel(spec, instance, seconds, info=model_info(spec, instance))
        return self._loaded[spec.name]

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._loaded)

    def close(self) -> None:
        for loaded in self._loaded.values():
            close = getattr(loaded.instance, "close", None)
            if callable(close):
                close()


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
        info.update(reported())
    return info


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(model: LoadedModel, batch_size: int = 1) -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": model.info.get("device", "cpu"),
        "threads": model.info.get("threads"),
        "batch_size": batch_size,
        "timing": "inference timed per utterance; load and one warm-up call excluded",
    }


class Executor(Protocol):
    def map(self, fn: Callable[[Utterance], Output], items: Iterable[Utterance]) -> Iterator[Output]: ...


class SerialExecutor:
    """Runs utterances one after another in this process (the right thing for timing)."""

    def map(self, fn, items):
        for item in items:
            yield fn(item)


def as_transcript(value: Any) -> Transcript:
    if isinstance(value, Transcript):
        return value
    if isinstance(value, str):
        return Transcript(text=value)
    raise TypeError(f"transcribe() must return a Transcript or str, got {type(value).__name__}")


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
    def __init__(self, executor: Executor | None = None, repeats: int = 1) -> None:
        self.executor = executor or SerialExecutor()
        self.repeats = max(1, repeats)  # > 1 measures non-determinism; only the first run is timed

    def run(
        self,
        model: LoadedModel,
        utterances: Iterable[Utterance],
        on_output: Callable[[Output], None] | None = None,
    ) -> list[Output]:
        outputs = []
        for output in self.executor.map(lambda u: self.run_one(model, u), utterances):
            outputs.append(output)
            if on_output is not None:
                on_output(output)
        return outputs

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
        instance = model.instance
        rate = getattr(instance, "sample_rate", 16000)
        try:
            if not model.warmed_up:
                model.warmed_up = True
                as_transcript(instance.transcribe(to_model_input(raw, rate)))
            start = time.perf_counter()
            transcript = as_transcript(instance.transcribe(to_model_input(raw, rate)))
            elapsed = time.perf_counter() - start
            repeats = tuple(
                as_transcript(instance.transcribe(to_model_input(raw, rate))) for _ in range(self.repeats - 1)
            )
        except Exception as exc:  # noqa: BLE001 - a model that raises fails its utterance only
            return Output(
                utt,
                audio_seconds=raw.duration,
                error=InputError(
                    where, f"model {model.name} raised {type(exc).__name__}: {exc}", utt.id
                ),
            )
        return Output(utt, transcript, elapsed, raw.duration, repeats=repeats)


    # -- other tasks: the same rules (one untimed warm-up per model, the timer around the call) ----

    def synthesize(self, model: LoadedModel, item_id: str, text: str, repeat: bool = False) -> TTSOutput:
        instance = model.instance
        try:
            if not model.warmed_up:
                model.warmed_up = True
                as_audio(instance.synthesize(text))
            start = time.perf_counter()
            audio = as_audio(instance.synthesize(text))
            elapsed = time.perf_counter() - start
            again = as_audio(instance.synthesize(text)) if repeat else None
        except Exception as exc:  # noqa: BLE001 - a model that raises fails its item only
            return TTSOutput(item_id, text, error=f"model {model.name} raised {type(exc).__name__}: {exc}")
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
                pieces.append(piece)
            return Response("".join(pieces), len(pieces)), first

        try:
            if not model.warmed_up:
                model.warmed_up = True
                call()
            start = time.perf_counter()
            response, first = call()
            elapsed = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001
            return ChatOutput(item_id, messages, error=f"model {model.name} raised {type(exc).__name__}: {exc}")
        return ChatOutput(item_id, messages, response, first, elapsed)
