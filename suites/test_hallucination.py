"""Hallucination: non-speech must produce no text; speech must stay under a hallucination rate.

Findings come from the detectors in pytest_speechlab.metrics.hallucination (text on non-speech, repetition
loops, insertion runs, known phrases, segments past the audio, low confidence, implausible length);
thresholds are [tool.speechlab.thresholds] nonspeech_hallucination_rate and hallucination_rate.
"""
import pytest

from pytest_speechlab import check_below


@pytest.mark.speechlab_datasets(kind="nonspeech")
def test_no_text_on_nonspeech(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "nonspeech_hallucination_rate", speechlab_thresholds["nonspeech_hallucination_rate"])


@pytest.mark.speechlab_datasets(kind="speech")
def test_speech_hallucination_rate(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "hallucination_rate", speechlab_thresholds["hallucination_rate"])
