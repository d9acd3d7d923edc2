"""Error rates by slice: is the model worse for some speakers?

Runs with --speechlab-slice FIELD or [tool.speechlab.slices] fields (deselected otherwise). FIELD is a
manifest field (gender, age, accent, speaker; Common Voice's columns, lhotse's speaker and custom
fields, a Hugging Face dataset's columns), the language, or a band: duration, speaking_rate, snr.
A slice with fewer than [tool.speechlab.slices] min_size scored utterances is listed, never ranked.
"""
import pytest

from pytest_speechlab import check_slices

pytestmark = pytest.mark.speechlab_datasets(kind="speech")


def test_worst_slice_error_rate(speechlab_slices, speechlab_eval, speechlab_thresholds):
    check_slices(speechlab_slices, "slice_wer", speechlab_thresholds["slice_wer"],
                 f"{speechlab_eval.model} on {speechlab_eval.dataset}")


def test_gap_between_slices(speechlab_slices, speechlab_eval, speechlab_thresholds, speechlab_session):
    check_slices(speechlab_slices, "slice_gap", speechlab_thresholds["slice_gap"],
                 f"{speechlab_eval.model} on {speechlab_eval.dataset}", speechlab_session.settings.regression.alpha)
