"""Metamorphic properties, checked with hypothesis: harmless changes to the audio must leave the
transcript (nearly) as it was. Runs with ``--speechlab-properties``.

Each example transcribes the three shortest speech clips of each speech dataset through a drawn
perturbation and counts the normalized words that changed against the model's clean transcript;
hypothesis shrinks a failure to the smallest perturbation that still breaks it (reported with its
audio in the HTML evidence). Examples per property: $SPEECHLAB_PROPERTY_EXAMPLES (default 10).
Write your own with the strategies in ``pytest_speechlab.properties``.
"""
import pytest
from hypothesis import given

from pytest_speechlab.properties import gain, padding, property_settings

pytestmark = pytest.mark.speechlab_datasets(kind="speech")


@property_settings()
@given(chain=padding(max_seconds=1.0))
def test_silence_at_the_ends_changes_at_most_one_word(speechlab_metamorphic, chain):
    speechlab_metamorphic.check(chain, max_words=1, what="up to 1 s of silence at either end")


@property_settings()
@given(chain=gain(max_db=6.0))
def test_a_6db_gain_change_changes_at_most_one_word(speechlab_metamorphic, chain):
    speechlab_metamorphic.check(chain, max_words=1, what="a gain change of up to +-6 dB")
