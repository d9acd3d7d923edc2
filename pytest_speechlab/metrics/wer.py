"""Scoring: runner Outputs -> EvalResult (corpus WER/CER with S/D/I and alignments, RTF/RTFx).

Corpus figures are total errors / total reference units over the speech utterances that were
scored, never a mean of utterance rates. Non-speech clips and utterances with input errors carry no
WER; they are listed separately.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .._types import UNSEGMENTED, InputError, Output
from .hallucination import HallucinationConfig, detect
from .normalize import LanguageNormalizers, Normalizer, units
from .results import OPS, AlignedOp, EditCounts, EvalResult, UtteranceResult, alignment_from_spans


def score_words(reference: str, hypothesis: str) -> tuple[EditCounts, tuple[AlignedOp, ...]]:
    """Word edit counts and alignment of two already-normalized strings. ``reference`` non-empty."""
    counts, spans = _word_spans(reference, hypothesis)
    return counts, alignment_from_spans(reference, hypothesis, spans)


def _word_spans(reference: str, hypothesis: str) -> tuple[EditCounts, tuple[int, ...]]:
    """Word edit counts and the alignment as five ints per step (see UtteranceResult.spans); the
    words are jiwer's, which split on whitespace as ``str.split`` does."""
    import jiwer

    out = jiwer.process_words(reference, hypothesis)
    spans = tuple(x for c in out.alignments[0] for x in (OPS.index(c.type), c.ref_start_idx, c.ref_end_idx,
                                                          c.hyp_start_idx, c.hyp_end_idx))
    return EditCounts(out.hits, out.substitutions, out.deletions, out.insertions), spans


def score_chars(reference: str, hypothesis: str) -> EditCounts:
    import jiwer

    if not hypothesis:  # jiwer needs a non-empty hypothesis for characters
        return EditCounts(deletions=len(reference))
    out = jiwer.process_characters(reference, hypothesis)
    return EditCounts(out.hits, out.substitutions, out.deletions, out.insertions)


def score_output(
    output: Output, normalizer: Normalizer | LanguageNormalizers, hallucination: HallucinationConfig | None = None
) -> UtteranceResult:
    """Score one output with its language's normalizer (``normalizer``: one for every language, or
    a LanguageNormalizers that picks per utterance)."""
    normalizers = LanguageNormalizers.of(normalizer)
    language = normalizers.language_of(output.utterance)
    chosen = normalizers.for_language(language)
    result = _score(output, chosen, language)
    result.findings = detect(result, hallucination or HallucinationConfig(), chosen)
    if output.repeats and output.transcript is not None:  # every repeat scored like the first
        result.repeat_scores = tuple(
            score_output(dataclasses.replace(output, transcript=t, repeats=(), notes=()), normalizers, hallucination)
            for t in output.repeats)
    return result


def _score(output: Output, normalizer: Normalizer, language: str) -> UtteranceResult:
    """In a language written without spaces the normalized texts are split into units (characters,
    a Latin word one unit) and its ``words`` count them: the same counts are its ``chars``."""
    utt = output.utterance
    split = units if language in UNSEGMENTED else str
    result = UtteranceResult(
        utterance=utt,
        audio_seconds=output.audio_seconds,
        processing_seconds=output.processing_seconds,
        error=output.error,
        transcript=output.transcript,
        repeat_texts=tuple(t.text for t in output.repeats),
        cached=output.cached,
        worker=output.worker,
        threads=output.threads,
        batch_size=output.batch_size,
        language=language,
        silences=output.silences,
        latency=output.latency,
        cpu_seconds=output.cpu_seconds,
        snr_db=output.snr_db,
    )
    if output.skipped:
        result.note = output.skipped
    if output.notes:
        result.note = "; ".join(output.notes)
    if output.cached:
        result.note = "; ".join(filter(None, [result.note, f"output from the inference cache (run "
                                              f"{str(output.cached.get('run_id'))[:8]}, timing measured on {output.cached.get('cpu')})"]))
    if output.error is not None or output.transcript is None:
        return result
    result.hypothesis = output.transcript.text
    result.hypothesis_normalized = split(normalizer(result.hypothesis))
    if utt.kind != "speech":
        result.note = "; ".join(filter(None, [result.note, "non-speech: no reference, not part of WER"]))
        return result
    result.reference_normalized = split(normalizer(utt.text or ""))
    if not result.reference_normalized:
        # jiwer would return the raw insertion count as "WER" here; say what happened instead.
        result.note = f"reference is empty after normalization ({utt.text!r}); not part of WER"
        return result
    result.words, result.spans = _word_spans(result.reference_normalized, result.hypothesis_normalized)
    result.chars = result.words if split is units else score_chars(result.reference_normalized, result.hypothesis_normalized)
    return result


def evaluate(
    model: str,
    dataset: str,
    outputs: list[Output],
    normalizer: Normalizer | LanguageNormalizers | str | dict | None = None,
    dataset_errors: list[InputError] = (),
    hallucination: HallucinationConfig | None = None,
    **extra: Any,
) -> EvalResult:
    """Score ``outputs`` into an evaluation. ``normalizer``: a Normalizer for every language, a
    normalizer name or {language: name} (``"*"`` for the rest), or None for each language's default."""
    normalizers = LanguageNormalizers.of(normalizer)
    scored = [score_output(o, normalizers, hallucination) for o in outputs]
    return summarize(model, dataset, normalizers, scored, dataset_errors, **extra)


def summarize(model: str, dataset: str, normalizers: LanguageNormalizers, scored: list[UtteranceResult],
              dataset_errors=(), **extra: Any) -> EvalResult:
    """The evaluation of scored utterances, each language's normalizer recorded."""
    languages = sorted({u.language for u in scored if u.utterance.kind == "speech" and u.language})
    return EvalResult(model=model, dataset=dataset, normalizer=normalizers.label(languages), utterances=scored,
                      dataset_errors=list(dataset_errors),
                      normalizers={lang: normalizers.for_language(lang).label for lang in languages}, **extra)
