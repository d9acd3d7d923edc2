"""The fixtures suites use: models built once per session, datasets, evaluations, grades, the gate."""
from __future__ import annotations

import pytest

from .._text import terminal
from .._types import SpeechlabError
from ..engine.runner import ModelLoadError
from ..metamorphic import MetamorphicCheck
from ..engine.pipeline import Engine
from .session import session_key

__all__ = [
    "speechlab_session", "speechlab_model", "speechlab_tts_model", "speechlab_chat_model",
    "speechlab_tts_texts", "speechlab_chat_prompts", "speechlab_tts_eval", "speechlab_chat_eval",
    "speechlab_spoken_eval", "speechlab_dataset", "speechlab_eval", "speechlab_grade", "speechlab_min_grade",
    "speechlab_regression", "speechlab_runtime_comparison", "speechlab_batch_comparison", "speechlab_fail_on_regression",
    "speechlab_thresholds", "speechlab_robustness", "speechlab_metamorphic", "speechlab_tts_quality"
]


@pytest.fixture(scope="session")
def speechlab_session(pytestconfig: pytest.Config) -> Engine:
    """The session's engine: settings, registry, model pool, evaluation results."""
    return pytestconfig.stash[session_key].engine


@pytest.fixture(scope="session")
def speechlab_model(request: pytest.FixtureRequest, speechlab_session: Engine):
    """The model under test, built once per session (parametrized over the selected models)."""
    name = getattr(request, "param", None) or speechlab_session.selected_models("asr")[0]
    return _build(speechlab_session, name)


