"""Input integrity: every manifest line and audio file was usable and the model did not raise.

A bad utterance fails here, with the manifest line and the problem; the others are still scored.
"""
from pytest_speechlab import check_no_input_errors


def test_no_input_errors(speechlab_eval):
    check_no_input_errors(speechlab_eval)
