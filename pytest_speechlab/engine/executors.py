"""Executors: how the runner's invocations are run. Only cache misses reach an executor.

Serial in this process is the default (the right thing for timing); batching, worker processes and
Ray actors are further executors behind the same seam.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Protocol

from .._types import Output, Utterance


class Executor(Protocol):
    def map(self, fn: Callable[[Utterance], Output], items: Iterable[Utterance]) -> Iterator[Output]: ...


class SerialExecutor:
    """Runs utterances one after another in this process."""

    def map(self, fn, items):
        for item in items:
            yield fn(item)
