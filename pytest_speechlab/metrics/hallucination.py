"""Hallucination detectors: evidence-backed findings per utterance.

Each detector takes a scored UtteranceResult (reference, hypothesis, both normalized, the word
alignment, the model's segments and scores, the audio duration) and returns findings. A finding
names its kind, the span of hypothesis text it is about and the evidence (numbers, the phrase).
``high_wer`` is the old lab's blunt filter: reported as a signal, not counted as a hallucination.
"""
from __future__ import annotations

import re
import string
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from .._tables import checked
from .._types import SpeechlabError, base_language
from .normalize import Normalizer
from .results import Finding, UtteranceResult

KINDS = (
    "nonspeech_text", "repetition", "insertion_run", "known_phrase", "past_end", "low_confidence",
    "implausible_length", "high_wer", "wrong_language", "repeated_segment", "text_in_silence",
)
PHRASES_FILE = Path(__file__).parent.parent / "data" / "hallucination_phrases.txt"


@dataclass(frozen=True)
class HallucinationConfig:
    """``[tool.speechlab.hallucination]``; the defaults are documented in docs/hallucination.md and docs/reference.md."""

    compression_ratio: float = 2.4
    ngram_repeats: int = 3
    max_ngram: int = 6
    insertion_run: int = 4
    past_end_tolerance_s: float = 0.5
    low_avg_logprob: float = -1.0
    high_no_speech_prob: float = 0.6
    max_words_per_second: float = 6.0
    max_chars_per_second: float = 12.0  # the same for a language scored in characters (zh, ja, th...)
    min_words_for_rate: int = 8
    max_length_ratio: float = 2.0
    min_extra_words: int = 5
    high_wer: float = 0.5
    segment_repeats: int = 3  # consecutive segments with the same text
    silence_seconds: float = 3.0  # a silent stretch at least this long holds no speech
    silence_margin_s: float = 0.5  # a segment this far inside both ends of such a stretch is flagged
    window_s: float = 30.0  # compression ratio is judged per window of this much audio (Whisper's)
    phrases_file: str = ""
    disabled: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: dict, where: str) -> HallucinationConfig:
        values = checked(cls, table, where, types={"disabled": tuple})
        if "disabled" in values:
            bad = set(values["disabled"]) - set(KINDS)
            if bad:
                raise SpeechlabError(f"{where}.disabled: unknown detector(s) {sorted(bad)}; known: {KINDS}")
            values["disabled"] = tuple(values["disabled"])
        return cls(**values)


