"""Each hallucination detector: cases that must fire and cases that must not."""
from __future__ import annotations

import pytest

from pytest_speechlab import HallucinationConfig, Output, Segment, SpeechlabError, Transcript, Utterance, get_normalizer
from pytest_speechlab.metrics.hallucination import compression_ratio, max_consecutive_repeats
from pytest_speechlab.metrics.wer import score_output

NORMALIZER = get_normalizer()


def result(hyp: str, ref: str = "", kind: str = "speech", seconds: float = 3.0, segments=None,
           cfg: HallucinationConfig | None = None):
    utt = Utterance(id="u", audio_path="u.wav", text=ref, kind=kind, source="m.jsonl line 1")
    segs = tuple(segments) if segments is not None else (Segment(0.0, min(seconds, 2.0), hyp),)
    return score_output(Output(utt, Transcript(hyp, segs), 0.1, seconds), NORMALIZER, cfg)


def kinds(u) -> list[str]:
    return sorted({f.kind for f in u.findings})


# 1. text on non-speech


def test_text_on_nonspeech_fires_with_the_text_as_evidence():
    u = result(" You", kind="nonspeech", seconds=10.0)
    assert "nonspeech_text" in kinds(u)
    finding = next(f for f in u.findings if f.kind == "nonspeech_text")
    assert "'You'" in finding.evidence and "10.0 s" in finding.evidence
    assert u.hallucinated


@pytest.mark.parametrize("hyp", ["", "   ", "...", " . . . "])
def test_no_text_on_nonspeech_does_not_fire(hyp):
    assert "nonspeech_text" not in kinds(result(hyp, kind="nonspeech", segments=()))


# 2. repetition loops


def test_ngram_loop_fires_and_names_the_phrase():
    u = result("thank you for the meal the meal the meal the meal", "thank you for the meal")
    finding = next(f for f in u.findings if f.kind == "repetition")
    assert "'the meal' repeated 4 times in a row" in finding.evidence


def test_loop_evidence_quotes_the_transcript_as_written():
    """ "oh" is "0" once normalized: the finding quotes what the model wrote, the normalized form beside it."""
    u = result("Oh, oh, oh, oh, oh.", "hello there")
    (finding,) = [f for f in u.findings if f.kind == "repetition"]
    assert "'oh' repeated 5 times in a row (normalized: '0')" in finding.evidence
    assert finding.span == "oh oh oh oh oh"


def test_compression_ratio_fires_on_a_long_loop():
    loop = "I'm sorry. " * 20
    assert compression_ratio(loop) > 2.4
    assert any("compression ratio" in f.evidence for f in result(loop, kind="nonspeech").findings)


@pytest.mark.parametrize("ref, hyp", [
    ("one zero zero zero one nine", "1 0 0 0 1 9"),            # the reference repeats too
    ("no no no not that one", "no no no not that one"),
    ("the quick brown fox jumps over the lazy dog", "the quick brown fox jumps over the lazy dog"),
    ("that that is is that that is not", "that that is is that that is not"),
])
def test_repetition_that_is_in_the_reference_or_ordinary_text_does_not_fire(ref, hyp):
    assert "repetition" not in kinds(result(hyp, ref))


def test_max_consecutive_repeats():
    runs = max_consecutive_repeats("a b a b a b c".split(), 3)
    assert runs[("a", "b")] == 3 and runs.get(("c",), 1) == 1


# 3. insertion runs


def test_insertion_run_fires_at_k_words_and_not_below():
    ref = "please close the door"
    four = result("please close the door thanks for all the", ref)
    three = result("please close the door thanks for all", ref)
    assert "insertion_run" in kinds(four) and "insertion_run" not in kinds(three)
    assert "4 consecutive inserted words" in next(f for f in four.findings if f.kind == "insertion_run").evidence


def test_insertion_run_k_is_configurable():
    u = result("please close the door thanks for all", "please close the door", cfg=HallucinationConfig(insertion_run=3))
    assert "insertion_run" in kinds(u)


def test_scattered_insertions_do_not_fire():
    assert "insertion_run" not in kinds(result("so please uh close um the er door", "please close the door"))


# 4. known phrases


def test_known_phrase_fires_when_not_in_reference():
    u = result("The soup is ready. Thanks for watching!", "the soup is ready")
    assert "known hallucination phrase 'thanks for watching'" in [f.evidence for f in u.findings]


def test_known_phrase_said_in_the_reference_does_not_fire():
    assert "known_phrase" not in kinds(result("thanks for watching everyone", "Thanks for watching, everyone!"))


def test_whole_hypothesis_phrases_only_on_nonspeech():
    assert "known_phrase" in kinds(result("You", kind="nonspeech"))
    assert "known_phrase" not in kinds(result("you", "you"))          # someone said "you"
    assert "known_phrase" not in kinds(result("see you later", kind="nonspeech"))     # "you" inside text
    assert "known_phrase" not in kinds(result("thank you so much", "thank you so much"))


