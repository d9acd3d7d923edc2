"""What the driver of an engine chooses: the selection and progress display (``Frontend``) and how
model calls are executed (``make_executor``)."""
from __future__ import annotations

from .._types import SpeechlabError
from .executors import ProcessExecutor, SerialExecutor
from .ray_executor import RayExecutor


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def advance(self, audio_seconds: float) -> None:
        return None


class Frontend:
    """What the engine asks of whoever drives it: the selected model names and speech-set
    references, a progress display, and objects with hook implementations beside the installed
    entry points. This one: the lists it was given, no display, no local hooks."""

    def __init__(self, models: list | tuple = (), datasets: list | tuple = ()) -> None:
        self._models, self._datasets = list(models), list(datasets)

    def models(self, engine) -> list[str]:
        return list(self._models)

    def datasets(self, engine) -> list[str]:
        return list(self._datasets)

    def progress(self, label: str, total: int):
        return _NoProgress()

    def local_plugins(self) -> list:
        return []


def make_executor(kind: str = "local", workers: int = 1, threads: int | None = None, address: str | None = None,
                  isolate: bool = False, ray_audio: str = "ship"):
    """``local``: serial with one worker (or, with ``isolate``, one worker process: a model that
    crashes loses only its utterance), worker processes with more; ``ray``: Ray actors."""
    if workers < 1:
        raise SpeechlabError(f"--speechlab-workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise SpeechlabError(f"--speechlab-threads must be at least 1, got {threads}")
    if kind == "ray":
        return RayExecutor(workers, threads, address, audio=ray_audio)
    if kind != "local":
        raise SpeechlabError(f"--speechlab-executor {kind!r}: choose local or ray")
    return ProcessExecutor(workers, threads) if workers > 1 or isolate else SerialExecutor()
