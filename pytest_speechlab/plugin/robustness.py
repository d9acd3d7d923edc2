"""The robustness and property suites' fixtures (opt-in: --speechlab-robustness, --speechlab-properties)."""
from __future__ import annotations

import pytest

from .._text import terminal
from .._types import SpeechlabError
from ..engine.pipeline import Engine
from ..metamorphic import MetamorphicCheck
from .session import session_key

__all__ = ["speechlab_robustness", "speechlab_metamorphic"]


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
