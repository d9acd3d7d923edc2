"""The normalizers: the default keeps spoken words and scores digits one by one."""
import pytest

from pytest_speechlab import SpeechlabError, get_normalizer


@pytest.mark.parametrize("reference, hypothesis", [
    ("one zero zero one nine oh two", "1-0-0-1-9-0-2"),  # Whisper's own normalizer: '100192' vs 'one 0 0 one 9 0 2'
    ("one two three four five", "1, 2, 3, 4, 5."),
    ("five five", "5, 5"),
    ("In fourteen sixty-five", "in 1465"),
    ("Mr. Brown (the baker) left", "mister brown the baker left"),
    ("It's ten o'clock.", "it is 10 o'clock"),
])
def test_speechlab_english_equates_what_was_said_the_same_way(reference, hypothesis):
    n = get_normalizer("speechlab-english")
    assert n(reference) == n(hypothesis)


def test_whisper_english_is_kept_exact_and_labels_carry_versions():
    strict = get_normalizer("whisper-english")
    assert strict("one two three") == "123"  # the upstream behaviour, unchanged
    assert "whisper-normalizer==" in strict.label
    assert "whisper-normalizer==" in get_normalizer().label


def test_unknown_normalizer():
    with pytest.raises(SpeechlabError, match="unknown normalizer"):
        get_normalizer("nope")
