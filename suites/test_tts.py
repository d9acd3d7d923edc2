"""TTS: intelligibility (round-trip WER through an ASR judge), synthesis speed, audio sanity,
determinism and readiness, for every selected TTS model on every TTS text set.

Deselected when no TTS model is selected (--speechlab-model piper/en_US-joe-medium). The judge is
[tool.speechlab.tts] judge or --speechlab-tts-judge; thresholds are the usual wer/cer/rtf ones,
per model under [tool.speechlab.thresholds.models."NAME"].
"""
import pytest

from pytest_speechlab import (
    check_below,
    check_grade,
    check_human_mos,
    check_no_input_errors,
    check_quality,
)


def test_tts_intelligibility(speechlab_tts_eval, speechlab_session):
    limits = speechlab_session.thresholds(speechlab_tts_eval.model)
    check_below(speechlab_tts_eval.result, "wer", limits["wer"])


def test_tts_real_time_factor(speechlab_tts_eval, speechlab_session):
    check_below(speechlab_tts_eval.result, "rtf", speechlab_session.thresholds(speechlab_tts_eval.model)["rtf"])


def test_tts_every_text_synthesized(speechlab_tts_eval):
    check_no_input_errors(speechlab_tts_eval.result)


def test_tts_audio_is_sane(speechlab_tts_eval):
    if speechlab_tts_eval.problems:
        pytest.fail("\n".join(speechlab_tts_eval.report()), pytrace=False)


def test_tts_deterministic_when_claimed(speechlab_tts_eval):
    if not speechlab_tts_eval.claims_deterministic:
        pytest.skip(f"{speechlab_tts_eval.model} does not claim determinism")
    assert not speechlab_tts_eval.nondeterministic, (
        f"{speechlab_tts_eval.model} claims determinism, but a second synthesis differed for "
        + ", ".join(speechlab_tts_eval.nondeterministic))


def test_tts_mos(speechlab_tts_quality, speechlab_session):
    """DNSMOS OVRL (offline, speechmos): a voice can be intelligible yet sound broken."""
    check_quality(speechlab_tts_quality, "mos", speechlab_session.thresholds(speechlab_tts_quality.model)["mos"])


def test_tts_listeners_opinion(speechlab_tts_eval, speechlab_session):
    """What listeners said: the ACR ratings of this model's clips in listening tests (`speechlab listen
    create`, rated in `speechlab view --listening`), from the results database."""
    model = speechlab_tts_eval.model
    check_human_mos(speechlab_session.tts.human_ratings(model), speechlab_session.thresholds(model)["human_mos"],
                    model, speechlab_session.settings.min_samples["human_mos"])


def test_tts_speaker_similarity(speechlab_tts_quality, speechlab_session):
    """Each clip's voice against [tool.speechlab.tts] reference_speaker (else the voice's own other clips)."""
    check_quality(speechlab_tts_quality, "speaker_similarity",
                  speechlab_session.thresholds(speechlab_tts_quality.model)["speaker_similarity"])


def test_tts_readiness(speechlab_tts_eval, speechlab_session, speechlab_min_grade):
    grade = speechlab_session.grade(speechlab_tts_eval.model)
    if speechlab_min_grade is None:
        pytest.skip(f"no required grade set (--speechlab-min-grade); graded {grade}")
    check_grade(grade, speechlab_min_grade)
