"""What scoring produces: per-utterance results and the evaluation's result, with every figure the
sinks read (``EvalResult.summary()`` is the one serialized form). Scoring itself is in ``wer``
and ``hallucination``; this module imports neither, so that both can build on it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .._machine import contention_text
from .._types import UNSEGMENTED, InputError, Transcript, Utterance, base_language
from .latency import latency_summary
from .stats import MIN_SAMPLES, bootstrap_ci, macro_ratio_ci, ratio_ci, wilson

SIGNAL_ONLY = frozenset({"high_wer"})  # findings reported as signals, not counted as hallucinations


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    span: str  # the hypothesis text the finding is about
    evidence: str

    @property
    def counts(self) -> bool:
        """Whether it makes the utterance a hallucination (signals are reported only)."""
        return self.kind not in SIGNAL_ONLY

    def __str__(self) -> str:
        return f"{self.kind}: {self.evidence}"


@dataclass(frozen=True, slots=True)
class EditCounts:
    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def reference_length(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        n = self.reference_length
        return self.errors / n if n else None

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


@dataclass(frozen=True, slots=True)
class AlignedOp:
    """One step of the word alignment: op is equal, substitute, delete or insert."""

    op: str
    ref: tuple[str, ...]
    hyp: tuple[str, ...]


OPS = ("equal", "substitute", "delete", "insert")


def alignment_from_spans(reference: str, hypothesis: str, spans: tuple[int, ...]) -> tuple[AlignedOp, ...]:
    """The alignment steps of two normalized strings from their compact spans (five ints per step:
    op, reference start and end, hypothesis start and end, over the words)."""
    ref, hyp, s = reference.split(), hypothesis.split(), spans
    return tuple(AlignedOp(OPS[s[i]], tuple(ref[s[i + 1]:s[i + 2]]), tuple(hyp[s[i + 3]:s[i + 4]]))
                 for i in range(0, len(s), 5))


@dataclass(slots=True)
class UtteranceResult:
    utterance: Utterance
    hypothesis: str = ""
    transcript: Transcript | None = None
    reference_normalized: str = ""
    hypothesis_normalized: str = ""
    words: EditCounts | None = None  # None: not scored (non-speech, error, empty reference)
    chars: EditCounts | None = None
    # the word alignment, kept compact (five ints per step: op, reference start and end, hypothesis
    # start and end, over the normalized words): ``alignment`` rebuilds the steps when asked
    spans: tuple[int, ...] = ()
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    error: InputError | None = None
    note: str = ""
    findings: list[Finding] = field(default_factory=list)
    repeat_texts: tuple[str, ...] = ()  # transcripts of --speechlab-repeat runs after the first
    cached: dict | None = None  # the output came from the inference cache: run, CPU, when measured
    worker: str = ""  # the worker process or actor that computed it ("" in the session's process)
    threads: int | None = None
    batch_size: int = 1
    language: str = ""  # the language it was scored as (the manifest's, else the dataset's default)
    silences: tuple[tuple[float, float], ...] = ()  # long silent stretches of the input (start, end s)
    latency: dict = field(default_factory=dict)  # a service's timings and faults (Output.latency)
    cpu_seconds: float | None = None  # CPU time of the process during the timed call
    snr_db: float | None = None  # a perturbed input's SNR as the model hears it (Output.snr_db)
    # each further repeat (repeats = K) scored like the first: its hypothesis, counts and findings
    repeat_scores: tuple[UtteranceResult, ...] = ()

    def __repr__(self) -> str:
        return f"UtteranceResult(id={self.utterance.id!r}, wer={self.wer}, findings={len(self.findings)})"

    @property
    def sampled(self) -> bool:
        """Decoded with sampling: a segment the backend reports at a temperature above 0 (Whisper's
        temperature fallback), in this run or a repeat."""
        return any(u.transcript is not None and u.transcript.sampled for u in (self, *self.repeat_scores))

    @property
    def alignment(self) -> tuple[AlignedOp, ...]:
        return alignment_from_spans(self.reference_normalized, self.hypothesis_normalized, self.spans)

    @property
    def hallucinated(self) -> bool:
        return any(f.counts for f in self.findings)

    @property
    def status(self) -> str:
        """scored (part of WER), unscored (ran, but non-speech or no reference), error, or skipped."""
        if self.error is not None:
            return "error"
        if self.transcript is None:
            return "skipped"
        return "scored" if self.words is not None else "unscored"

    @property
    def changed_on_repeat(self) -> bool:
        """Whether a repeat's transcript differs, after normalization where repeats were scored."""
        if self.repeat_scores:
            return any(r.hypothesis_normalized != self.hypothesis_normalized for r in self.repeat_scores)
        return any(text != self.hypothesis for text in self.repeat_texts)

    @property
    def unit(self) -> str:
        """What its errors count: "word", or "char" for a language written without spaces (whose
        ``words`` then count characters, a Latin word inside such text one unit)."""
        return "char" if self.language in UNSEGMENTED else "word"

    @property
    def wer(self) -> float | None:
        return self.words.rate if self.words else None

    @property
    def cer(self) -> float | None:
        return self.chars.rate if self.chars else None


    def row(self) -> dict:
        """This utterance in the one serialized form: a row of the results database, the run
        file's and the comparison's utterance."""
        u = self
        words, chars = u.words, u.chars
        return {
            "utterance_id": u.utterance.id, "kind": u.utterance.kind, "source": u.utterance.source,
            "reference": u.utterance.text, "hypothesis": u.hypothesis,
            "reference_normalized": u.reference_normalized, "hypothesis_normalized": u.hypothesis_normalized,
            "hits": words.hits if words else None, "substitutions": words.substitutions if words else None,
            "deletions": words.deletions if words else None, "insertions": words.insertions if words else None,
            "char_errors": chars.errors if chars else None, "char_length": chars.reference_length if chars else None,
            "audio_seconds": u.audio_seconds, "processing_seconds": u.processing_seconds,
            "error": str(u.error) if u.error else None, "note": u.note or None,
            "findings": [{"kind": f.kind, "span": f.span, "evidence": f.evidence} for f in u.findings],
            "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in (u.transcript.segments if u.transcript else ())],
            "worker": u.worker or None, "threads": u.threads, "batch_size": u.batch_size,
            "language": u.language or None, "audio_path": u.utterance.audio_path, "snr_db": u.snr_db,
        }


