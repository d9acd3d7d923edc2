"""Task protocols and the value types that flow between the modules.

Kept free of heavy imports: numpy arrays appear only in annotations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass(frozen=True)
class Segment:
    """A timed piece of a transcript, with the model's own scores where it gives them."""

    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Transcript:
    """What an ASR model returns for one utterance."""

    text: str
    segments: tuple[Segment, ...] = ()
    language: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        """Decoded with sampling: a segment the backend reports at a temperature above 0 (Whisper's
        temperature fallback)."""
        return any(s.temperature is not None and s.temperature > 0 for s in self.segments)


@dataclass(frozen=True)
class Partial:
    """A streamed piece of a transcript, yielded by ``transcribe_events`` as it arrives (a delta,
    or the whole text so far where ``cumulative``)."""

    text: str
    cumulative: bool = False


@dataclass(frozen=True)
class AudioSent:
    """Yielded by ``transcribe_events`` when the last of the audio has been sent (the runner then
    times the final transcript from here) after ``sent`` seconds of sending."""


@dataclass(frozen=True)
class Fault:
    """Something that went wrong on the way and was recovered from (a retried HTTP 429, a 5xx, a
    reconnect): ``kind`` ("http_429", "http_503", "timeout", "connection") and a short detail.
    Counted per utterance and shown, never folded into a latency figure."""

    kind: str
    detail: str = ""


@runtime_checkable
class ASRModel(Protocol):
    """The ASR task protocol.

    ``sample_rate`` is the rate the model wants; the runner hands ``transcribe`` a mono float32
    numpy array at that rate, in [-1, 1]. ``transcribe`` returns a :class:`Transcript` (or a plain
    string). Optional: ``info() -> dict`` with backend metadata (backend_version, device, threads,
    compute_type, weights), ``close()`` to free resources at the end of the session, and
    ``seed(n)``, called before every call with a seed derived from ``[tool.speechlab] seed``, the
    utterance id and the repeat index, for a model that samples (Whisper's temperature fallback).

    A model behind a service may instead implement ``transcribe_events(audio, language=None)``:
    an iterator of :class:`Partial`, :class:`AudioSent` and :class:`Fault` events ending with the
    :class:`Transcript`; the runner then times the first partial, the final transcript from the
    end of the audio, and counts the faults (an exception raised later keeps them).
    """

    sample_rate: int

    def transcribe(self, audio: np.ndarray) -> Transcript | str: ...