def compression_ratio(text: str) -> float:
    """Whisper's measure: UTF-8 length over zlib-compressed length; loops compress well."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def max_consecutive_repeats(words: list[str], max_n: int) -> dict[tuple[str, ...], int]:
    """For each n-gram (n <= max_n), the longest run of back-to-back copies of it in ``words``.

    Linear in the number of words for each n: ``same[i]`` counts how many words from position i on
    equal the word n places before them; a gram starting at i is followed by ``same[i + n] // n``
    further copies. Only grams that repeat are returned."""
    best: dict[tuple[str, ...], int] = {}
    total = len(words)
    for n in range(1, max_n + 1):
        same = [0] * (total + 1)
        for i in range(total - 1, n - 1, -1):
            same[i] = same[i + 1] + 1 if words[i] == words[i - n] else 0
        for start in range(total - 2 * n + 1):
            count = 1 + same[start + n] // n
            if count > 1:
                gram = tuple(words[start : start + n])
                if count > best.get(gram, 1):
                    best[gram] = count
    return best


@lru_cache(maxsize=8)
def load_phrases(path: str, normalizer: Normalizer) -> tuple[tuple[str, bool], ...]:
    """(normalized phrase, whole-hypothesis-only) pairs from the curated file."""
    phrases = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        whole = line.startswith("^")
        text = normalizer(line.lstrip("^"))
        if text:
            phrases.append((text, whole))
    return tuple(dict.fromkeys(phrases))


def _contains(haystack: str, needle: str) -> bool:
    return re.search(rf"(?<!\S){re.escape(needle)}(?!\S)", haystack) is not None


def _clip(text: str, limit: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the detectors ----------------------------------------------------------------------------

Detector = Callable[["UtteranceResult", HallucinationConfig, "Normalizer"], list[Finding]]


def nonspeech_text(u, cfg, normalizer):
    if u.utterance.kind == "nonspeech" and u.hypothesis_normalized:
        return [Finding("nonspeech_text", u.hypothesis,
                        f"text {_clip(u.hypothesis)!r} on a non-speech clip ({u.audio_seconds:.1f} s)")]
    return []


WINDOW_WORDS = 100


def _worded(segments, normalizer) -> list:
    """The segments whose text has a word once normalized (not "." or "♪")."""
    return [s for s in segments if normalizer(s.text)]


def _windows(u, cfg, normalizer) -> list[tuple[str, str]]:
    """(where, text) to judge compression on: the whole hypothesis of a clip up to ``window_s``;
    for a longer recording its segments grouped into windows of ``window_s`` (prose compresses
    better the longer it is, so a whole long transcript would always look like a loop)."""
    segments = _worded(u.transcript.segments if u.transcript else (), normalizer)
    if u.audio_seconds <= cfg.window_s or not segments:
        return [("hypothesis", u.hypothesis)] if u.audio_seconds <= cfg.window_s else []
    windows: dict[int, list] = {}
    for seg in segments:
        windows.setdefault(int(seg.start // cfg.window_s), []).append(seg)
    return [(f"{group[0].start:.1f}-{group[-1].end:.1f} s", " ".join(seg.text.strip() for seg in group))
            for group in windows.values() if group[-1].end - group[0].start <= 2 * cfg.window_s]


def repetition(u, cfg, normalizer):
    found = []
    texts = _windows(u, cfg, normalizer) + [  # a segment spanning minutes (a backend without timestamps) is prose, not a window
        (f"segment {s.start:.1f}-{s.end:.1f} s", s.text) for s in (u.transcript.segments if u.transcript else ())
        if s.end - s.start <= 2 * cfg.window_s
    ]
    for where, text in texts:
        # on the words (a run of "." or "♪" written into a pause is not a loop of words), at most
        # WINDOW_WORDS at a time, about what a 30 s window holds: longer prose compresses better
        # without repeating anything (a segment with wrong timestamps can hold minutes of speech)
        words = [tok for tok in text.split() if any(ch.isalnum() for ch in tok)]
        ratio, piece = max(((compression_ratio(" ".join(words[i:i + WINDOW_WORDS])), i)
                            for i in range(0, max(len(words), 1), WINDOW_WORDS)), default=(0.0, 0))
        if ratio > cfg.compression_ratio:
            found.append(Finding("repetition", " ".join(words[piece:piece + WINDOW_WORDS]),
                                 f"compression ratio {ratio:.2f} > {cfg.compression_ratio} in {where}"))
            break
    words = u.hypothesis_normalized.split()
    allowed = max_consecutive_repeats(u.reference_normalized.split(), cfg.max_ngram)
    loops = [(gram, n) for gram, n in max_consecutive_repeats(words, cfg.max_ngram).items()
             if n >= cfg.ngram_repeats and n > allowed.get(gram, 1)]
    if loops:
        gram, n = max(loops, key=lambda item: (item[1] * len(item[0]), len(item[0])))
        phrase = " ".join(gram)
        said = _as_said(u.hypothesis, len(gram), n) or phrase  # the transcript's own words ("oh", not "0")
        found.append(Finding("repetition", " ".join([said] * n),
                             f"{said!r} repeated {n} times in a row"
                             + (f" (normalized: {phrase!r})" if said != phrase else "")
                             + (" (more than in the reference)" if u.reference_normalized else "")))
    return found


def _as_said(text: str, size: int, times: int) -> str | None:
    """The loop of ``size`` words repeated ``times`` times in a row as the transcript wrote it (case
    and surrounding punctuation aside), or None where normalizing made it (numbers spelled out...)."""
    words = [w.strip(string.punctuation + "¿¡«»“”‘’…").lower() for w in text.split()]
    loops = max_consecutive_repeats([w for w in words if w], size)
    found = [gram for gram, n in loops.items() if len(gram) == size and n == times]
    return " ".join(found[0]) if found else None


def insertion_run(u, cfg, normalizer):
    return [
        Finding("insertion_run", " ".join(op.hyp), f"{len(op.hyp)} consecutive inserted words "
                f"(>= {cfg.insertion_run}) not in the reference")
        for op in u.alignment if op.op == "insert" and len(op.hyp) >= cfg.insertion_run
    ]


def known_phrase(u, cfg, normalizer):
    hyp = u.hypothesis_normalized
    if not hyp:
        return []
    ref = u.reference_normalized
    found = []
    for phrase, whole in load_phrases(cfg.phrases_file or str(PHRASES_FILE), normalizer):
        if whole:
            hit = u.utterance.kind == "nonspeech" and hyp == phrase
        else:
            hit = _contains(hyp, phrase) and not _contains(ref, phrase)
        if hit:
            found.append(Finding("known_phrase", phrase, f"known hallucination phrase {phrase!r}"))
    return found


def past_end(u, cfg, normalizer):
    """Text in segments that start after the audio has ended (on non-speech clips, that end after it).

    A speech segment that starts inside the clip and ends past it is usually a correct transcript
    with a bad end timestamp (Whisper closes its last segment at the window's end); it is not
    flagged, since its words are checked against the reference by the other detectors.
    """
    if not u.transcript or not u.audio_seconds:
        return []
    duration = u.audio_seconds
    limit = duration + cfg.past_end_tolerance_s
    nonspeech = u.utterance.kind == "nonspeech"
    late = [s for s in u.transcript.segments
            if s.text.strip() and (s.start >= duration or (nonspeech and s.end > limit))]
    if not late:
        return []
    return [Finding("past_end", " ".join(s.text.strip() for s in late),
                    f"{len(late)} segment(s) with text after the audio ends ({duration:.2f} s), "
                    f"the last ending at {max(s.end for s in late):.2f} s")]


def low_confidence(u, cfg, normalizer):
    segments = u.transcript.segments if u.transcript else ()
    return [
        Finding("low_confidence", s.text.strip(),
                f"segment {s.start:.1f}-{s.end:.1f} s: avg_logprob {s.avg_logprob:.2f} < {cfg.low_avg_logprob} "
                f"and no_speech_prob {s.no_speech_prob:.2f} > {cfg.high_no_speech_prob}")
        for s in segments
        if s.text.strip() and s.avg_logprob is not None and s.no_speech_prob is not None
        and s.avg_logprob < cfg.low_avg_logprob and s.no_speech_prob > cfg.high_no_speech_prob
    ]


def implausible_length(u, cfg, normalizer):
    words = len(u.hypothesis_normalized.split())
    found = []
    unit, limit = ("characters", cfg.max_chars_per_second) if u.unit == "char" else ("words", cfg.max_words_per_second)
    if u.audio_seconds and words >= cfg.min_words_for_rate:
        rate = words / u.audio_seconds
        if rate > limit:
            found.append(Finding("implausible_length", u.hypothesis,
                                 f"{words} {unit} in {u.audio_seconds:.1f} s = {rate:.1f} {unit}/s > {limit}"))
    if u.words is not None:
        ref_words = u.words.reference_length
        if words > cfg.max_length_ratio * ref_words + cfg.min_extra_words:
            found.append(Finding("implausible_length", u.hypothesis,
                                 f"hypothesis has {words} words for a reference of {ref_words}"))
    return found


def high_wer(u, cfg, normalizer):
    if u.wer is not None and u.wer > cfg.high_wer:
        return [Finding("high_wer", u.hypothesis, f"utterance WER {u.wer:.2f} > {cfg.high_wer} (signal only)")]
    return []


def wrong_language(u, cfg, normalizer):
    """Speech answered in another language than the manifest's (a multilingual model that
    identified the language itself; a model told the language reports that one)."""
    expected, detected = base_language(u.utterance.language), base_language(u.transcript.language)
    if u.utterance.kind != "speech" or not expected or not detected or expected == detected or not u.hypothesis.strip():
        return []
    probability = u.transcript.extra.get("language_probability") if isinstance(u.transcript.extra, dict) else None
    shown = f" (probability {probability:.2f})" if isinstance(probability, (int, float)) else ""
    return [Finding("wrong_language", _clip(u.hypothesis),
                    f"transcribed as {detected!r}{shown}; the manifest says {expected!r}")]


def repeated_segment(u, cfg, normalizer):
    """The same text in ``segment_repeats`` or more consecutive segments: a decoder stuck in a loop
    across windows (long-form decoding conditioned on its own previous text)."""
    segments = _worded(u.transcript.segments if u.transcript else (), normalizer)
    found, run = [], 1
    for i in range(1, len(segments) + 1):
        same = i < len(segments) and normalizer(segments[i].text) == normalizer(segments[i - 1].text)
        if same:
            run += 1
            continue
        if run >= cfg.segment_repeats:
            first, last = segments[i - run], segments[i - 1]
            found.append(Finding("repeated_segment", last.text.strip(),
                                 f"{_clip(last.text.strip())!r} in {run} consecutive segments, "
                                 f"{first.start:.1f}-{last.end:.1f} s"))
        run = 1
    return found


def text_in_silence(u, cfg, normalizer):
    """Segments with text lying wholly inside a stretch of the input at least ``silence_seconds``
    long whose every 50 ms frame is below -50 dBFS (``silence_margin_s`` from either end). Wholly:
    Whisper stretches a segment's end over the silence after its words, and opens a segment early
    before words that follow a silence; a segment that begins and ends in silence has words no one
    spoke there."""
    silences = [(a, b) for a, b in u.silences if b - a >= cfg.silence_seconds]
    if not silences or not u.transcript:
        return []
    margin = cfg.silence_margin_s
    return [Finding("text_in_silence", seg.text.strip(),
                    f"segment {seg.start:.1f}-{seg.end:.1f} s {_clip(seg.text.strip())!r} lies in silence "
                    f"{a:.1f}-{b:.1f} s (every 50 ms below -50 dBFS)")
            for seg in _worded(u.transcript.segments, normalizer)
            for a, b in silences if a + margin <= seg.start and seg.end <= b - margin]


DETECTORS: dict[str, Detector] = {
    "nonspeech_text": nonspeech_text,
    "repetition": repetition,
    "insertion_run": insertion_run,
    "known_phrase": known_phrase,
    "past_end": past_end,
    "low_confidence": low_confidence,
    "implausible_length": implausible_length,
    "high_wer": high_wer,
    "wrong_language": wrong_language,
    "repeated_segment": repeated_segment,
    "text_in_silence": text_in_silence,
}


def detect(u: UtteranceResult, cfg: HallucinationConfig, normalizer: Normalizer) -> list[Finding]:
    if u.transcript is None:
        return []
    return [f for name, fn in DETECTORS.items() if name not in cfg.disabled for f in fn(u, cfg, normalizer)]
