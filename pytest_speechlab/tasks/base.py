"""The task abstraction every task module fills in (see ``tasks/__init__``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def _no_repeat(instance: Any) -> int:
    return 0


@dataclass(frozen=True)
class Task:
    """What a model is asked to do, in one shape for every task: items -> invoke -> score -> summarize.

    ``call(instance, request) -> (output, timing)`` is the model invocation the runner times (it
    raises on a model error or an output of the wrong type); ``timing`` is the seconds to the first
    streamed piece, or None, or for a service's event stream the dict of its timings and faults
    (``tasks.asr.read_events``). ``load(path, name)`` reads the task's items; ``score`` turns one
    output into a scored item and ``summarize`` scored items into the evaluation's result, whose
    ``summary()`` every sink reads.

    For a task whose items are not audio (TTS texts, chat prompts) the runner invokes the model on
    ``request(item)``, ``again(instance)`` more times untimed (a determinism check), and the
    inference cache keeps ``encode(value)`` (JSON) under a key made of the model's identity and
    ``request(item)``, giving back ``decode(record)``. ASR items are utterances, read and checked by
    the runner itself (``Runner.run_unit``)."""

    name: str  # the ``task`` a model registers with
    methods: tuple[str, ...]  # an instance implements at least one
    protocol: str  # as the documentation names it, for the load-time error
    call: Callable[[Any, Any], tuple[Any, float | None]]
    load: Callable[..., Any] | None = None
    score: Callable[..., Any] | None = None
    summarize: Callable[..., Any] | None = None
    request: Callable[[Any], Any] | None = None
    again: Callable[[Any], int] = _no_repeat
    encode: Callable[[Any], dict] | None = None
    decode: Callable[[dict], Any] | None = None
    item_kind: str = "item"  # what one item is called (utterance, text, prompt)
    set_kind: str = "speech set"  # what a set of its items is called (``_registry.SET_KINDS``)
