"""Text normalizers applied to reference and hypothesis before scoring. The name and version of the
one used are recorded with every figure: WER means nothing without them."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ._types import SpeechlabError


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


NORMALIZERS = {
    "whisper-english": "Whisper's EnglishTextNormalizer (spelling, numbers, contractions, punctuation)",
    "whisper-basic": "Whisper's BasicTextNormalizer (lowercase, strip punctuation and diacritics; any language)",
    "lowercase": "lowercase and collapse whitespace only",
}


@lru_cache(maxsize=None)
def get_normalizer(name: str = "whisper-english") -> Normalizer:
    if name == "whisper-english":
        fn, version = _whisper("whisper_normalizer.english.EnglishTextNormalizer")
    elif name == "whisper-basic":
        fn, version = _whisper("whisper_normalizer.basic.BasicTextNormalizer")
    elif name == "lowercase":
        fn, version = (lambda text: _collapse(text.lower())), "builtin"
    else:
        raise SpeechlabError(f"unknown normalizer {name!r}; choose one of {sorted(NORMALIZERS)}")
    return Normalizer(name, version, fn)