def test_phrases_file_is_configurable(tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("# mine\nbanana sauce  # seen on laughter\n")
    cfg = HallucinationConfig(phrases_file=str(phrases))
    assert "known_phrase" in kinds(result("woah banana sauce", kind="nonspeech", cfg=cfg))
    assert "known_phrase" not in kinds(result("thanks for watching", kind="nonspeech", cfg=cfg))


# 5. output past the audio


def test_segment_starting_after_the_audio_fires():
    segs = [Segment(0.0, 2.0, " hello"), Segment(3.2, 6.0, " and more")]
    u = result("hello and more", "hello", seconds=3.0, segments=segs)
    finding = next(f for f in u.findings if f.kind == "past_end")
    assert "after the audio ends (3.00 s)" in finding.evidence and "6.00 s" in finding.evidence


def test_nonspeech_segment_running_past_the_end_fires():
    segs = [Segment(0.0, 2.0, " ..."), Segment(2.0, 28.0, " ...")]
    assert "past_end" in kinds(result("... ...", kind="nonspeech", seconds=10.0, segments=segs))


def test_speech_segment_with_a_late_end_timestamp_does_not_fire():
    # tiny.en closes its last segment at the 30 s window's end on some correct transcripts
    segs = [Segment(0.0, 28.9, " He wrote a long letter to his sister.")]
    assert "past_end" not in kinds(result("He wrote a long letter to his sister.",
                                          "He wrote a long letter to his sister.", seconds=6.9, segments=segs))


def test_empty_segment_past_the_end_does_not_fire():
    assert "past_end" not in kinds(result("", kind="nonspeech", seconds=1.0, segments=[Segment(0, 2.0, " ")]))


# 6. low confidence


def test_low_confidence_segment_with_text_fires():
    segs = [Segment(0.0, 2.0, " You", avg_logprob=-1.04, no_speech_prob=0.94)]
    finding = next(f for f in result("You", kind="nonspeech", segments=segs).findings if f.kind == "low_confidence")
    assert "avg_logprob -1.04 < -1.0 and no_speech_prob 0.94 > 0.6" in finding.evidence


@pytest.mark.parametrize("logprob, no_speech", [(-0.8, 0.94), (-1.5, 0.3), (None, None)])
def test_confident_or_unscored_segments_do_not_fire(logprob, no_speech):
    segs = [Segment(0.0, 2.0, " hello there", avg_logprob=logprob, no_speech_prob=no_speech)]
    assert "low_confidence" not in kinds(result("hello there", "hello there", segments=segs))


# 7. implausible length


def test_too_many_words_per_second_fires():
    hyp = " ".join(["piano"] * 40)
    u = result(hyp, kind="nonspeech", seconds=4.0)
    assert any("words/s" in f.evidence for f in u.findings if f.kind == "implausible_length")


def test_hypothesis_far_longer_than_reference_fires():
    u = result("please close the door and she hits the internet with our pumps and they will be", "please close the door")
    assert any("hypothesis has" in f.evidence for f in u.findings if f.kind == "implausible_length")


def test_fast_but_plausible_speech_does_not_fire():
    u = result("the quick brown fox jumps over the lazy dog again", "the quick brown fox jumps over the lazy dog", seconds=2.5)
    assert "implausible_length" not in kinds(u)


# 8. the old lab's WER filter: a signal, not a hallucination


def test_high_wer_is_reported_but_does_not_flag():
    u = result("the cat", "a dog barked loudly")
    assert "high_wer" in kinds(u)
    assert not u.hallucinated


def test_correct_transcript_has_no_findings():
    segs = [Segment(0.0, 2.5, " Turn left at the next corner.", -0.2, 0.01, 1.1)]
    assert result("Turn left at the next corner.", "Turn left at the next corner.", segments=segs).findings == []


def test_detectors_can_be_disabled_and_bad_config_is_rejected():
    u = result(" You", kind="nonspeech", cfg=HallucinationConfig(disabled=("nonspeech_text", "known_phrase")))
    assert u.findings == []
    with pytest.raises(SpeechlabError, match="unknown detector"):
        HallucinationConfig.from_table({"disabled": ["nope"]}, "[x]")
    with pytest.raises(SpeechlabError, match="unknown key"):
        HallucinationConfig.from_table({"insertion_runs": 3}, "[x]")


def spoken(language: str | None, detected: str | None, hyp: str = "yw eisiau hwnnw i r smoal pas", kind: str = "speech"):
    utt = Utterance("w", "w.wav", "he wants that for the small pass" if kind == "speech" else None, kind=kind,
                    language=language)
    transcript = Transcript(hyp, (Segment(0.0, 2.0, hyp),), detected, {"language_probability": 0.61})
    return score_output(Output(utt, transcript, 0.1, 3.0), get_normalizer())


def test_wrong_language_fires_on_speech_answered_in_another_language():
    u = spoken("en", "cy")
    (finding,) = [f for f in u.findings if f.kind == "wrong_language"]
    assert finding.evidence == "transcribed as 'cy' (probability 0.61); the manifest says 'en'"
    assert finding.span.startswith("yw eisiau") and u.hallucinated


@pytest.mark.parametrize("language, detected, hyp, kind", [
    ("en", "en", "he wants that", "speech"),        # the same language
    ("en-US", "en", "he wants that", "speech"),     # a region code is the same language
    ("pt_BR", "pt", "ele quer isso", "speech"),
    (None, "cy", "yw eisiau hwnnw", "speech"),      # the manifest does not say
    ("en", None, "he wants that", "speech"),        # the model does not say
    ("en", "cy", "", "speech"),                     # nothing transcribed
    ("en", "cy", "yw eisiau", "nonspeech"),         # non-speech has its own detector
])
def test_wrong_language_does_not_fire(language, detected, hyp, kind):
    assert "wrong_language" not in kinds(spoken(language, detected, hyp, kind))


def test_language_identification_accuracy_counts_speech_with_both_languages():
    from pytest_speechlab import EvalResult

    utterances = [spoken("en", "cy"), spoken("en-GB", "en"), spoken("de", "de"), spoken(None, "fr")]
    result = EvalResult("m", "d", "n", utterances)
    lid = result.summary()["language_id"]
    assert (lid["correct"], lid["total"]) == (2, 3) and abs(lid["accuracy"] - 2 / 3) < 1e-9
    assert lid["ci"][0] < 2 / 3 < lid["ci"][1]
    assert EvalResult("m", "d", "n", [spoken(None, None)]).language_id is None
