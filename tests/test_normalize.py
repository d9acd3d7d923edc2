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


# A spoken form and its written form, as a peer normalizer's tests pair them (and the codes and
# phone numbers whose leading zeros Whisper's number parser drops): speechlab-english maps both alike.
SPOKEN_WRITTEN = [
    ("two", "2"), ("thirty one", "31"), ("five twenty four", "524"), ("nineteen ninety nine", "1999"),
    ("twenty nineteen", "2019"), ("two point five million", "2500000"), ("four point two billions", "4200000000s"),
    ("200 thousand", "200000"), ("200 thousand dollars", "$200000"), ("$20 million", "$20000000"),
    ("€52.4 million", "€52400000"), ("£77 thousands", "£77000s"), ("two double o eight", "2008"),
    ("three thousand twenty nine", "3029"), ("forty three thousand two hundred and sixty", "43260"),
    ("nineteen fifties", "1950s"), ("thirty first", "31st"), ("three billion", "3000000000"),
    ("millions", "1000000s"), ("july third twenty twenty", "july 3rd 2020"),
    ("august twenty sixth twenty twenty one", "august 26th 2021"), ("3 point 14", "3.14"),
    ("fourteen point 4", "14.4"), ("two point two five dollars", "$2.25"), ("ninety percent", "90%"),
    ("seventy six per cent", "76%"), ("nine one one", "911"), ("nine double one", "911"),
    ("one triple oh one", "10001"), ("two thousandth", "2000th"), ("minus 500", "-500"),
    ("positive twenty thousand", "+20000"), ("two dollars and seventy cents", "$2.70"), ("3 cents", "¢3"),
    ("three euros and sixty five cents", "€3.65"), ("three and a half million", "3500000"),
    ("forty eight and a half dollars", "$48.5"), ("b747", "b 747"), ("10 th", "10th"),
    ("Let's", "let us"), ("he's like", "he is like"), ("she's been like", "she has been like"),
    ("10km", "10 km"), ("10mm", "10 mm"), ("RC232", "rc 232"),
    ("Mr. Park visited Assoc. Prof. Kim Jr.", "mister park visited associate professor kim junior"),
    # leading zeros: codes, phone numbers, postcodes
    ("double oh seven", "007"), ("double zero seven", "007"), ("agent zero zero seven", "agent 007"),
    ("call oh seven nine one two three", "call 0791 23"), ("zip code zero two one three nine", "zip code 02139"),
]


@pytest.mark.parametrize("spoken, written", SPOKEN_WRITTEN)
def test_speechlab_english_maps_a_spoken_form_and_its_written_form_alike(spoken, written):
    n = get_normalizer("speechlab-english")
    assert n(spoken) == n(written)


def test_leading_zeros_are_kept_and_decimals_are_left_alone():
    n = get_normalizer("speechlab-english")
    assert n("007") == "0 0 7" and n("code 0451") == "code 0 4 5 1"
    assert n("0.5 seconds") == "0 point 5 seconds"  # a decimal, not a code: no zero is added or spelled
    assert n("2007") == "2 0 0 7"


# Pairs that must stay different: numbers that differ only in a decimal point, a time's colon, a
# fraction's slash, a currency or percent sign, a version's dots. speechlab-english 2 mapped 12 of
# these 15 alike ("3.14" = "314"); Whisper's own normalizer keeps all 15 apart.
DIFFERENT = [
    ("3.14", "314"), ("$2.25", "225"), ("point five", "five"), ("3:15", "315"), ("1/2", "12"),
    ("10.5%", "105%"), ("v1.2.3", "v123"), ("$5", "5"), ("2.5", "25"), ("0.5", "5"), ("12:30", "1230"),
    ("3/4", "34"), ("£20", "20"), ("1.5 million", "15 million"), ("€3.50", "350"),
]


@pytest.mark.parametrize("one, other", DIFFERENT)
def test_speechlab_english_keeps_different_numbers_apart(one, other):
    n = get_normalizer("speechlab-english")
    assert n(one) != n(other)


def test_spoken_and_written_decimals_times_and_currency_still_match():
    n = get_normalizer("speechlab-english")
    assert n("point five") == n("0.5") == "0 point 5"
    assert n("three point one four") == n("3.14") == "3 point 1 4"
    assert n("two dollars and twenty five cents") == n("$2.25") == "$ 2 point 2 5"
    assert n("It is 3:15.") == "it is 3 : 1 5"
    assert n("I have 3. Then 4.") == "i have 3 then 4"  # a full stop after a number is not a point


def test_whisper_english_is_kept_exact_and_labels_carry_versions():
    strict = get_normalizer("whisper-english")
    assert strict("one two three") == "123"  # the upstream behaviour, unchanged
    assert "whisper-normalizer==" in strict.label
    assert "whisper-normalizer==" in get_normalizer().label


def test_unknown_normalizer():
    with pytest.raises(SpeechlabError, match="unknown normalizer"):
        get_normalizer("nope")
