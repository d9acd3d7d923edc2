"""The fixtures every suite uses: the engine, models built once per session, speech sets, evaluations,
grades and thresholds (each feature's own fixtures are in its module: tts_chat, gate, comparisons,
robustness)."""
from __future__ import annotations

import pytest

from .._text import terminal
from ..engine.pipeline import Engine
from ..engine.runner import ModelLoadError
from .session import session_key

__all__ = ["speechlab_session", "speechlab_model", "speechlab_dataset", "speechlab_eval", "speechlab_grade", "speechlab_min_grade", "speechlab_thresholds"]


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


@pytest.fixture
def speechlab_thresholds(speechlab_session: Engine, speechlab_model) -> dict[str, float]:
    """Thresholds for the model under test, from ``[tool.speechlab.thresholds]``."""
    return speechlab_session.thresholds(speechlab_model.name)
