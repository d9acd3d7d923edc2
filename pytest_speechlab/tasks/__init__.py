"""Tasks: what a model is asked to do, as one shape (Inspect AI's Task(dataset, solver, scorer)).

Each task module defines one :class:`Task`: how to read its items, how to invoke a model on one
request (the part the runner times), how to score an output and what an evaluation's result is.
The runner is the only code that invokes a model, with one warm-up, timer, timeout and error path
for every task; the engine composes tasks (the spoken-question pipeline is TTS -> ASR -> chat).
"""
from __future__ import annotations

from typing import Any

from .asr import ASR, asr_problem
from .base import Task
from .chat import CHAT, EMBEDDING
from .tts import TTS

TASKS: dict[str, Task] = {task.name: task for task in (ASR, TTS, CHAT, EMBEDDING)}


def protocol_problem(task: str, instance: Any, params: dict | None = None) -> str | None:
    """What the instance lacks of its task's protocol (and, for ASR, of what its parameters ask:
    a batch method, a language hint), checked once at load; None when it is fine."""
    spec = TASKS.get(task)
    if spec is not None and not any(callable(getattr(instance, m, None)) for m in spec.methods):
        return (f"its instance ({type(instance).__name__}) does not implement the {task} protocol "
                f"({spec.protocol})")
    return asr_problem(instance, params or {}) if task == "asr" else None