def language_id(pairs) -> dict | None:
    """(expected, reported) language pairs -> how often they match (base codes), with the Wilson
    interval, over the pairs that have both (None when none has)."""
    pairs = [(base_language(a), base_language(b)) for a, b in pairs]
    pairs = [(a, b) for a, b in pairs if a and b]
    if not pairs:
        return None
    correct = sum(a == b for a, b in pairs)
    return {"correct": correct, "total": len(pairs), "accuracy": correct / len(pairs), "ci": wilson(correct, len(pairs))}


LONG_FORM_UNIT_S = 30.0  # a recording of a minute or more counts as one sample per 30 s window


def sample_units(utterances) -> int:
    """How many samples scored utterances are for a minimum sample: one each, and a long recording
    (60 s or more) one per 30 s window it spans, the unit a Whisper-style model decodes on its own
    (a 10-minute recording is 21 windows, not one utterance)."""
    return sum(math.ceil(u.audio_seconds / LONG_FORM_UNIT_S) if u.audio_seconds >= 2 * LONG_FORM_UNIT_S else 1
               for u in utterances)


def too_few(n: int, minimum: int) -> str | None:
    """"too few to judge (n = 3 < 10)", or None when ``n`` reaches ``minimum``."""
    return f"too few to judge (n = {n} < {minimum})" if n < minimum else None


def listed(languages) -> str:
    """Languages with their sample sizes: "de n = 4, es n = 3"."""
    return ", ".join(f"{lang.language} n = {lang.samples}" for lang in languages)


def _macro_ci(languages, counts) -> tuple[float, float] | None:
    """The macro average's interval: ``counts(u)`` (errors and length) resampled within each language."""
    return macro_ratio_ci([([counts(u).errors for u in lang.scored], [counts(u).reference_length for u in lang.scored])
                               for lang in languages])


