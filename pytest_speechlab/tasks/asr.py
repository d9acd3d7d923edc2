"""The ASR task: utterances (audio + reference) -> transcripts -> WER/CER and hallucination findings."""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

from .._audio import to_model_input
from .._dataset import load_dataset
from .._text import MAX_TEXT_CHARS, bounded, unicode_safe
from .._types import AudioSent, Fault, Partial, Segment, Transcript
from ..metrics.wer import score_output, summarize
from .base import Task


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
    # segment times that cannot be times (not finite, before the start, ending before they begin) are
    # said and repaired; text after the end of the audio is left as reported: the past_end detector's
    # finding, with the times as evidence
    def plausible(s) -> bool:
        return _finite(s.start) and _finite(s.end) and -1.0 <= s.start <= s.end

    implausible = [s for s in segments if not plausible(s)]
    if implausible:
        first = implausible[0]
        notes.append(f"{len(implausible)} segment(s) with impossible times (not finite, before the start of the "
                     f"{audio_seconds:.2f} s of audio, or reversed; first: {first.start!r} to {first.end!r} s): repaired")
        segments = tuple(s if plausible(s) else _clamped(s, audio_seconds) for s in segments)
    if not notes and segments == tuple(transcript.segments):
        return transcript, ()
    return dataclasses.replace(transcript, text=text, segments=segments), tuple(notes)


def _clamped(segment, audio_seconds: float):
    """Start at 0 or later, end at the start or later; an end past the audio stays (it is evidence)."""
    start = max(segment.start, 0.0) if _finite(segment.start) else 0.0
    end = segment.end if _finite(segment.end) else audio_seconds
    return dataclasses.replace(segment, start=start, end=max(start, end))


def supports_language(info: dict, language: str | None) -> bool:
    languages = info.get("languages")
    if not language or not languages:
        return True
    return language.split("-")[0].lower() in languages


DATASET_LANGUAGE = "dataset"  # the decode option ``language = "dataset"``: each utterance's own language


def hints_language(params: dict) -> bool:
    return params.get("language") == DATASET_LANGUAGE


def accepts_keyword(method: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _transcribe(instance: Any, request: tuple) -> tuple[Transcript, dict | None]:
    """Timed: turning the decoded file into the model's input (downmix, resample) and the whole
    ``transcribe`` call, including consuming any lazy generator inside it. With a language hint
    (``language = "dataset"``) the utterance's language goes as ``language=``. A model with
    ``transcribe_events`` (a service) is read event by event instead (see ``read_events``)."""
    raw, rate, language = request
    audio = to_model_input(raw, rate)
    events = getattr(instance, "transcribe_events", None)
    if callable(events):
        return read_events(events(audio, language=language) if language else events(audio))
    return as_transcript(instance.transcribe(audio, language=language) if language else instance.transcribe(audio)), None


MAX_EVENTS = 100_000


def read_events(events: Any) -> tuple[Transcript, dict]:
    """A service's event stream, timed here: ``first_partial_s`` (the first non-empty Partial),
    ``sending_s`` (until AudioSent), ``after_audio_s`` (from AudioSent to the transcript),
    ``partials`` and ``faults`` (the kinds, in order). The stream ends with the Transcript (or a
    str). An exception raised on the way keeps what was measured until then
    (``exc.speechlab_latency``): the faults that led to it are counted too."""
    import time

    start = time.perf_counter()
    latency: dict[str, Any] = {"partials": 0, "faults": []}
    sent = None
    final: Any = None
    try:
        for count, event in enumerate(events):
            now = time.perf_counter()
            if count >= MAX_EVENTS:
                raise ValueError(f"more than {MAX_EVENTS:,} events for one utterance")
            if isinstance(event, Partial):
                if not isinstance(event.text, str):
                    raise TypeError(f"a Partial's text is {type(event.text).__name__}, not str")
                latency["partials"] += 1
                if event.text.strip() and "first_partial_s" not in latency:
                    latency["first_partial_s"] = now - start
            elif isinstance(event, AudioSent):
                sent = now
                latency["sending_s"] = now - start
            elif isinstance(event, Fault):
                latency["faults"].append(str(event.kind)[:40])
            elif isinstance(event, (Transcript, str)):
                final = event
            else:
                raise TypeError(f"transcribe_events() yielded a {type(event).__name__}, not a Partial, "
                                "AudioSent, Fault or Transcript")
        if final is None:
            raise TypeError("transcribe_events() ended without a Transcript")
        transcript = as_transcript(final)
    except Exception as exc:
        try:
            exc.speechlab_latency = latency  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - an exception type with __slots__
            pass
        raise
    if sent is not None:
        latency["after_audio_s"] = time.perf_counter() - sent
    return transcript, latency


def _transcribe_batch(instance: Any, request: tuple) -> tuple[list[Transcript], None]:
    """Timed as a whole: every clip turned into the model's input, and one ``transcribe_batch`` call
    (with ``languages=``, one per clip, under a language hint)."""
    raws, rate, languages = request
    audios = [to_model_input(raw, rate) for raw in raws]
    out = instance.transcribe_batch(audios, languages=languages) if languages else instance.transcribe_batch(audios)
    if not isinstance(out, (list, tuple)) or len(out) != len(raws):
        raise TypeError(f"transcribe_batch() must return one Transcript per clip ({len(raws)}), "
                        f"got {type(out).__name__}{f' of {len(out)}' if isinstance(out, (list, tuple)) else ''}")
    return [as_transcript(t) for t in out], None


# A model with a ``batch_size`` decode parameter above 1 implements ``transcribe_batch(list of arrays)``.
ASR_BATCH = Task("asr (batched)", ("transcribe_batch",), "transcribe_batch(list of audio) -> list[Transcript]",
                 _transcribe_batch)

ASR = Task("asr", ("transcribe",), "ASRModel: transcribe(audio) -> Transcript | str", _transcribe,
           load=load_dataset, score=score_output, summarize=summarize, item_kind="utterance", set_kind="speech set")


def batch_size_of(params: dict) -> int:
    """The ``batch_size`` decode parameter (1 when absent or not a positive integer)."""
    value = params.get("batch_size", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def asr_problem(instance: Any, params: dict) -> str | None:
    """What an ASR instance lacks for its parameters: a batch method for ``batch_size`` above 1, a
    ``language=`` (``languages=`` when batching) for ``language = "dataset"``."""
    size = batch_size_of(params)
    if size > 1 and not callable(getattr(instance, "transcribe_batch", None)):
        return (f"it has batch_size {size} and no batch method ({ASR_BATCH.protocol}); "
                "drop batch_size or use a model that batches")
    told = accepts_keyword(instance.transcribe, "language") and (
        size <= 1 or accepts_keyword(instance.transcribe_batch, "languages"))
    if hints_language(params) and not told:
        return ('it has language = "dataset" but its transcribe() takes no language= (nor its '
                "transcribe_batch() languages=): it cannot be told each utterance's language")
    return None