@dataclass(frozen=True)
class Audio:
    """What a TTS model returns: mono samples (float, in [-1, 1]) and their rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


@runtime_checkable
class TTSModel(Protocol):
    """The TTS task protocol: ``synthesize(text) -> Audio`` (or ``(samples, sample_rate)``).

    Optional: ``deterministic`` (True when the same text always gives the same samples; the TTS
    suite then checks it), ``info()`` and ``close()`` as for ASR.
    """

    def synthesize(self, text: str) -> Audio: ...


@dataclass(frozen=True)
class Response:
    """What a chat model returns for one conversation."""

    text: str
    tokens: int | None = None  # generated tokens, where the backend counts them
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    """The chat task protocol: ``respond(messages) -> Response`` (or a str).

    ``messages`` is a list of ``{"role": "system" | "user" | "assistant", "content": str}``.
    Optional: ``stream(messages)`` yielding text pieces as they are generated (one piece per token
    where possible): the runner then measures the time to the first token; ``info()``, ``close()``.
    """

    def respond(self, messages: list[dict[str, str]]) -> Response | str: ...


@dataclass(frozen=True)
class Utterance:
    """One evaluation item. Audio is referenced, not held: it is read when the runner needs it."""

    id: str
    audio_path: str
    text: str | None
    kind: str = "speech"  # "speech" or "nonspeech"
    language: str | None = None
    duration: float | None = None
    source: str = ""  # where it was declared, e.g. "fixtures/speech/manifest.jsonl:7"
    offset: float | None = None  # a segment of the file: from offset seconds, for ``duration`` (NeMo's offset)
    perturbation: tuple = ()  # Perturbation steps applied when the audio is read (a perturbed dataset)
    # the manifest's other fields (speaker, gender, age, accent...: what slices are cut by), as
    # sorted (name, text) pairs
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class InputError:
    """A problem with one input (manifest line, audio file, model call). Names the thing and the fix."""

    source: str
    message: str
    utterance_id: str | None = None

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


CACHE_MODES = ("on", "off", "refresh", "read-only")  # --speechlab-cache / [tool.speechlab] cache


# Languages written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese,
# Cantonese): scored in characters, CER their headline figure.
UNSEGMENTED = frozenset({"zh", "ja", "th", "lo", "km", "my", "yue"})


def base_language(code: object) -> str | None:
    """A language code's base ISO 639 part, lower case ("pt-BR", "pt_br" -> "pt"); None for none,
    and for what is not a string (a model's reported language is untrusted). At most 32 characters."""
    if not isinstance(code, str):
        return None
    return code.strip().replace("_", "-").split("-")[0].lower()[:32] or None


class SpeechlabError(Exception):
    """Raised for configuration and selection errors that stop the run with a clear message."""


@dataclass
class Output:
    """What the runner measured for one utterance: the transcript or the error, and the timing."""

    utterance: Utterance
    transcript: Transcript | None = None
    processing_seconds: float = 0.0
    audio_seconds: float = 0.0
    error: InputError | None = None
    skipped: str = ""  # why the utterance was not run although its input is fine
    repeats: tuple[Transcript, ...] = ()  # further runs with --speechlab-repeat, untimed
    notes: tuple[str, ...] = ()  # what the runner had to do to the model's output (truncated, repaired)
    cached: dict | None = None  # from the inference cache: the run, CPU and time its timing was measured
    worker: str = ""  # the worker process or actor that computed it ("" in the session's own process)
    threads: int | None = None  # the model's threads where it ran
    batch_size: int = 1  # the size of the batch it was decoded in (its time is a share of the batch's)
    silences: tuple[tuple[float, float], ...] = ()  # long silent stretches of the input (start, end s)
    # measured by the runner on a service's event stream: first_partial_s, after_audio_s, sending_s
    # (seconds taken to send the audio), faults (kinds of recovered faults, in order)
    latency: dict = field(default_factory=dict)
    cpu_seconds: float | None = None  # CPU time of this process during the timed call (None: not measured)
    snr_db: float | None = None  # a perturbed input's SNR as the model hears it (measured; background kinds only)

    @property
    def item_id(self) -> str:
        return self.utterance.id


@dataclass
class Invocation:
    """One model call as the runner measured it (every task): the checked output or the error, the
    timed seconds, the time to the first streamed piece, and the outputs of further untimed calls."""

    value: Any = None  # Transcript, Audio, Response or vectors, as the task's call returns them
    seconds: float = 0.0
    first_token_seconds: float | None = None
    again: tuple = ()  # further runs (--speechlab-repeat, a determinism check), untimed
    error: str = ""
    latency: dict = field(default_factory=dict)  # the service timings and faults (see Output.latency)
    cpu_seconds: float | None = None  # CPU time of this process during the timed call


@dataclass
class Call:
    """One item of a task whose input is not audio (a text to synthesize, a conversation to answer)
    as the runner measured it: the Invocation, the worker that made it and, for an output from the
    inference cache, the run, CPU and time its timing was measured with (the ASR counterpart is
    ``Output``)."""

    item: Any  # a TextItem or a Prompt: it has an ``id`` and a ``source``
    invocation: Invocation
    task: str = ""  # the task's name (the inference cache encodes the value by it)
    worker: str = ""
    cached: dict | None = None

    @property
    def item_id(self) -> str:
        return self.item.id