class ScoredGroup:
    """Some utterances of an evaluation (a language, a slice) and their error rate: scored utterances,
    the pooled counts, the rate and its 95% interval, "too few to judge" below ``minimum``.
    Subclasses are dataclasses with ``utterances`` and ``minimum``."""

    utterances: list[UtteranceResult]
    minimum: int

    @property
    def samples(self) -> int:
        return sample_units(self.scored)

    @property
    def too_few(self) -> str | None:
        return too_few(self.samples, self.minimum)

    @property
    def scored(self) -> list[UtteranceResult]:
        return [u for u in self.utterances if u.words is not None]

    @property
    def counts(self) -> EditCounts:
        """Errors in the headline's unit: words, or characters for an unsegmented language."""
        return sum((u.words for u in self.scored), EditCounts())

    @property
    def rate(self) -> float | None:
        return self.counts.rate

    @cached_property
    def ci(self) -> tuple[float, float] | None:
        """95% interval (studentized bootstrap); None when too few to judge."""
        if self.too_few:
            return None
        scored = self.scored
        return ratio_ci([u.words.errors for u in scored], [u.words.reference_length for u in scored])


@dataclass
class LanguageResult(ScoredGroup):
    """One language of an evaluation: its headline figure (WER, or CER for a language written
    without spaces) over its scored utterances, with a bootstrap interval and the normalizer used."""

    language: str
    utterances: list[UtteranceResult]
    normalizer: str = ""
    minimum: int = MIN_SAMPLES["wer"]  # scored utterances its figure needs to be judged

    @property
    def metric(self) -> str:
        return "cer" if self.language in UNSEGMENTED else "wer"

    @property
    def char_counts(self) -> EditCounts:
        return sum((u.chars for u in self.scored if u.chars), EditCounts())

    @property
    def cer(self) -> float | None:
        return self.char_counts.rate

    def summary(self) -> dict:
        counts = self.counts
        flagged = sum(u.hallucinated for u in self.utterances if u.transcript is not None)
        return {
            "language": self.language, "metric": self.metric, "error_rate": self.rate, "ci": self.ci,
            "wer": self.rate if self.metric == "wer" else None, "cer": self.cer,
            "utterances": len(self.utterances), "scored": len(self.scored), "reference_units": counts.reference_length,
            "substitutions": counts.substitutions, "deletions": counts.deletions, "insertions": counts.insertions,
            "hallucinated": flagged, "normalizer": self.normalizer, "too_few": self.too_few,
            "language_id": language_id([(self.language, u.transcript.language) for u in self.utterances
                                        if u.transcript is not None]),
        }


