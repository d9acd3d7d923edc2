"""The task abstraction every task module fills in (see ``tasks/__init__``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Task:
    """What a model is asked to do.

    ``call(instance, request) -> (output, timing)`` is the
    model invocation the runner times (it raises on a model error or an output of the wrong type);
    ``timing`` is the seconds to the first streamed piece, or None, or for a service's event stream
    the dict of its timings and faults (``tasks.asr.read_events``);
    ``load(path, name)`` reads the task's items; ``score`` turns one output into a scored item and
    ``summarize`` scored items into the evaluation's result, whose ``summary()`` every sink reads."""

    name: str  # the ``task`` a model registers with
    methods: tuple[str, ...]  # an instance implements at least one
    protocol: str  # as the README names it, for the load-time error
    call: Callable[[Any, Any], tuple[Any, float | None]]
    load: Callable[..., Any] | None = None
    score: Callable[..., Any] | None = None
    summarize: Callable[..., Any] | None = None
