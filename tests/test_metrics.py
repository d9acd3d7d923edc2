"""Scoring: corpus WER/CER, S/D/I, alignments, empty references, RTF; property-based checks."""
from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_speechlab import EditCounts, InputError, Output, Transcript, Utterance, evaluate, get_normalizer
from pytest_speechlab.metrics.wer import score_words

NORMALIZER = get_normalizer()


def utt(uid: str, text: str, kind: str = "speech") -> Utterance:
    return Utterance(id=uid, audio_path=f"{uid}.wav", text=text, kind=kind, source=f"m.jsonl line {uid}")


def out(u: Utterance, hyp: str, proc: float = 0.1, audio: float = 1.0) -> Output:
    return Output(u, Transcript(hyp), processing_seconds=proc, audio_seconds=audio)


def test_substitution_deletion_insertion_counts_and_alignment():
    counts, alignment = score_words("a b c d e f", "a x c e f g")
    assert counts == EditCounts(hits=4, substitutions=1, deletions=1, insertions=1)
    assert counts.rate == pytest.approx(3 / 6)
    assert [(a.op, a.ref, a.hyp) for a in alignment] == [
        ("equal", ("a",), ("a",)),
        ("substitute", ("b",), ("x",)),
        ("equal", ("c",), ("c",)),
        ("delete", ("d",), ()),
        ("equal", ("e", "f"), ("e", "f")),
        ("insert", (), ("g",)),
    ]


def test_corpus_wer_is_total_errors_over_total_reference_words():
    utts = [utt("1", "one two three four"), utt("2", "hello there")]
    result = evaluate("m", "d", [out(utts[0], "one two three four"), out(utts[1], "goodbye")], NORMALIZER)
    # 0 errors on 4 words + 2 errors on 2 words: corpus 2/6, while the mean of rates would be 0.5
    assert result.wer == pytest.approx(2 / 6)
    assert result.words.substitutions == 1 and result.words.deletions == 1


def test_normalizer_makes_case_punctuation_and_spelling_irrelevant():
    u = utt("1", "Mr. Smith paid ten dollars, didn't he?")
    result = evaluate("m", "d", [out(u, "mister smith paid $10 did not he")], NORMALIZER)
    assert result.wer == 0.0


def test_empty_reference_after_normalization_is_not_scored_but_reported():
    u = utt("1", "...")
    result = evaluate("m", "d", [out(u, "hello")], NORMALIZER)
    assert result.wer is None
    assert "empty after normalization" in result.utterances[0].note
    assert result.utterances[0].hypothesis == "hello"


def test_nonspeech_has_no_wer_but_keeps_hypothesis_and_counts_for_rtf():
    speech, noise = utt("1", "hello world"), utt("2", "", kind="nonspeech")
    result = evaluate("m", "d", [out(speech, "hello world", 0.5, 2.0), out(noise, "you", 1.5, 2.0)], NORMALIZER)
    assert result.wer == 0.0
    assert len(result.scored) == 1
    assert result.utterances[1].hypothesis == "you" and result.utterances[1].words is None
    assert result.rtf == pytest.approx(2.0 / 4.0)
    assert result.rtfx == pytest.approx(2.0)


def test_errors_are_listed_and_excluded_from_figures():
    good, bad = utt("1", "hello world"), utt("2", "missing audio")
    error = InputError("m.jsonl line 2: audio '2.wav'", "audio file not found", "2")
    dataset_error = InputError("m.jsonl line 3", "not valid JSON")
    result = evaluate("m", "d", [out(good, "hello"), Output(bad, error=error)], NORMALIZER, [dataset_error])
    assert result.wer == pytest.approx(0.5)
    assert [str(e) for e in result.errors] == [str(dataset_error), str(error)]
    assert result.audio_seconds == 1.0


def test_worst_utterances_ranked_by_error_count():
    utts = [utt("a", "one two three"), utt("b", "four five six seven"), utt("c", "eight")]
    result = evaluate("m", "d", [out(utts[0], "one two three"), out(utts[1], "x y z"), out(utts[2], "nine")],
                      NORMALIZER)
    assert [u.utterance.id for u in result.worst(3)] == ["b", "c"]


# -- properties ----------------------------------------------------------------------------

WORDS = st.sampled_from(
    "the a cat dog house river bright slowly quickly green seven table window paper voice station "
    "morning evening garden stone bridge".split()
)
SENTENCES = st.lists(WORDS, min_size=1, max_size=12).map(" ".join)


@given(SENTENCES)
def test_wer_of_a_text_against_itself_is_zero(text):
    result = evaluate("m", "d", [out(utt("1", text), text)], NORMALIZER)
    assert result.wer == 0.0 and result.cer == 0.0


def rewrite(text: str, style: int) -> str:
    """Rewrites the normalizer must not see: case, punctuation, spacing, spelled-out numbers."""
    words = text.split()
    if style == 0:
        return text.upper()
    if style == 1:
        return ", ".join(words) + "."
    if style == 2:
        return "  ".join(w.capitalize() for w in words) + "!"
    return " ".join("7" if w == "seven" else w for w in words) + "?"


@given(SENTENCES, SENTENCES, st.integers(0, 3))
def test_wer_is_invariant_to_normalizer_equivalent_rewrites(ref, hyp, style):
    base = evaluate("m", "d", [out(utt("1", ref), hyp)], NORMALIZER).wer
    assert evaluate("m", "d", [out(utt("1", rewrite(ref, style)), rewrite(hyp, (style + 1) % 4))],
                    NORMALIZER).wer == pytest.approx(base)


@settings(max_examples=60)
@given(st.lists(st.tuples(SENTENCES, SENTENCES), min_size=1, max_size=8))
def test_corpus_wer_is_reference_length_weighted_mean_of_utterance_wers(pairs):
    outputs = [out(utt(str(i), ref), hyp) for i, (ref, hyp) in enumerate(pairs)]
    result = evaluate("m", "d", outputs, NORMALIZER)
    lengths = [u.words.reference_length for u in result.scored]
    assume(sum(lengths) > 0)
    weighted = sum(u.wer * n for u, n in zip(result.scored, lengths)) / sum(lengths)
    assert result.wer == pytest.approx(weighted)