@dataclass
class EvalResult:
    model: str
    dataset: str
    normalizer: str
    utterances: list[UtteranceResult] = field(default_factory=list)
    dataset_errors: list[InputError] = field(default_factory=list)
    model_info: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    retimed: dict | None = None  # with cached outputs: a sample timed again here (utterances, seconds, rtf)
    wall_seconds: float | None = None  # the evaluation's wall-clock time in this session
    workers: int = 1  # processes or actors that ran its cache misses
    normalizers: dict[str, str] = field(default_factory=dict)  # language -> the label of its normalizer
    contention: dict | None = None  # how busy the machine was while this evaluation was timed (_machine)
    unstable: str = "fail"  # [tool.speechlab] unstable: a threshold verdict that depends on the run fails or warns
    cache_audit: dict | None = None  # re-timed outputs against their cached ones (engine)
    min_samples: dict[str, int] = field(default_factory=lambda: dict(MIN_SAMPLES))  # [tool.speechlab.min_samples]

    @cached_property
    def languages(self) -> dict[str, LanguageResult]:
        """The speech utterances by the language they were scored as (non-speech clips have none)."""
        groups: dict[str, list[UtteranceResult]] = {}
        for u in self.utterances:
            if u.utterance.kind == "speech" and u.language:
                groups.setdefault(u.language, []).append(u)
        minimum = self.min_samples.get("wer", MIN_SAMPLES["wer"])
        return {lang: LanguageResult(lang, groups[lang], self.normalizers.get(lang, self.normalizer), minimum)
                for lang in sorted(groups)}

    @property
    def multilingual(self) -> bool:
        return len(self.languages) > 1

    @cached_property
    def headline(self) -> tuple[str, float | None, tuple[float, float] | None]:
        """(metric, value, 95% interval): the figure an evaluation is judged by. One language: its
        WER (CER for a language written without spaces). Several: the macro average of each
        language's figure, its interval resampling utterances within each language; a WER pooled
        across languages is never the headline. A language with too few utterances to judge is
        listed (``unjudged_languages``), never averaged into the macro; a figure with too few has
        no interval."""
        languages = list(self.languages.values())
        if len(languages) <= 1:
            if not languages:  # results built without a language (by hand): the pooled WER
                return "wer", self.words.rate, self.wer_ci
            return languages[0].metric, languages[0].rate, languages[0].ci
        rated = [lang for lang in languages if lang.rate is not None and not lang.too_few]
        if not rated:
            return "macro", None, None
        return "macro", sum(lang.rate for lang in rated) / len(rated), _macro_ci(rated, lambda u: u.words)

    @property
    def error_rate(self) -> float | None:
        return self.headline[1]

    @property
    def unjudged_languages(self) -> list[LanguageResult]:
        """The languages with too few scored utterances to judge (across several languages)."""
        return [lang for lang in self.languages.values() if lang.too_few] if self.multilingual else []

    def too_few(self, metric: str) -> str | None:
        """Why ``metric`` (a threshold's name: wer, cer, hallucination_rate,
        nonspeech_hallucination_rate, rtf) is not judged on this result for want of samples, or
        None: "too few to judge (n = 3 < 10)"; across languages, when no language has enough. None
        also when there is no sample at all (a non-speech set has no WER: not "too few")."""
        minimum = self.min_samples.get(metric)
        if minimum is None:
            return None
        if metric in ("wer", "cer") and self.multilingual:
            if len(self.unjudged_languages) < len(self.languages):
                return None
            return f"too few to judge in every language ({listed(self.languages.values())}; each needs {minimum})"
        if metric in ("wer", "cer"):
            n = sample_units(self.scored)
        elif metric == "rtf":
            n = self.retimed.get("utterances", 0) if self.cached_count and self.retimed else len(self.processed)
        else:
            n = (self.speech_counts if metric == "hallucination_rate" else self.nonspeech_counts)[1]
        return too_few(n, minimum) if n else None  # none at all: nothing to judge, said where it is used

    @property
    def error_label(self) -> str:
        metric = self.headline[0]
        if metric != "macro":
            return "corpus WER" if metric == "wer" else f"corpus CER ({', '.join(self.languages)})"
        unjudged = self.unjudged_languages
        judged = [lang for lang, r in self.languages.items() if not r.too_few]
        cer = [lang for lang in judged if self.languages[lang].metric == "cer"]
        count = f"{len(judged)} of {len(self.languages)}" if unjudged else str(len(self.languages))
        return (f"macro average over {count} languages of each one's WER"
                + (f" (CER for {', '.join(cer)})" if cer else "")
                + (f"; not averaged, too few to judge: {listed(unjudged)} (< {unjudged[0].minimum})"
                   if unjudged else ""))

    @property
    def cached_count(self) -> int:
        return sum(1 for u in self.utterances if u.cached)

    @property
    def computed_count(self) -> int:
        return sum(1 for u in self.processed if not u.cached)

    @property
    def speed_rtf(self) -> float | None:
        """The RTF speed checks use: measured in this session. With outputs from the cache it is
        the re-timed sample's, never the cached timings alone."""
        if not self.cached_count:
            return self.rtf
        return self.retimed.get("rtf") if self.retimed else None

    @property
    def timing_contention(self) -> dict | None:
        """The contention measured while the timings speed is judged on were taken: the re-timed
        sample's where outputs came from the cache, else the evaluation's."""
        if self.cached_count:
            return (self.retimed or {}).get("contention")
        return self.contention

    @property
    def speed_unjudged(self) -> str | None:
        """Why speed is not judged on this result, or None: the machine was busy while it was timed
        (other processes took more of the CPUs than ``busy_tolerance``), or its outputs came from the
        cache and none was re-timed here (``retime`` 0)."""
        contention = self.timing_contention
        if contention and contention.get("busy"):
            evidence = contention_text(contention)
            if self.cpu_per_wall is not None:
                evidence += f"; the model's calls got {self.cpu_per_wall:.2f} CPU s per wall s"
            rtf = "" if self.speed_rtf is None else f"; its RTF {self.speed_rtf:.3f} measured the load as much as the model"
            return f"speed not judged for {self.model} on {self.dataset}: the machine was busy ({evidence}){rtf}"
        if not self.cached_count or self.retimed:
            return None
        cached = "" if self.rtf is None else (f"; their RTF {self.rtf:.3f} was measured in earlier runs" if not
                                              self.computed_count else f"; the RTF {self.rtf:.3f} mixes earlier runs' timings")
        return (f"speed not judged for {self.model} on {self.dataset}: {self.cached_count} of {len(self.processed)} "
                f"outputs came from the inference cache and none was re-timed here (retime 0){cached}")

    def __repr__(self) -> str:  # the dataclass repr lists every utterance: pages of it in a traceback
        wer = "-" if self.wer is None else f"{self.wer:.4f}"
        return (f"EvalResult(model={self.model!r}, dataset={self.dataset!r}, utterances={len(self.utterances)}, "
                f"wer={wer}, errors={len(self.errors)})")

    @property
    def scored(self) -> list[UtteranceResult]:
        return [u for u in self.utterances if u.words is not None]

    @property
    def processed(self) -> list[UtteranceResult]:
        """Utterances the model actually ran on (no input error, not skipped)."""
        return [u for u in self.utterances if u.transcript is not None]

    @property
    def skipped(self) -> list[UtteranceResult]:
        return [u for u in self.utterances if u.error is None and u.transcript is None]

    @property
    def errors(self) -> list[InputError]:
        return self.dataset_errors + [u.error for u in self.utterances if u.error is not None]

    @property
    def words(self) -> EditCounts:
        return sum((u.words for u in self.scored), EditCounts())

    @property
    def chars(self) -> EditCounts:
        return sum((u.chars for u in self.scored if u.chars), EditCounts())

    @property
    def wer(self) -> float | None:
        """Corpus WER: None across several languages (see ``headline``) and for a language written
        without spaces (its figure is CER)."""
        if self.multilingual or any(u.unit == "char" for u in self.scored):
            return None
        return self.words.rate

    @property
    def cer(self) -> float | None:
        """Corpus CER of one language; across several, the macro average of each language's CER."""
        if not self.multilingual:
            return self.chars.rate
        rates = [lang.cer for lang in self.languages.values() if lang.cer is not None and not lang.too_few]
        return sum(rates) / len(rates) if rates else None

    @cached_property
    def wer_ci(self) -> tuple[float, float] | None:
        """95% bootstrap interval of the corpus WER (utterances resampled)."""
        if self.wer is None:
            return None
        if len(self.languages) == 1:  # the same utterances: its language's interval, not a second bootstrap
            return next(iter(self.languages.values())).ci
        scored = self.scored
        if self.too_few("wer"):
            return None
        return ratio_ci([u.words.errors for u in scored], [u.words.reference_length for u in scored])

    @cached_property
    def cer_ci(self) -> tuple[float, float] | None:
        if self.cer is None:
            return None
        if self.multilingual:
            return _macro_ci([lang for lang in self.languages.values() if lang.cer is not None and not lang.too_few],
                             lambda u: u.chars)
        scored = [u for u in self.scored if u.chars]
        if self.too_few("cer"):
            return None
        return ratio_ci([u.chars.errors for u in scored], [u.chars.reference_length for u in scored])

    @property
    def audio_seconds(self) -> float:
        return sum(u.audio_seconds for u in self.processed)

    @property
    def processing_seconds(self) -> float:
        return sum(u.processing_seconds for u in self.processed)

    @property
    def rtf(self) -> float | None:
        audio = self.audio_seconds
        return self.processing_seconds / audio if audio else None

    @property
    def rtfx(self) -> float | None:
        rtf = self.rtf
        return 1.0 / rtf if rtf else None

    # -- hallucination measurements ----------------------------------------------------------

    def _rate(self, kind: str | None) -> tuple[int, int]:
        pool = [u for u in self.processed if kind is None or u.utterance.kind == kind]
        return sum(u.hallucinated for u in pool), len(pool)

    @property
    def flagged(self) -> list[UtteranceResult]:
        """Utterances with at least one hallucination finding (signals alone do not flag)."""
        return [u for u in self.processed if u.hallucinated]

    @property
    def hallucination_counts(self) -> tuple[int, int]:
        return self._rate(None)

    @property
    def nonspeech_counts(self) -> tuple[int, int]:
        return self._rate("nonspeech")

    @property
    def speech_counts(self) -> tuple[int, int]:
        return self._rate("speech")

    @property
    def hallucination_rate(self) -> float | None:
        flagged, total = self.hallucination_counts
        return flagged / total if total else None

    @property
    def nonspeech_hallucination_rate(self) -> float | None:
        flagged, total = self.nonspeech_counts
        return flagged / total if total else None

    @property
    def speech_hallucination_rate(self) -> float | None:
        flagged, total = self.speech_counts
        return flagged / total if total else None

    @property
    def insertion_rate(self) -> float | None:
        words = self.words
        return words.insertions / words.reference_length if words.reference_length else None

    @property
    def findings_by_kind(self) -> dict[str, int]:
        return dict(Counter(f.kind for u in self.processed for f in u.findings))

    @property
    def cpu_per_wall(self) -> float | None:
        """CPU seconds this process got per wall-clock second of the model calls computed here (a
        model running 2 threads on an idle machine gets up to 2; far less is contention)."""
        timed = [u for u in self.processed if not u.cached and u.cpu_seconds is not None]
        wall = sum(u.processing_seconds for u in timed)
        return sum(u.cpu_seconds for u in timed) / wall if wall else None

    @property
    def nondeterminism_rate(self) -> float | None:
        """Share of utterances whose (normalized) transcript changed between repeats."""
        repeated = [u for u in self.processed if u.repeat_texts or u.repeat_scores]
        return sum(u.changed_on_repeat for u in repeated) / len(repeated) if repeated else None

    # -- repeats: every repeat scored like the first ---------------------------------------------

    @property
    def repeat_count(self) -> int:
        return 1 + max((len(u.repeat_scores) for u in self.processed), default=0)

    @cached_property
    def runs(self) -> list[EvalResult]:
        """This evaluation as each repeat saw it: the first run, then one result per further repeat
        (the same utterances, each scored on that repeat's transcript)."""
        runs = [self]
        for k in range(1, self.repeat_count):
            runs.append(dataclasses.replace(
                self, utterances=[u.repeat_scores[k - 1] if len(u.repeat_scores) >= k else u for u in self.utterances]))
        return runs

    REPEATED_FIGURES = ("error_rate", "hallucination_rate", "speech_hallucination_rate", "nonspeech_hallucination_rate")

    def across_repeats(self, figure: str) -> dict | None:
        """``figure`` over the repeats: mean, min and max, and a 95% interval that covers both the
        utterances and the repeats (utterances resampled, each carrying all its repeats); None
        without repeats or when no repeat has the figure."""
        values = [getattr(run, figure) for run in self.runs]
        values = [v for v in values if v is not None]
        if self.repeat_count < 2 or not values:
            return None
        out = {"mean": sum(values) / len(values), "min": min(values), "max": max(values), "ci": None}
        runs = self.runs
        if figure == "error_rate" and not self.multilingual:
            scored = [i for i, u in enumerate(self.utterances) if u.words is not None]
            errors = [sum(r.utterances[i].words.errors for r in runs if r.utterances[i].words) / len(runs) for i in scored]
            out["ci"] = ratio_ci(errors, [self.utterances[i].words.reference_length for i in scored])
        elif figure != "error_rate":
            kind = {"speech_hallucination_rate": "speech", "nonspeech_hallucination_rate": "nonspeech"}.get(figure)
            pool = [i for i, u in enumerate(self.utterances) if u.transcript is not None
                    and (kind is None or u.utterance.kind == kind)]
            if pool:
                share = [sum(r.utterances[i].hallucinated for r in runs) / len(runs) for i in pool]
                out["ci"] = bootstrap_ci(share, [1] * len(share))
        if figure != "error_rate":
            kind = {"speech_hallucination_rate": "speech", "nonspeech_hallucination_rate": "nonspeech"}.get(figure)
            counts = [run._rate(kind) for run in runs]
            out["flagged"] = [c[0] for c in counts]
            out["of"] = counts[0][1]
        return out

    @cached_property
    def variability(self) -> dict | None:
        """What varied between repeats (None without repeats): the share of utterances whose
        normalized transcript differs (Wilson interval), which ones with their transcripts, each
        figure's mean and range, and per utterance how often it was flagged."""
        repeats = self.repeat_count
        if repeats < 2:
            return None
        repeated = [u for u in self.processed if u.repeat_scores]
        varied = [u for u in repeated if u.changed_on_repeat]
        flags = {u.utterance.id: sum(x.hallucinated for x in (u, *u.repeat_scores)) for u in repeated}
        return {
            "repeats": repeats, "repeated": len(repeated), "varied": len(varied),
            "share": len(varied) / len(repeated) if repeated else None, "share_ci": wilson(len(varied), len(repeated)),
            "varied_utterances": [{"utterance_id": u.utterance.id, "sampled": u.sampled,
                                   "transcripts": list(dict.fromkeys(x.hypothesis for x in (u, *u.repeat_scores)))[:10]}
                                  for u in varied],
            "figures": {f: v for f in self.REPEATED_FIGURES if (v := self.across_repeats(f)) is not None},
            "flagged": {uid: n for uid, n in flags.items() if n},
        }

    @property
    def sampling(self) -> dict | None:
        """How many outputs were decoded with sampling (temperature fallback), and how many of the
        flagged ones: a figure resting on them varies from run to run. None when none was."""
        sampled = [u for u in self.processed if u.sampled]
        if not sampled:
            return None
        flagged = self.flagged
        in_flagged = sum(u.sampled for u in flagged)
        seeded = self.environment.get("seed") is not None
        varies = ("seeded, so this run repeats, but another seed or machine can give another figure" if seeded
                  else "this figure varies from run to run")
        note = (f"{in_flagged} of the {len(flagged)} flagged clips were decoded with temperature fallback "
                f"(sampling): {varies}"
                if in_flagged else f"{len(sampled)} of {len(self.processed)} outputs were decoded with temperature "
                f"fallback (sampling): {varies}")
        if self.repeat_count < 2:
            note += "; measure the spread with repeats = 5"
        return {"outputs": len(sampled), "of": len(self.processed), "flagged": in_flagged, "flagged_of": len(flagged),
                "note": note}

    def summary(self) -> dict:
        """The evaluation's figures in the one serialized form every sink reads: the results
        database's aggregates, the scorecard rows of the HTML report, the Markdown and the benchmark
        JSON, and the run file (JSON types only; intervals as [low, high])."""
        flagged, processed = self.hallucination_counts
        return {
            "model": self.model, "dataset": self.dataset,
            "utterances": len(self.utterances), "processed": processed, "scored": len(self.scored),
            "errors": len(self.errors), "wer": self.wer, "cer": self.cer,
            "wer_ci": self.wer_ci, "cer_ci": self.cer_ci, "error_metric": self.headline[0],
            "error_rate": self.headline[1], "error_ci": self.headline[2], "error_label": self.error_label,
            "languages": [lang.summary() for lang in self.languages.values()],
            "substitutions": self.words.substitutions, "deletions": self.words.deletions,
            "insertions": self.words.insertions, "reference_words": self.words.reference_length,
            "rtf": self.rtf, "rtfx": self.rtfx, "audio_seconds": self.audio_seconds,
            "processing_seconds": self.processing_seconds, "load_seconds": self.load_seconds,
            "hallucinated": flagged, "hallucination_rate": self.hallucination_rate,
            "hallucination_ci": wilson(flagged, processed),
            "speech_hallucination_rate": self.speech_hallucination_rate,
            "nonspeech_hallucination_rate": self.nonspeech_hallucination_rate,
            "insertion_rate": self.insertion_rate, "findings_by_kind": self.findings_by_kind,
            "nondeterminism_rate": self.nondeterminism_rate, "normalizer": self.normalizer,
            "repeats": self.repeat_count, "variability": self.variability, "sampling": self.sampling,
            "contention": self.contention, "cpu_per_wall": self.cpu_per_wall, "cache_audit": self.cache_audit,
            "cached": self.cached_count, "computed": self.computed_count, "retimed": self.retimed,
            "speed_rtf": self.speed_rtf, "speed_unjudged": self.speed_unjudged, "rtf_by_batch_size": self.rtf_by_batch_size,
            "wall_seconds": self.wall_seconds, "workers": self.workers, "throughput": self.throughput,
            "language_id": self.language_id, "latency": self.latency,
            "too_few": {m: why for m in self.min_samples if (why := self.too_few(m))},
            "min_samples": dict(self.min_samples),
        }

    @cached_property
    def latency(self) -> dict | None:
        """A service's latency figures (``metrics.latency``): for a model whose info names a
        service, or whose outputs carry service timings; None for an in-process model."""
        if not isinstance(self.model_info.get("service"), dict) and not any(u.latency for u in self.utterances):
            return None
        return latency_summary(self.utterances, self.workers, self.wall_seconds, self.throughput)

    @property
    def language_id(self) -> dict | None:
        """How often the language the model reports matches the manifest's, over the speech
        utterances that have both (None when none has both)."""
        return language_id([(u.utterance.language, u.transcript.language) for u in self.processed
                            if u.utterance.kind == "speech"])

    @property
    def rtf_by_batch_size(self) -> dict[str, float | None]:
        """Per-utterance RTF for each batch size its outputs were decoded at (never mixed)."""
        sizes: dict[int, list[float]] = {}
        for u in self.processed:
            audio, seconds = sizes.setdefault(u.batch_size, [0.0, 0.0])
            sizes[u.batch_size] = [audio + u.audio_seconds, seconds + u.processing_seconds]
        return {str(size): (seconds / audio if audio else None) for size, (audio, seconds) in sorted(sizes.items())}

    @property
    def throughput(self) -> float | None:
        """Audio seconds computed in this session per wall-clock second of the evaluation (the
        wall clock, not a sum of per-utterance times: concurrent workers' times are never added)."""
        computed = sum(u.audio_seconds for u in self.processed if not u.cached)
        return computed / self.wall_seconds if self.wall_seconds and computed and not self.cached_count else None

    def serialized(self) -> dict:
        """The evaluation in the one form every sink reads (the terminal summary, the scorecard and
        evidence of the HTML report, Markdown, the benchmark JSON, the run file; the results database
        keeps its ``summary`` and each utterance's ``row()``): JSON types only. Each utterance adds
        to its row its ``status`` (scored, unscored: non-speech or an empty reference, error,
        skipped), its audio path, word alignment, and where a cached output's timing was measured."""
        return {
            "model": self.model, "dataset": self.dataset, "normalizer": self.normalizer, "summary": self.summary(),
            "model_info": json.loads(json.dumps(self.model_info, default=str)),
            "environment": json.loads(json.dumps(self.environment, default=str)),
            "dataset_errors": [str(e) for e in self.dataset_errors],
            "utterances": [{**u.row(), "status": u.status,
                            "alignment": [[op.op, list(op.ref), list(op.hyp)] for op in u.alignment],
                            "hallucinated": u.hallucinated, "cached": u.cached, "offset": u.utterance.offset,
                            "manifest_language": u.utterance.language, "unit": u.unit,
                            "detected_language": base_language(u.transcript.language) if u.transcript else None,
                            "latency": u.latency or None}
                           for u in self.utterances],
        }

    def worst(self, n: int = 5) -> list[UtteranceResult]:
        """The scored utterances with the most word errors (ties: higher utterance WER first)."""
        ranked = sorted(self.scored, key=lambda u: (u.words.errors, u.wer or 0.0), reverse=True)
        return [u for u in ranked[:n] if u.words.errors]
