"""The TTS and chat suites' fixtures: the models and sets under test, and their evaluations."""
from __future__ import annotations

import pytest

from .._text import terminal
from .._types import SpeechlabError
from ..engine.pipeline import Engine
from ..engine.runner import ModelLoadError
from .fixtures import _build

__all__ = ["speechlab_tts_model", "speechlab_chat_model", "speechlab_tts_texts", "speechlab_chat_prompts", "speechlab_tts_eval", "speechlab_tts_quality", "speechlab_chat_eval", "speechlab_spoken_eval"]


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
