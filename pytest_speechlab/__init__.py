"""pytest-speechlab: evaluate speech models with pytest.

The public API. Importing it is cheap: no model backend, numpy or normalizer is imported here.
"""
from ._assertions import (
    NotJudged,
    SpeechlabAssertionError,
    SpeedNotJudged,
    TooFewToJudge,
    check_below,
    check_grade,
    check_human_mos,
    check_latency,
    check_long_form,
    check_no_input_errors,
    check_quality,
    check_robustness,
    check_slices,
)
from ._config import SpeechlabConfig, load_config
from ._dataset import Dataset, DatasetFormat, load_dataset
from ._hookspecs import hookimpl, hookspec
from ._machine import default_threads
from ._perturb import Perturbation, apply_chain, chain_label, ladder, parse_chain
from ._registry import (
    DatasetSpec,
    ModelSpec,
    Registry,
    SpeechlabPluginWarning,
    build_registry,
    make_plugin_manager,
)
from ._types import (
    ASRModel,
    Audio,
    AudioSent,
    ChatModel,
    Fault,
    InputError,
    Output,
    Partial,
    Response,
    Segment,
    SpeechlabError,
    Transcript,
    TTSModel,
    Utterance,
)
from ._weights import cache_dir, local_model_path, weights_digest
from .engine.api import evaluate_models
from .engine.features import Feature
from .engine.pipeline import Engine
from .engine.runner import LoadedModel, ModelPool, Runner
from .grading import Grade, GradePolicy, grade_model
from .metrics.hallucination import HallucinationConfig
from .metrics.normalize import Normalizer, get_normalizer
from .metrics.results import AlignedOp, EditCounts, EvalResult, Finding, UtteranceResult
from .metrics.wer import evaluate
from .robustness import Curve, RobustnessEval

__all__ = [
    "ASRModel",
    "AlignedOp",
    "Audio",
    "AudioSent",
    "ChatModel",
    "Dataset",
    "Curve",
    "DatasetFormat",
    "DatasetSpec",
    "EditCounts",
    "Engine",
    "EvalResult",
    "Fault",
    "Finding",
    "Grade",
    "GradePolicy",
    "HallucinationConfig",
    "InputError",
    "LoadedModel",
    "ModelPool",
    "ModelSpec",
    "Normalizer",
    "Output",
    "Partial",
    "Perturbation",
    "Registry",
    "Response",
    "RobustnessEval",
    "Runner",
    "Segment",
    "SpeechlabAssertionError",
    "SpeedNotJudged",
    "NotJudged",
    "TooFewToJudge",
    "SpeechlabConfig",
    "SpeechlabError",
    "SpeechlabPluginWarning",
    "TTSModel",
    "Transcript",
    "Utterance",
    "UtteranceResult",
    "build_registry",
    "cache_dir",
    "check_below",
    "check_latency",
    "check_long_form",
    "check_grade",
    "check_human_mos",
    "check_no_input_errors",
    "check_quality",
    "check_robustness",
    "check_slices",
    "apply_chain",
    "chain_label",
    "ladder",
    "parse_chain",
    "default_threads",
    "evaluate",
    "evaluate_models",
    "Feature",
    "get_normalizer",
    "grade_model",
    "hookimpl",
    "hookspec",
    "load_config",
    "load_dataset",
    "local_model_path",
    "make_plugin_manager",
    "weights_digest",
]
