"""Evaluating models from Python (and the ``speechlab`` command), without pytest."""
from __future__ import annotations

import os
from pathlib import Path

from .._config import load_config
from ..sinks.store import normalize_url
from .frontend import Frontend
from .pipeline import Engine


def evaluate_models(models: list[str], datasets: list[str], *, pyproject: str | os.PathLike | None = "pyproject.toml",
                    db: str | None = None, cache: str | None = None, retime: int | None = None, repeats: int | None = None,
                    plugins: list | tuple = (),
                    workers: int = 1, threads: int | None = None, executor: str = "local",
                    ray_address: str | None = None, isolate: bool | None = None, ray_audio: str = "ship") -> list:
    """Evaluate each model on each dataset, outside pytest; returns the ``EvalResult`` of each pair.

    ``models`` are registered names (entry-point plugins and ``[tool.speechlab.models]`` variants
    of ``pyproject``); ``datasets`` registered names or manifest/folder paths. ``db`` is a SQLAlchemy
    URL or SQLite path to record the run in (and to keep the inference cache in); without it nothing
    is recorded or cached; ``cache`` and ``retime`` are ``--speechlab-cache`` and
    ``--speechlab-retime``. ``plugins``: objects with ``@hookimpl`` registration functions, beside
    the installed entry points. Errors in inputs are in each result's ``errors``; a model that cannot
    be built raises ``ModelLoadError``.

        from pytest_speechlab import evaluate_models
        (result,) = evaluate_models(["faster-whisper/tiny.en"], ["speechlab/speech"], db="results.db")
        print(result.wer, result.wer_ci, result.rtf, result.hallucination_rate)
    """
    pyproject = Path(pyproject) if pyproject and Path(pyproject).is_file() else None
    root = pyproject.parent if pyproject else Path.cwd()
    engine = Engine(load_config(pyproject), root, db_url=normalize_url(db, root) if db else None,
                    repeats=repeats, cache_mode=cache, retime=retime, args=["evaluate_models()"], plugins=plugins,
                    workers=workers, threads=threads, executor=executor, ray_address=ray_address, isolate=isolate, ray_audio=ray_audio,
                    frontend=Frontend(models, datasets))
    results = []
    try:
        for name in models:
            loaded = engine.pool.get(engine.registry.model(name))
            for ref in datasets:
                results.append(engine.evaluate(loaded, engine.dataset(ref)))
        engine.finish()
    finally:
        engine.pool.close()
        engine.runner.executor.close()
    return results
