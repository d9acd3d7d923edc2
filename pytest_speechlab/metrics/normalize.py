"""Text normalizers applied to reference and hypothesis before scoring. The name and version of the
one used are recorded with every figure: WER means nothing without them."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from .._types import SpeechlabError


@dataclass(frozen=True)
class Normalizer:
    name: str
    version: str
    apply: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.apply(text)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _whisper(cls_path: str) -> tuple[Callable[[str], str], str]:
    from importlib.metadata import version

    module, _, cls = cls_path.rpartition(".")
    instance = getattr(__import__(module, fromlist=[cls]), cls)()
    return (lambda text: _collapse(instance(text))), f"whisper-normalizer=={version('whisper-normalizer')}"


_DIGIT = re.compile(r"\d")
_ONE = re.compile(r"\bone\b")
_PARENS = re.compile(r"[()]")
# a digit string with a leading zero (a code, a phone number, "007"), not a decimal like 0.5
_LEADING_ZERO = re.compile(r"(?<![\d.,])0\d+(?![\d]|[.,]\d)")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MILLIMETRES = re.compile(r"(\d)\s*mm\b", re.IGNORECASE)  # Whisper drops "mm" as a filler word


def _speechlab_english_postprocess(text: str) -> str:
    """Undo two artefacts of Whisper's normalizer that count correct transcripts as errors:
    spelled digit strings are glued into one number ("one two three" -> "123") while the same
    digits written by a model stay apart ("1, 2, 3" -> "one 2 3"). Every digit becomes its own
    word, "one" becomes "1", and tokens with no letter or digit (a stray ".") are dropped."""
    text = _ONE.sub("1", _DIGIT.sub(lambda m: f" {m.group()} ", text))
    return " ".join(tok for tok in text.split() if any(ch.isalnum() for ch in tok))


def _speechlab_english() -> tuple[Callable[[str], str], str]:
    whisper, version = _whisper("whisper_normalizer.english.EnglishTextNormalizer")

    def apply(text: str) -> str:
        # Whisper deletes "(...)" as a non-speech annotation; in reference transcripts of read
        # speech the words in parentheses are spoken, so keep them (on both sides, symmetric).
        text = _PARENS.sub(" ", text)
        # Whisper reads "007" as the number 7, but "double oh seven" as 0 0 7: a written digit string
        # with a leading zero is spelled digit by digit first, so both keep their zeros.
        text = _LEADING_ZERO.sub(lambda m: " ".join(_DIGIT_WORDS[int(d)] for d in m.group()), text)
        text = _MILLIMETRES.sub(r"\1 millimeters", text)
        return _speechlab_english_postprocess(whisper(text))

    return apply, f"2 ({version})"


NORMALIZERS = {
    "speechlab-english": "Whisper's EnglishTextNormalizer, keeping words in parentheses, leading zeros "
    "(\"007\", phone numbers, codes) and \"mm\" after a number, and scoring digits one by one (default)",
    "whisper-english": "Whisper's EnglishTextNormalizer exactly (spelling, numbers, contractions, punctuation)",
    "whisper-basic": "Whisper's BasicTextNormalizer (lowercase, strip punctuation and diacritics; any language)",
    "lowercase": "lowercase and collapse whitespace only",
}


@lru_cache(maxsize=None)
def get_normalizer(name: str = "speechlab-english") -> Normalizer:
    if name == "speechlab-english":
        fn, version = _speechlab_english()
    elif name == "whisper-english":
        fn, version = _whisper("whisper_normalizer.english.EnglishTextNormalizer")
    elif name == "whisper-basic":
        fn, version = _whisper("whisper_normalizer.basic.BasicTextNormalizer")
    elif name == "lowercase":
        fn, version = (lambda text: _collapse(text.lower())), "builtin"
    else:
        raise SpeechlabError(f"unknown normalizer {name!r}; choose one of {sorted(NORMALIZERS)}")
    return Normalizer(name, version, fn)
