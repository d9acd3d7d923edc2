"""Text normalizers applied to reference and hypothesis before scoring. The name and version of the
one used are recorded with every figure: WER means nothing without them.

Each utterance's language chooses its normalizer (:class:`LanguageNormalizers`): English gets
``speechlab-english``, every other language ``speechlab-basic`` (Whisper's basic normalizer, but
keeping accents and the vowel signs of Indic and Southeast Asian scripts, which Whisper's turns into
spaces). Languages written without spaces between words are scored in units
(:func:`units`): one unit per character (grapheme), a run of Latin letters or digits inside such text
one unit, as a word (the mixed error rate of code-switching benchmarks); their headline is CER.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from .._types import SpeechlabError, Utterance, base_language
ENGLISH = "en"


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


# Symbols that make a number another number: kept as words when digits are split ("3.14" is not
# "314", "$2.25" not "225", "3:15" not "315", "1/2" not "12", "10.5%" not "105"). Whisper's
# normalizer drops ":" and "/" between digits, so they are protected by a placeholder word first.
_NUMBER_SYMBOLS = {"$", "£", "€", "¢", "%"}
_PROTECTED = {" qqcolonqq ": ":", " qqslashqq ": "/"}
_TIME_OR_FRACTION = re.compile(r"(\d)\s*([:/])\s*(?=\d)")
_BARE_DECIMAL = re.compile(r"(?<![\d.])\.(?=\d)")  # ".5" (Whisper's "point five") is 0.5
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")


def _protect_number_symbols(text: str) -> str:
    return _TIME_OR_FRACTION.sub(lambda m: m.group(1) + (" qqcolonqq " if m.group(2) == ":" else " qqslashqq "), text)


def _speechlab_english_postprocess(text: str) -> str:
    """Undo two artefacts of Whisper's normalizer that count correct transcripts as errors:
    spelled digit strings are glued into one number ("one two three" -> "123") while the same
    digits written by a model stay apart ("1, 2, 3" -> "one 2 3"). Every digit becomes its own
    word, "one" becomes "1"; a decimal point becomes the word "point", and currency, percent,
    time and fraction signs stay words of their own, so that numbers that differ stay different;
    other tokens with no letter or digit (a stray ".") are dropped."""
    text = _DECIMAL_POINT.sub(" point ", _BARE_DECIMAL.sub("0.", _ONE.sub("1", text)))
    for placeholder, symbol in _PROTECTED.items():
        text = text.replace(placeholder.strip(), f" {symbol} ")
    for symbol in _NUMBER_SYMBOLS:
        text = text.replace(symbol, f" {symbol} ")
    text = _ONE.sub("1", _DIGIT.sub(lambda m: f" {m.group()} ", text))
    return " ".join(tok for tok in text.split()
                    if any(ch.isalnum() for ch in tok) or tok in _NUMBER_SYMBOLS or tok in _PROTECTED.values())


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
        return _speechlab_english_postprocess(whisper(_protect_number_symbols(text)))

    return apply, f"3 ({version})"


_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>")  # [laughter], <unk>: annotations, not speech
_KEEP_FORMAT = {"\u200c", "\u200d"}  # zero-width (non-)joiners shape Persian and Indic words


def _speechlab_basic_apply(text: str) -> str:
    """NFKC, lower case, annotations in [] and <> dropped, punctuation and symbols to spaces; marks
    (accents, vowel signs, tone marks) kept: "não" stays "não", "हिंदी" stays one word."""
    text = _ANNOTATION.sub(" ", unicodedata.normalize("NFKC", text)).lower()
    return _collapse("".join(
        " " if (cat := unicodedata.category(ch))[0] in "PSZ" or (cat[0] == "C" and ch not in _KEEP_FORMAT) else ch
        for ch in text))


def _chinese_simplified(text: str) -> str:
    """Traditional characters to simplified (zhconv), so that a model writing Mandarin in the other
    script is not counted wrong for every character."""
    import zhconv

    return zhconv.convert(text, "zh-hans")


def _speechlab_chinese() -> tuple[Callable[[str], str], str]:
    from importlib.metadata import version

    return (lambda text: _speechlab_basic_apply(_chinese_simplified(text))), f"1 (zhconv=={version('zhconv')})"


def _spaced_script(ch: str) -> bool:
    """Latin (with its accented letters), Greek, Cyrillic letters and digits: written with spaces."""
    o = ord(ch)
    return (ch.isascii() and ch.isalnum()) or 0xC0 <= o < 0x250 or 0x370 <= o < 0x530 or 0x1E00 <= o < 0x1F00


def units(normalized: str) -> str:
    """Normalized text of an unsegmented language as units separated by spaces: each character
    (with its combining marks) one unit, a run of Latin letters or digits one unit ("我用iPhone"
    -> "我 用 iphone"); whitespace is not a unit."""
    out: list[str] = []
    word = ""
    for ch in normalized:
        if ch.isspace():
            out.append(word) if word else None
            word = ""
        elif unicodedata.category(ch)[0] == "M" or ch in _KEEP_FORMAT:
            if word:
                word += ch
            elif out:
                out[-1] += ch
        elif _spaced_script(ch):
            word += ch
        else:
            if word:
                out.append(word)
                word = ""
            out.append(ch)
    if word:
        out.append(word)
    return " ".join(out)


NORMALIZERS = {
    "speechlab-english": "Whisper's EnglishTextNormalizer, keeping words in parentheses, leading zeros "
    "(\"007\", phone numbers, codes) and \"mm\" after a number, and scoring digits one by one (default)",
    "whisper-english": "Whisper's EnglishTextNormalizer exactly (spelling, numbers, contractions, punctuation)",
    "speechlab-basic": "NFKC, lowercase, [annotations] dropped, punctuation and symbols removed, accents and "
    "vowel signs kept (default for every language but English and Chinese)",
    "speechlab-chinese": "speechlab-basic after traditional -> simplified characters (zhconv) (default for Chinese)",
    "whisper-basic": "Whisper's BasicTextNormalizer (lowercase, strip punctuation; turns combining marks into spaces)",
    "lowercase": "lowercase and collapse whitespace only",
}
# The languages a normalizer is written for (None: any). A normalizer chosen by name applies to these;
# the other languages keep their default.
WRITTEN_FOR = {"speechlab-english": (ENGLISH,), "whisper-english": (ENGLISH,), "speechlab-chinese": ("zh", "yue")}


@lru_cache(maxsize=None)
def get_normalizer(name: str = "speechlab-english") -> Normalizer:
    if name == "speechlab-english":
        fn, version = _speechlab_english()
    elif name == "whisper-english":
        fn, version = _whisper("whisper_normalizer.english.EnglishTextNormalizer")
    elif name == "speechlab-basic":
        fn, version = _speechlab_basic_apply, "1"
    elif name == "speechlab-chinese":
        fn, version = _speechlab_chinese()
    elif name == "whisper-basic":
        fn, version = _whisper("whisper_normalizer.basic.BasicTextNormalizer")
    elif name == "lowercase":
        fn, version = (lambda text: _collapse(text.lower())), "builtin"
    else:
        raise SpeechlabError(f"unknown normalizer {name!r}; choose one of {sorted(NORMALIZERS)}")
    return Normalizer(name, version, fn)


def default_normalizer(language: str) -> str:
    if language == ENGLISH:
        return "speechlab-english"
    return "speechlab-chinese" if language in WRITTEN_FOR["speechlab-chinese"] else "speechlab-basic"


@dataclass(frozen=True)
class LanguageNormalizers:
    """The normalizer of each language. ``chosen``: normalizer names by language code, ``"*"`` for
    every language it is written for (a bare configured name); ``default_language``: the language
    of an utterance whose manifest names none."""

    chosen: tuple[tuple[str, str], ...] = ()
    default_language: str = ENGLISH
    fixed: Normalizer | None = field(default=None, compare=False)  # one normalizer for every language

    @classmethod
    def of(cls, normalizer: str | dict | Normalizer | LanguageNormalizers | None = None,
           default_language: str | None = None) -> LanguageNormalizers:
        if isinstance(normalizer, LanguageNormalizers):
            return normalizer
        language = base_language(default_language) or ENGLISH
        if isinstance(normalizer, Normalizer):
            return cls(default_language=language, fixed=normalizer)
        chosen = {"*": normalizer} if isinstance(normalizer, str) else dict(normalizer or {})
        for name in chosen.values():
            get_normalizer(name)  # unknown names fail here, once
        return cls(tuple(sorted(chosen.items())), language)

    def language_of(self, utterance: Utterance) -> str:
        return base_language(utterance.language) or self.default_language

    def name_for(self, language: str) -> str:
        chosen = dict(self.chosen)
        if language in chosen:
            return chosen[language]
        general = chosen.get("*")
        if general and language in WRITTEN_FOR.get(general, (language,)):
            return general
        return default_normalizer(language)

    def for_language(self, language: str) -> Normalizer:
        return self.fixed or get_normalizer(self.name_for(language))

    def label(self, languages) -> str:
        """The normalizers of ``languages``: one label, or "en: ...; de: ..." when they differ."""
        labels = {lang: self.for_language(lang).label for lang in sorted(set(languages)) or [self.default_language]}
        if len(set(labels.values())) == 1:
            return next(iter(labels.values()))
        return "; ".join(f"{lang}: {label}" for lang, label in labels.items())
