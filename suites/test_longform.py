"""Long-form: recordings of a minute or more (deselected unless a selected dataset has one; the
built-in ``speechlab/longform`` is a 10-minute recording: ``--speechlab-dataset speechlab/longform``).

Each model decodes a recording whole with its own long-form mode (sequential 30 s windows, or
chunked; recorded in the model's info and shown in the summary). The recording's WER must stay
under the wer threshold; its transcript must not loop (repetition, the same text in consecutive
segments), put text inside a long silence or past the end, nor leave out more than
``longform_deleted_run`` consecutive reference words (a dropped window).
"""
import pytest

from pytest_speechlab import check_below, check_long_form

pytestmark = pytest.mark.speechlab_datasets(min_seconds=60)


def test_long_recording_wer(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "wer", speechlab_thresholds["wer"])


def test_long_recording_is_decoded_whole_without_loops(speechlab_eval, speechlab_thresholds):
    check_long_form(speechlab_eval, speechlab_thresholds["longform_deleted_run"])
