"""``[tool.speechlab]`` in pyproject.toml: thresholds, model variants, normalizer.

Example::

    [tool.speechlab]
    normalizer = "speechlab-english"     # for the languages it is written for (English)
    language = "en"                      # the language of utterances whose manifest names none

    [tool.speechlab.normalizers]         # per language; others: speechlab-basic (speechlab-chinese for zh)
    de = "whisper-basic"

    [tool.speechlab.dataset_languages]   # a dataset's default language
    my-german-set = "de"

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
    correction = "holm"                  # over every model x dataset x metric: holm, bh or none

    [tool.speechlab.min_samples]         # the fewest samples a judged figure needs (MIN_SAMPLES)
    wer = 10                             # scored utterances (per language across several)

    [tool.speechlab.perturbations]       # named chains: --speechlab-dataset speechlab/speech+phone
    phone = "telephone+noise:color=pink,snr=20"

    [tool.speechlab.robustness]          # the robustness suite (RobustnessSettings)
    perturbations = ["noise", "reverb", "telephone"]
    gate_severity = 2

    utterance_timeout = 60               # (top level) seconds one model call may take
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._machine import BUSY_TOLERANCE
from ._perturb import KINDS, parse_chain
from ._tables import check_value, checked, nearest, unknown_key
from ._types import CACHE_MODES, SpeechlabError, base_language
from .grading import GradePolicy
from .metrics.hallucination import HallucinationConfig
from .metrics.normalize import NORMALIZERS, LanguageNormalizers
from .metrics.specs import SPECS
from .metrics.stats import CORRECTIONS, MIN_SAMPLES, GatePolicy
from .tasks.tts import SanityConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_THRESHOLDS = {name: spec.default for name, spec in SPECS.items()}  # metrics.specs declares each
METRICS = tuple(DEFAULT_THRESHOLDS)


@dataclass
class TTSSettings:
    """``[tool.speechlab.tts]``: the judge, the text sets and the audio sanity limits."""

    judge: str = "faster-whisper/tiny.en"
    texts: list[str] = field(default_factory=lambda: ["speechlab/tts-texts"])
    sanity: Any = None  # SanityConfig
    quality: bool = True  # DNSMOS and speaker similarity (pytest-speechlab[quality])
    reference_speaker: str | None = None  # a dataset (registered or a path) of the voice's speaker

    @classmethod
    def from_table(cls, table: dict, where: str) -> TTSSettings:
        values = checked(cls, table, where, types={"sanity": dict, "reference_speaker": str})
        sanity = SanityConfig.from_table(values.pop("sanity", {}), f"{where}.sanity")
        return cls(**values, sanity=sanity)


@dataclass
class ChatSettings:
    """``[tool.speechlab.chat]``: prompt sets, the relevance judge, what the chat suite requires."""

    prompts: list[str] = field(default_factory=lambda: ["speechlab/chat-prompts"])
    relevance_judge: str = "sentence-transformers/all-MiniLM-L6-v2"
    min_relevance: float = 0.3  # cosine similarity of answer and question/topic
    min_pass_rate: float = 0.7  # share of prompts whose answer passes its answer key
    max_first_token_s: float = 5.0
    tts: str | None = None  # the spoken-question pipeline's voice; default: the first selected TTS model
    judge: str | None = None  # a registered chat model that also grades each answer against its key

    @classmethod
    def from_table(cls, table: dict, where: str) -> ChatSettings:
        return cls(**checked(cls, table, where, types={"tts": str, "judge": str}))


@dataclass
class SliceSettings:
    """``[tool.speechlab.slices]``: the fields error rates are broken down by (manifest fields such as
    gender, age, accent or speaker; ``language``; the derived bands ``duration``, ``speaking_rate`` and
    ``snr``), the fewest scored utterances a slice is judged on, and the correction over the fields."""

    fields: list[str] = field(default_factory=list)
    min_size: int = 10
    correction: str = "holm"

    @classmethod
    def from_table(cls, table: dict, where: str) -> SliceSettings:
        settings = cls(**checked(cls, table, where))
        if settings.min_size < 2:
            raise SpeechlabError(f"{where} min_size must be 2 or more, got {settings.min_size}")
        if settings.correction not in CORRECTIONS:
            raise SpeechlabError(f"{where} correction {settings.correction!r} is unknown; choose one of "
                                 f"{', '.join(CORRECTIONS)}")
        return settings


ROBUSTNESS_KINDS = ("noise", "babble", "ambient", "reverb", "speed", "clip", "telephone", "mp3", "dropout")


@dataclass
class RobustnessSettings:
    """``[tool.speechlab.robustness]``: the robustness suite's perturbations (each at its four
    severities), the reference model NWERD is normalized by, seeds, and the severity the ``werd``
    threshold holds up to. The suite runs with ``--speechlab-robustness`` or ``enabled = true``."""

    enabled: bool = False
    perturbations: list[str] = field(default_factory=lambda: list(ROBUSTNESS_KINDS))
    reference: str | None = None  # default: the first selected ASR model
    seeds: int = 1  # each severity evaluated with this many seeds (stability across seeds)
    gate_severity: int = 2  # the werd threshold holds at severities 1..gate_severity (of 4)

    @classmethod
    def from_table(cls, table: dict, where: str) -> RobustnessSettings:
        values = checked(cls, table, where, types={"reference": str})
        settings = cls(**values)
        for kind in settings.perturbations:
            check_value(kind, str, f"{where} perturbations")
            if kind not in KINDS:
                raise SpeechlabError(f"{where} perturbations: unknown kind {kind!r}{nearest(kind, KINDS)}; "
                                     f"kinds: {', '.join(KINDS)}")
        if not 1 <= settings.seeds <= 10:
            raise SpeechlabError(f"{where} seeds must be 1 to 10, got {settings.seeds}")
        if not 1 <= settings.gate_severity <= 4:
            raise SpeechlabError(f"{where} gate_severity must be 1 to 4, got {settings.gate_severity}")
        return settings


@dataclass
class SpeechlabConfig:
    source: str = "(defaults)"
    normalizer: str = "speechlab-english"
    normalizers: dict[str, str] = field(default_factory=dict)  # language -> normalizer ([tool.speechlab.normalizers])
    language: str = "en"  # the language of an utterance whose manifest names none
    dataset_languages: dict[str, str] = field(default_factory=dict)  # a dataset's default language
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    model_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    hallucination: HallucinationConfig = field(default_factory=HallucinationConfig)
    grades: GradePolicy = field(default_factory=GradePolicy)
    db: str | None = None  # results database: SQLAlchemy URL or SQLite path
    regression: GatePolicy = field(default_factory=GatePolicy)
    # [tool.speechlab.regression.baseline_models]: candidate model -> the baseline run's model it is gated against
    baseline_models: dict[str, str] = field(default_factory=dict)
    tts: TTSSettings = field(default_factory=lambda: TTSSettings.from_table({}, "[tool.speechlab.tts]"))
    chat: ChatSettings = field(default_factory=ChatSettings)
    utterance_timeout: float | None = None  # seconds one model call may take; None: no limit
    cache: str = "on"  # the inference cache: on, off, refresh, read-only
    retime: int = 20  # utterances timed again here when an evaluation's outputs come from the cache (0: speed not judged)
    perturbations: dict[str, str] = field(default_factory=dict)  # name -> chain ([tool.speechlab.perturbations])
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    slices: SliceSettings = field(default_factory=SliceSettings)
    repeats: int = 1  # each utterance decoded this many times, every repeat scored (nondeterminism measured)
    seed: int | None = 0  # models with seed(n) are seeded per call from (seed, utterance id, repeat); None: never
    unstable: str = "fail"  # a threshold verdict whose repeats fall on both sides of the limit: fail or warn
    db_failure: str = "fail"  # the results database not written: the session fails (exit 6), or only warns
    isolate: bool = False  # the model in a worker process even with one worker (--speechlab-isolate)
    busy_tolerance: float = BUSY_TOLERANCE  # share of the CPUs other processes may take before speed is not judged
    min_samples: dict[str, int] = field(default_factory=lambda: dict(MIN_SAMPLES))  # below: "too few to judge"
    features: dict[str, dict] = field(default_factory=dict)  # [tool.speechlab.features.NAME]: each feature's own table

    def language_normalizers(self, dataset: str) -> LanguageNormalizers:
        """The normalizers and default language for scoring ``dataset``."""
        return LanguageNormalizers.of({"*": self.normalizer, **self.normalizers},
                                      self.dataset_languages.get(dataset, self.language))

    def check_models(self, registered: set[str]) -> list[str]:
        """Per-model thresholds must name a registered model. A name close to a registered one is a
        typo: a SpeechlabError. Any other unknown name is returned, to be warned about (its plugin may
        simply not be installed in this environment)."""
        absent = []
        for model in self.model_thresholds:
            if model in registered:
                continue
            hint = nearest(model, registered)
            where = f'{self.source}: [tool.speechlab.thresholds.models."{model}"]'
            if hint:
                raise SpeechlabError(f"{where}: no model {model!r} is registered{hint}")
            absent.append(f"{where}: no model {model!r} is registered (is its plugin installed?); "
                          "these thresholds are not used")
        return absent

    def threshold(self, metric: str, model: str, base_model: str | None = None) -> float:
        """A model's own override, else its base model's (for variants), else the default."""
        for name in (model, base_model):
            if name and metric in self.model_thresholds.get(name, {}):
                return self.model_thresholds[name][metric]
        return self.thresholds[metric]


TOP_LEVEL = ("normalizer", "normalizers", "language", "dataset_languages", "thresholds", "models", "hallucination", "grades", "db", "regression", "tts", "chat",
             "utterance_timeout", "cache", "retime", "perturbations", "robustness", "repeats", "seed", "unstable",
             "busy_tolerance", "min_samples", "features", "db_failure", "isolate", "slices")
UNSTABLE_POLICIES = ("fail", "warn")


MAX_REPEATS = 100


def check_repeats(value: int, where: str) -> int:
    if not 1 <= value <= MAX_REPEATS:
        raise SpeechlabError(f"{where} must be 1 to {MAX_REPEATS} (each utterance decoded that many times), got {value}")
    return value


def _check_thresholds(table: Any, where: str) -> dict[str, float]:
    check_value(table, dict, where)
    out = {}
    for key, value in table.items():
        if key not in METRICS:
            raise SpeechlabError(f"{where}: unknown metric {key!r}{nearest(key, METRICS)}; known: {', '.join(METRICS)}")
        value = check_value(value, float, f"{where}.{key}")
        if not math.isfinite(value) or value < 0:  # nan passes every comparison as False: "0.0 <= nan"
            raise SpeechlabError(f"{where}.{key} must be a finite non-negative number, got {value!r}")
        out[key] = value
    return out


def _language_code(value: str, where: str) -> str:
    code = base_language(value)
    if not code or not code.isalpha() or len(code) > 8:
        raise SpeechlabError(f"{where}: {value!r} is not a language code (ISO 639, such as \"en\" or \"pt-BR\")")
    return code


def load_config(pyproject: Path | None) -> SpeechlabConfig:
    if pyproject is None or not pyproject.is_file():
        return SpeechlabConfig()
    try:
        with open(pyproject, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpeechlabError(f"{pyproject}: invalid TOML ({exc})") from None
    table = data.get("tool", {}).get("speechlab", {})
    check_value(table, dict, f"{pyproject}: [tool.speechlab]")
    for key in table:
        if key not in TOP_LEVEL:
            raise unknown_key(f"{pyproject}: [tool.speechlab]", key, TOP_LEVEL)
    config = SpeechlabConfig(source=str(pyproject))
    try:
        _fill(config, table)
    except SpeechlabError as exc:
        message = str(exc)
        raise SpeechlabError(message if message.startswith(str(pyproject)) else f"{pyproject}: {message}") from None
    return config


def _fill(config: SpeechlabConfig, table: dict) -> None:
    config.normalizer = check_value(table.get("normalizer", config.normalizer), str, "[tool.speechlab] normalizer")
    if config.normalizer not in NORMALIZERS:
        raise SpeechlabError(f"[tool.speechlab] normalizer {config.normalizer!r} is unknown"
                             f"{nearest(config.normalizer, NORMALIZERS)}; choose one of {', '.join(NORMALIZERS)}")
    for language, name in check_value(table.get("normalizers", {}), dict, "[tool.speechlab.normalizers]").items():
        where = f"[tool.speechlab.normalizers] {language}"
        check_value(name, str, where)
        if name not in NORMALIZERS:
            raise SpeechlabError(f"{where}: normalizer {name!r} is unknown{nearest(name, NORMALIZERS)}; "
                                 f"choose one of {', '.join(NORMALIZERS)}")
        config.normalizers[language if language == "*" else _language_code(language, where)] = name
    if "language" in table:
        config.language = _language_code(check_value(table["language"], str, "[tool.speechlab] language"),
                                         "[tool.speechlab] language")
    for dataset, language in check_value(table.get("dataset_languages", {}), dict,
                                         "[tool.speechlab.dataset_languages]").items():
        where = f"[tool.speechlab.dataset_languages] {dataset}"
        config.dataset_languages[dataset] = _language_code(check_value(language, str, where), where)
    thresholds = dict(check_value(table.get("thresholds", {}), dict, "[tool.speechlab.thresholds]"))
    per_model = check_value(thresholds.pop("models", {}), dict, "[tool.speechlab.thresholds.models]")
    config.thresholds.update(_check_thresholds(thresholds, "[tool.speechlab.thresholds]"))
    for model, overrides in per_model.items():
        config.model_thresholds[model] = _check_thresholds(overrides, f'[tool.speechlab.thresholds.models."{model}"]')
    variants = check_value(table.get("models", {}), dict, "[tool.speechlab.models]")
    for name, variant in variants.items():
        check_value(variant, dict, f"[tool.speechlab.models.{name}]")
    config.variants = variants
    config.hallucination = HallucinationConfig.from_table(table.get("hallucination", {}), "[tool.speechlab.hallucination]")
    config.grades = GradePolicy.from_table(table.get("grades", {}), "[tool.speechlab.grades]")
    if "db" in table:
        config.db = check_value(table["db"], str, "[tool.speechlab] db")
    for metric, value in check_value(table.get("min_samples", {}), dict, "[tool.speechlab.min_samples]").items():
        where = f"[tool.speechlab.min_samples] {metric}"
        if metric not in MIN_SAMPLES:
            raise unknown_key("[tool.speechlab.min_samples]", metric, tuple(MIN_SAMPLES))
        config.min_samples[metric] = check_value(value, int, where)
        if config.min_samples[metric] < 1:
            raise SpeechlabError(f"{where} must be 1 or more (the fewest samples the figure is judged on), got {value}")
    for name, settings in check_value(table.get("features", {}), dict, "[tool.speechlab.features]").items():
        config.features[name] = check_value(settings, dict, f"[tool.speechlab.features.{name}]")
    regression = dict(check_value(table.get("regression", {}), dict, "[tool.speechlab.regression]"))
    where = "[tool.speechlab.regression.baseline_models]"
    for candidate, baseline in check_value(regression.pop("baseline_models", {}), dict, where).items():
        config.baseline_models[candidate] = check_value(baseline, str, f"{where} {candidate!r}")
    config.regression = GatePolicy(**{"min_samples": config.min_samples["wer"],
                                      **checked(GatePolicy, regression, "[tool.speechlab.regression]")})
    if config.regression.correction not in CORRECTIONS:
        raise SpeechlabError(f"[tool.speechlab.regression] correction {config.regression.correction!r} is unknown; "
                             f"choose one of {', '.join(CORRECTIONS)}")
    if not 0 < config.regression.alpha < 0.5:
        raise SpeechlabError(f"[tool.speechlab.regression] alpha must be between 0 and 0.5, got {config.regression.alpha}")
    config.tts = TTSSettings.from_table(table.get("tts", {}), "[tool.speechlab.tts]")
    config.chat = ChatSettings.from_table(table.get("chat", {}), "[tool.speechlab.chat]")
    config.robustness = RobustnessSettings.from_table(table.get("robustness", {}), "[tool.speechlab.robustness]")
    config.slices = SliceSettings.from_table(table.get("slices", {}), "[tool.speechlab.slices]")
    for name, chain in check_value(table.get("perturbations", {}), dict, "[tool.speechlab.perturbations]").items():
        where = f"[tool.speechlab.perturbations] {name}"
        if not re.fullmatch(r"[A-Za-z][\w-]{0,40}", name) or name in KINDS:
            raise SpeechlabError(f"{where}: a name is a letter then up to 40 letters, digits, _ or -, "
                                 f"and not a kind ({', '.join(KINDS)})")
        parse_chain(check_value(chain, str, where))  # checked now: a typo is a usage error at start
        config.perturbations[name] = chain
    if "cache" in table:
        config.cache = check_value(table["cache"], str, "[tool.speechlab] cache")
        if config.cache not in CACHE_MODES:
            raise SpeechlabError(f"[tool.speechlab] cache {config.cache!r} is unknown{nearest(config.cache, CACHE_MODES)}; "
                                 f"choose one of {', '.join(CACHE_MODES)}")
    if "retime" in table:
        config.retime = check_value(table["retime"], int, "[tool.speechlab] retime")
        if config.retime < 0:
            raise SpeechlabError(f"[tool.speechlab] retime {config.retime}: give the number of utterances to time "
                                 "again (0: speed is not judged on cached outputs)")
    if "repeats" in table:
        config.repeats = check_repeats(check_value(table["repeats"], int, "[tool.speechlab] repeats"), "[tool.speechlab] repeats")
    if "seed" in table:
        seed = table["seed"]
        if seed is False:
            config.seed = None
        else:
            config.seed = check_value(seed, int, "[tool.speechlab] seed (a whole number, or false: never seed)")
            if config.seed < 0:
                raise SpeechlabError(f"[tool.speechlab] seed must be 0 or more (false: never seed), got {config.seed}")
    if "isolate" in table:
        config.isolate = check_value(table["isolate"], bool, "[tool.speechlab] isolate")
    if "db_failure" in table:
        config.db_failure = check_value(table["db_failure"], str, "[tool.speechlab] db_failure")
        if config.db_failure not in UNSTABLE_POLICIES:
            raise SpeechlabError(f"[tool.speechlab] db_failure {config.db_failure!r}: choose fail or warn")
    if "unstable" in table:
        config.unstable = check_value(table["unstable"], str, "[tool.speechlab] unstable")
        if config.unstable not in UNSTABLE_POLICIES:
            raise SpeechlabError(f"[tool.speechlab] unstable {config.unstable!r}: choose fail or warn")
    if "busy_tolerance" in table:
        config.busy_tolerance = check_value(table["busy_tolerance"], float, "[tool.speechlab] busy_tolerance")
        if not 0 < config.busy_tolerance <= 1:
            raise SpeechlabError(f"[tool.speechlab] busy_tolerance is a share of the CPUs, above 0 and at most 1, "
                                 f"got {config.busy_tolerance}")
    if "utterance_timeout" in table:
        timeout = check_value(table["utterance_timeout"], float, "[tool.speechlab] utterance_timeout")
        if timeout <= 0:
            raise SpeechlabError(f"[tool.speechlab] utterance_timeout must be a positive number of seconds, got {timeout}")
        config.utterance_timeout = timeout
