"""``[tool.speechlab]`` in pyproject.toml: thresholds, model variants, normalizer.

Example::

    [tool.speechlab]
    normalizer = "speechlab-english"

    [tool.speechlab.thresholds]          # defaults for every model
    wer = 0.15
    cer = 0.08
    rtf = 0.5

    [tool.speechlab.thresholds.models.pocketsphinx]   # per-model overrides
    wer = 0.60

    [tool.speechlab.models.tiny-vad]     # a named variant: decode settings are identity
    model = "faster-whisper/tiny.en"
    vad_filter = true

    [tool.speechlab.hallucination]       # detector settings (HallucinationConfig)
    insertion_run = 4

    [tool.speechlab.grades]              # grading policy (GradePolicy)
    min_grade = "B"

    [tool.speechlab.regression]          # the regression gate (GatePolicy)
    alpha = 0.05
    min_effect = 0.005
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._grading import GradePolicy
from ._hallucination import HallucinationConfig
from ._stats import GatePolicy
from ._types import SpeechlabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_THRESHOLDS = {
    "wer": 0.20,
    "cer": 0.10,
    "rtf": 1.0,
    "hallucination_rate": 0.05,  # share of speech utterances with a hallucination finding
    "nonspeech_hallucination_rate": 0.0,  # share of non-speech clips with one
    # share of utterances whose greedy transcripts differ between runtimes of the same weights;
    # not 0: transformers pads the audio to 30 s before the log-mel, openai-whisper and faster-whisper
    # pad the log-mel itself, which flips near-tie tokens (2 of the 34 fixtures on tiny.en)
    "runtime_disagreement_rate": 0.10,
}
METRICS = tuple(DEFAULT_THRESHOLDS)


@dataclass
class TTSSettings:
    """``[tool.speechlab.tts]``: the judge, the text sets and the audio sanity limits."""

    judge: str = "faster-whisper/tiny.en"
    texts: list[str] = field(default_factory=lambda: ["speechlab/tts-texts"])
    sanity: Any = None  # SanityConfig

    @classmethod
    def from_table(cls, table: dict, where: str) -> TTSSettings:
        from ._tts import SanityConfig

        table = dict(table)
        sanity = SanityConfig.from_table(table.pop("sanity", {}), f"{where}.sanity")
        unknown = set(table) - {"judge", "texts"}
        if unknown:
            raise SpeechlabError(f"{where}: unknown key(s) {sorted(unknown)}; known: judge, texts, sanity")
        return cls(**table, sanity=sanity)


@dataclass
class ChatSettings:
    """``[tool.speechlab.chat]``: prompt sets, the relevance judge, what the chat suite requires."""

    prompts: list[str] = field(default_factory=lambda: ["speechlab/chat-prompts"])
    relevance_judge: str = "sentence-transformers/all-MiniLM-L6-v2"
    min_relevance: float = 0.3  # cosine similarity of answer and question/topic
    min_pass_rate: float = 0.7  # share of prompts whose answer holds the expected content
    max_first_token_s: float = 5.0
    tts: str | None = None  # the spoken-question pipeline's voice; default: the first selected TTS model

    @classmethod
    def from_table(cls, table: dict, where: str) -> ChatSettings:
        unknown = set(table) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpeechlabError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**table)


@dataclass
class SpeechlabConfig:
    source: str = "(defaults)"
    normalizer: str = "speechlab-english"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    model_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    hallucination: HallucinationConfig = field(default_factory=HallucinationConfig)
    grades: GradePolicy = field(default_factory=GradePolicy)
    db: str | None = None  # results database: SQLAlchemy URL or SQLite path
    regression: GatePolicy = field(default_factory=GatePolicy)
    tts: TTSSettings = field(default_factory=lambda: TTSSettings.from_table({}, "[tool.speechlab.tts]"))
    chat: ChatSettings = field(default_factory=ChatSettings)

    def threshold(self, metric: str, model: str, base_model: str | None = None) -> float:
        """A model's own override, else its base model's (for variants), else the default."""
        for name in (model, base_model):
            if name and metric in self.model_thresholds.get(name, {}):
                return self.model_thresholds[name][metric]
        return self.thresholds[metric]


def _check_thresholds(table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise SpeechlabError(f"{where} must be a table")
    out = {}
    for key, value in table.items():
        if key not in METRICS:
            raise SpeechlabError(f"{where}: unknown metric {key!r} (known: {', '.join(METRICS)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise SpeechlabError(f"{where}.{key} must be a non-negative number, got {value!r}")
        out[key] = float(value)
    return out


def load_config(pyproject: Path | None) -> SpeechlabConfig:
    if pyproject is None or not pyproject.is_file():
        return SpeechlabConfig()
    try:
        with open(pyproject, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpeechlabError(f"{pyproject}: invalid TOML ({exc})") from None
    table = data.get("tool", {}).get("speechlab", {})
    config = SpeechlabConfig(source=str(pyproject))
    config.normalizer = table.get("normalizer", config.normalizer)
    from ._normalize import NORMALIZERS

    if config.normalizer not in NORMALIZERS:
        raise SpeechlabError(
            f"{pyproject}: [tool.speechlab] normalizer {config.normalizer!r} is unknown; "
            f"choose one of {', '.join(NORMALIZERS)}"
        )
    thresholds = dict(table.get("thresholds", {}))
    per_model = thresholds.pop("models", {})
    config.thresholds.update(_check_thresholds(thresholds, "[tool.speechlab.thresholds]"))
    for model, overrides in per_model.items():
        config.model_thresholds[model] = _check_thresholds(
            overrides, f'[tool.speechlab.thresholds.models."{model}"]'
        )
    variants = table.get("models", {})
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise SpeechlabError(f"{pyproject}: [tool.speechlab.models] entries must be tables")
    config.variants = variants
    config.hallucination = HallucinationConfig.from_table(
        table.get("hallucination", {}), "[tool.speechlab.hallucination]"
    )
    config.grades = GradePolicy.from_table(table.get("grades", {}), "[tool.speechlab.grades]")
    config.db = table.get("db")
    regression = dict(table.get("regression", {}))
    unknown = set(regression) - set(GatePolicy.__dataclass_fields__)
    if unknown:
        raise SpeechlabError(f"[tool.speechlab.regression]: unknown key(s) {sorted(unknown)}; "
                             f"known: {sorted(GatePolicy.__dataclass_fields__)}")
    config.regression = GatePolicy(**regression)
    config.tts = TTSSettings.from_table(table.get("tts", {}), "[tool.speechlab.tts]")
    config.chat = ChatSettings.from_table(table.get("chat", {}), "[tool.speechlab.chat]")
    return config
