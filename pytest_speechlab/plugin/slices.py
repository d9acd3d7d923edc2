"""The slice suite's fixture: an evaluation broken down by --speechlab-slice / [tool.speechlab.slices]."""
from __future__ import annotations

import pytest

from ..engine.pipeline import Engine

__all__ = ["speechlab_slices"]


@pytest.fixture(scope="session")
def speechlab_slices(speechlab_session: Engine, speechlab_eval):
    """The evaluation's slices by every configured field (a list of ``metrics.slices.FieldSlices``).
    Tests using it are deselected when no slice field is configured."""
    return speechlab_session.features["slices"].of(speechlab_eval)