def _build(speechlab_session: Engine, name: str):
    try:
        return speechlab_session.pool.get(speechlab_session.registry.model(name))
    except ModelLoadError as exc:
        pytest.fail(terminal(str(exc)), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_tts_model(request: pytest.FixtureRequest, speechlab_session: Engine):
    """The TTS model under test, built once (parametrized over the selected models of task tts)."""
    return _build(speechlab_session, request.param)


@pytest.fixture(scope="session")
def speechlab_chat_model(request: pytest.FixtureRequest, speechlab_session: Engine):
    """The chat model under test, built once (parametrized over the selected models of task chat)."""
    return _build(speechlab_session, request.param)


@pytest.fixture(scope="session")
def speechlab_tts_texts(request: pytest.FixtureRequest) -> str:
    """A TTS text set ([tool.speechlab.tts] texts: registered names or paths relative to the rootdir)."""
    return request.param


@pytest.fixture(scope="session")
def speechlab_chat_prompts(request: pytest.FixtureRequest) -> str:
    """A chat prompt set ([tool.speechlab.chat] prompts)."""
    return request.param


@pytest.fixture(scope="session")
def speechlab_tts_eval(speechlab_session: Engine, speechlab_tts_model, speechlab_tts_texts,
                      tmp_path_factory: pytest.TempPathFactory):
    """The TTS model on the text set: a TTSEval (``.result`` is the round-trip EvalResult)."""
    try:
        return speechlab_session.tts.evaluate(speechlab_tts_model, speechlab_tts_texts,
                                              tmp_path_factory.mktemp("speechlab-tts"))
    except ModelLoadError as exc:  # the judge
        pytest.fail(terminal(f"TTS judge: {exc}"), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_tts_quality(speechlab_tts_eval):
    """The TTS evaluation, for its perceptual-quality checks (DNSMOS, speaker similarity). Tests
    using it are deselected with [tool.speechlab.tts] quality = false."""
    return speechlab_tts_eval


@pytest.fixture(scope="session")
def speechlab_chat_eval(speechlab_session: Engine, speechlab_chat_model, speechlab_chat_prompts):
    """The chat model on the prompt set: a ChatEval."""
    try:
        return speechlab_session.chat.evaluate(speechlab_chat_model, speechlab_chat_prompts)
    except (ModelLoadError, SpeechlabError) as exc:  # the judge model
        pytest.fail(terminal(f"chat: {exc}"), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_spoken_eval(speechlab_session: Engine, speechlab_chat_model, speechlab_chat_prompts):
    """The spoken-question pipeline (TTS -> ASR -> chat): a SpokenEval, or a str saying why there is none."""
    try:
        return speechlab_session.chat.spoken(speechlab_chat_model, speechlab_chat_prompts)
    except ModelLoadError as exc:
        pytest.fail(terminal(f"spoken-question pipeline: {exc}"), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_dataset(request: pytest.FixtureRequest, speechlab_session: Engine):
    """The dataset under test (parametrized over the selected datasets); audio is read lazily."""
    ref = getattr(request, "param", None) or speechlab_session.selected_datasets()[0]
    return speechlab_session.dataset(ref)


@pytest.fixture(scope="session")
def speechlab_eval(speechlab_session: Engine, speechlab_model, speechlab_dataset):
    """The evaluation of the model on the dataset, computed once and shared by every test."""
    return speechlab_session.evaluate(speechlab_model, speechlab_dataset)


@pytest.fixture(scope="session")
def speechlab_grade(speechlab_session: Engine, speechlab_model):
    """The readiness grade of the model under test, over every selected dataset (evaluated once)."""
    for ref in speechlab_session.selected_datasets():
        speechlab_session.evaluate(speechlab_model, speechlab_session.dataset(ref))
    return speechlab_session.grade(speechlab_model.name)


@pytest.fixture(scope="session")
def speechlab_min_grade(pytestconfig: pytest.Config) -> str | None:
    """``--speechlab-min-grade`` or ``[tool.speechlab.grades] min_grade``; None when neither is set."""
    return pytestconfig.stash[session_key].min_grade


@pytest.fixture(scope="session")
def speechlab_regression(speechlab_session: Engine, speechlab_eval):
    """The comparison with ``--speechlab-baseline`` (a Comparison), or a str saying why there is none.
    Tests using it are deselected when no baseline is given."""
    return speechlab_session.gate.compare(speechlab_eval)


@pytest.fixture(scope="session")
def speechlab_runtime_comparison(speechlab_session: Engine, speechlab_dataset):
    """The selected models that share weights, on their runtimes with the same greedy decoding, over the
    dataset: a list of RuntimeComparison, or a str saying why there is none. Tests using it are
    deselected when fewer than two models are selected."""
    return speechlab_session.cross_runtime.compare(speechlab_dataset)


@pytest.fixture(scope="session")
def speechlab_batch_comparison(speechlab_session: Engine, speechlab_dataset):
    """Each selected model with a batch method at --speechlab-batch-equivalence N against batch 1 on the
    dataset: a list of BatchComparison, or a str saying why there is none. Tests using it are deselected
    without --speechlab-batch-equivalence."""
    return speechlab_session.batching.compare(speechlab_dataset)


@pytest.fixture(scope="session")
def speechlab_robustness(speechlab_session: Engine, speechlab_model, speechlab_dataset):
    """The model on the dataset clean and through each [tool.speechlab.robustness] perturbation at
    four severities: a RobustnessEval. Tests using it are deselected without --speechlab-robustness
    (or [tool.speechlab.robustness] enabled = true)."""
    try:
        return speechlab_session.robustness.evaluate(speechlab_model, speechlab_dataset)
    except SpeechlabError as exc:
        pytest.fail(terminal(str(exc)), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_metamorphic(pytestconfig: pytest.Config, speechlab_session: Engine, speechlab_model, speechlab_dataset,
                          tmp_path_factory: pytest.TempPathFactory) -> MetamorphicCheck:
    """The model on the dataset's three shortest speech clips, for metamorphic properties
    (``check(chain, max_words)``); a failure's audio goes to the HTML evidence. Tests using it are
    deselected without --speechlab-properties."""
    plugin = pytestconfig.stash[session_key]
    key = (speechlab_model.name, speechlab_dataset.name)
    if key not in plugin.metamorphic:
        plugin.metamorphic[key] = MetamorphicCheck(
            speechlab_session, speechlab_model, speechlab_dataset, tmp_path_factory.mktemp("speechlab-properties"),
            nodeid=lambda: plugin.current_nodeid or "")
    return plugin.metamorphic[key]


@pytest.fixture(scope="session")
def speechlab_fail_on_regression(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.option.speechlab_fail_on_regression


@pytest.fixture
def speechlab_thresholds(speechlab_session: Engine, speechlab_model) -> dict[str, float]:
    """Thresholds for the model under test, from ``[tool.speechlab.thresholds]``."""
    return speechlab_session.thresholds(speechlab_model.name)
