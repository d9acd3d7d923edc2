"""Accuracy: corpus WER and CER of each selected model on each dataset that has speech.

Thresholds come from [tool.speechlab.thresholds] (per-model overrides under
[tool.speechlab.thresholds.models."NAME"]); the failure shows the figure and the worst utterances.
"""
import pytest

from pytest_speechlab import check_below

pytestmark = pytest.mark.speechlab_datasets(kind="speech")


def test_corpus_wer(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "wer", speechlab_thresholds["wer"])


def test_corpus_cer(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "cer", speechlab_thresholds["cer"])
