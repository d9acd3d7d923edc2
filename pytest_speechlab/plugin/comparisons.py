"""The cross-model suites' fixtures: runtimes of the same weights, a batch size against batch 1."""
from __future__ import annotations

import pytest

from ..engine.pipeline import Engine

__all__ = ["speechlab_runtime_comparison", "speechlab_batch_comparison"]


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
