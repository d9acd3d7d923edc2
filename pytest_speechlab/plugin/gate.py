"""The regression suite's fixtures: the comparison with --speechlab-baseline."""
from __future__ import annotations

import pytest

from ..engine.pipeline import Engine

__all__ = ["speechlab_regression", "speechlab_fail_on_regression"]


@pytest.fixture(scope="session")
def speechlab_regression(speechlab_session: Engine, speechlab_eval):
    """The comparison with ``--speechlab-baseline`` (a Comparison), or a str saying why there is none.
    Tests using it are deselected when no baseline is given."""
    return speechlab_session.gate.compare(speechlab_eval)


@pytest.fixture(scope="session")
def speechlab_fail_on_regression(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.option.speechlab_fail_on_regression
