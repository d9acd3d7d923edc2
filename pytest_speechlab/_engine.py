"""The evaluation engine: selection -> plan -> execute -> score -> record, without pytest.

``Engine`` holds what one evaluation session needs (settings, registry, model pool, runner, results
store, inference cache) and evaluates a model on a dataset: the runner executes (only cache misses
reach it), each output is scored as it arrives and recorded in batches, and the result is an
``EvalResult``. The pytest plugin is a subclass that takes its selection and progress display from
pytest; ``evaluate_models`` uses the engine directly, from Python or the ``speechlab`` command.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ._config import SpeechlabConfig, load_config
from ._text import redact, redact_args
from ._types import SpeechlabError


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def advance(self, audio_seconds: float) -> None:
        return None


class Engine:
    """One evaluation session's state and the evaluation itself (no pytest here)."""

    def __init__(self, settings: SpeechlabConfig, root: Path, *, db_url: str | None, repeats: int = 1,
                 cache_mode: str | None = None, retime: int | None = None, args: list[str] | tuple = (),
                 plugins: list | tuple = ()) -> None:
        from ._runner import ModelPool, Runner

        self.settings = settings
        self.root = Path(root)
        self._db_url = db_url  # None: nothing is recorded (and nothing cached)
        self.args = redact_args(list(args))
        self.cache_mode = cache_mode or settings.cache
        self.retime = retime or settings.retime
        if self.retime < 1:
            raise SpeechlabError("--speechlab-retime must be at least 1: speed is never judged on cached timings alone")
        self._datasets: dict[str, Any] = {}
        self.results: dict[tuple[str, str], Any] = {}
        self.tts_evals: dict[tuple[str, str], Any] = {}
        self.store = None  # opened at the first evaluation
        self.run_id: str | None = None
        self.store_problem: str | None = None
        self.notices: list[str] = []
        self._cache = None
        self.pool = ModelPool()
        self.runner = Runner(repeats=repeats, timeout=settings.utterance_timeout)
        self._registry = None
        self._plugins = list(plugins)  # objects with speechlab hook implementations, beside the entry points

    # -- selection (the pytest plugin takes it from its options) ---------------------------------

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.build_registry()
        return self._registry

    def build_registry(self, extra_plugins=()):
        from ._registry import build_registry, make_plugin_manager

        registry = build_registry(make_plugin_manager([*self._plugins, *extra_plugins]))
        registry.add_variants(self.settings.variants, self.settings.source)
        for absent in self.settings.check_models(set(registry.models)):
            warnings.warn(absent, stacklevel=3)
        return registry

    def selected_models(self, task: str | None = None) -> list[str]:
        return sorted({name for name, _ in self.results})

    def selected_datasets(self) -> list[str]:
        return sorted({dataset for _, dataset in self.results})

    def progress(self, label: str, total: int):
        return _NoProgress()

    def run_config(self) -> dict:
        """What the run row records of the configuration."""
        return {"models": self.selected_models(), "datasets": self.selected_datasets(), "args": self.args}

    def dataset(self, ref: str):
        if ref not in self._datasets:
            from ._dataset import load_dataset

            spec = self.registry.datasets.get(ref)
            if spec:
                self._datasets[ref] = load_dataset(spec.path, name=ref)
            else:  # named relative to the rootdir, so that runs from other folders compare
                path = Path(ref).resolve()
                root = self.root
                self._datasets[ref] = load_dataset(path, name=str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
        return self._datasets[ref]

    def thresholds(self, model: str) -> dict[str, float]:
        base = self.registry.model(model).base
        return {metric: self.settings.threshold(metric, model, base) for metric in self.settings.thresholds}

    # -- the results database ------------------------------------------------------------------

    def _open_store(self) -> None:
        """Open the store and start this run's row, once; a database problem warns, never stops."""
        if self.store is not None or self.store_problem or self.db_url() is None:
            return
        from ._store import Store, run_metadata

        try:
            store = Store(self.db_url())
            from ._normalize import get_normalizer

            self.run_id = store.start_run(run_metadata(self.root, get_normalizer(self.settings.normalizer).label,
                                                       self.run_config()))
            self.store = store
        except Exception as exc:  # noqa: BLE001
            self._store_failed(exc)

    def db_url(self) -> str | None:
        return self._db_url

    def _store_failed(self, exc: BaseException) -> None:
        self.store, self.store_problem = None, redact(f"results database not written: {type(exc).__name__}: {exc}")
        warnings.warn(self.store_problem, stacklevel=2)

    def _write(self, method: str, *args) -> None:
        if self.store is not None:
            from ._store import RowsRejected

            try:
                getattr(self.store, method)(self.run_id, *args)
            except RowsRejected as exc:  # the other rows were written: keep recording
                self.notices.append(redact(str(exc)))
                warnings.warn(self.notices[-1], stacklevel=2)
            except Exception as exc:  # noqa: BLE001
                self._store_failed(exc)

    def evaluate(self, loaded, dataset) -> Any:
        key = (loaded.name, dataset.name)
        if key not in self.results:
            from ._runner import environment

            self.results[key] = self.scored_run(
                loaded, loaded, dataset.name, dataset.utterances, list(dataset.errors), environment(loaded))
        return self.results[key]

    def scored_run(self, subject, transcriber, dataset_name: str, utterances, errors, env, adjust=None, info=None):
        """Run ``transcriber`` over ``utterances``, score each output as it comes, record it in batches.
        ``subject`` is the model the result is about (the transcriber itself, or a TTS model whose
        audio a judge transcribes; ``info`` then adds the judge's identity); ``adjust`` may rewrite
        each output first (the TTS timing)."""
        info = info or subject.info
        from ._metrics import EvalResult, score_output
        from ._normalize import get_normalizer
        from ._store import Store, utterance_row

        self._open_store()
        self._write("record_model", info, subject.load_seconds)
        normalizer = get_normalizer(self.settings.normalizer)
        scored, pending = [], []

        def flush() -> None:
            self._write("record_utterances", subject.name, dataset_name, list(pending))
            pending.clear()

        def on_output(output) -> None:
            progress.advance(output.audio_seconds)
            scored.append(score_output(adjust(output) if adjust else output, normalizer, self.settings.hallucination))
            pending.append(utterance_row(scored[-1]))
            if len(pending) >= Store.BATCH:
                flush()

        with self.progress(f"{transcriber.name} x {dataset_name}", len(utterances)) as progress:
            self.runner.run(transcriber, utterances, on_output=on_output, cache=self.output_cache())
        flush()
        order = {u.id: i for i, u in enumerate(utterances)}  # cached outputs arrive first: keep the set's order
        scored.sort(key=lambda u: order.get(u.utterance.id, len(order)))
        result = EvalResult(subject.name, dataset_name, normalizer.label, scored, errors,
                            model_info=info, load_seconds=subject.load_seconds, environment=env)
        if adjust is None and result.cached_count:
            result.retimed = self.retime_sample(transcriber, result)
        self._write("record_aggregate", subject.name, dataset_name, aggregate_metrics(result), result.environment)
        return result

    def output_cache(self):
        """The inference cache of this session (None without a results database, or when off)."""
        if self._cache is None:
            from ._cache import OutputCache
            from ._runner import cpu_name
            import platform

            mode = self.cache_mode
            self._cache = OutputCache(self.store if mode != "off" else None, mode, self.run_id,
                                      {"cpu": cpu_name(), "host": platform.node()})
        return self._cache if self._cache.store is not None else None

    def retime_sample(self, transcriber, result) -> dict:
        """Speed is never judged on cached timings alone: a deterministic sample of the utterances
        (``[tool.speechlab] retime``, default 20, or all when fewer) is timed again here."""
        import hashlib

        processed = [u.utterance for u in result.processed]
        sample = sorted(processed, key=lambda u: hashlib.sha256(u.id.encode("utf-8", "surrogatepass")).hexdigest())
        sample = sample[: self.retime]
        with self.progress(f"{transcriber.name} x {result.dataset} (re-timing {len(sample)} cached)", len(sample)):
            count, audio, seconds = self.runner.retime(transcriber, sample)
        return {"utterances": count, "audio_seconds": audio, "processing_seconds": seconds,
                "rtf": seconds / audio if audio else None}

    def grade(self, model: str):
        from ._grading import grade_model

        results = [r for (name, _), r in self.results.items() if name == model]
        grade = grade_model(model, results, self.settings.grades)
        tts = [e for (name, _), e in self.tts_evals.items() if name == model]
        if tts:
            from ._tts import cap_grade

            grade = cap_grade(grade, tts, self.settings.grades)
        return grade

    def finish(self, outcomes: list[dict] = ()) -> None:
        """Record the test outcomes (if any), each model's grade, and that the run finished."""
        if self.run_id is None:
            return
        if outcomes:  # setup and call may both report: the last word per test wins
            self._write("record_outcomes", list({o["nodeid"]: o for o in outcomes}.values()))
        for model in dict.fromkeys(m for m, _ in self.results):
            grade = self.grade(model)
            self._write("record_grade", model, grade.grade, grade.reason)
        self._write("finish_run")


def aggregate_metrics(result) -> dict:
    """The headline figures of one evaluation, with 95% bootstrap intervals, for the database."""
    flagged, processed = result.hallucination_counts
    return {
        "utterances": len(result.utterances), "processed": processed, "scored": len(result.scored),
        "errors": len(result.errors), "wer": result.wer, "cer": result.cer,
        "wer_ci": result.wer_ci, "cer_ci": result.cer_ci,
        "substitutions": result.words.substitutions, "deletions": result.words.deletions,
        "insertions": result.words.insertions, "reference_words": result.words.reference_length,
        "rtf": result.rtf, "rtfx": result.rtfx, "audio_seconds": result.audio_seconds,
        "processing_seconds": result.processing_seconds, "load_seconds": result.load_seconds,
        "hallucinated": flagged, "hallucination_rate": result.hallucination_rate,
        "speech_hallucination_rate": result.speech_hallucination_rate,
        "nonspeech_hallucination_rate": result.nonspeech_hallucination_rate,
        "insertion_rate": result.insertion_rate, "findings_by_kind": result.findings_by_kind,
        "nondeterminism_rate": result.nondeterminism_rate, "normalizer": result.normalizer,
        "cached": result.cached_count, "computed": result.computed_count, "retimed": result.retimed,
        "speed_rtf": result.speed_rtf,
    }



def evaluate_models(models: list[str], datasets: list[str], *, pyproject: str | os.PathLike | None = "pyproject.toml",
                    db: str | None = None, cache: str | None = None, repeats: int = 1, plugins: list | tuple = ()) -> list:
    """Evaluate each model on each dataset, outside pytest; returns the ``EvalResult`` of each pair.

    ``models`` are registered names (entry-point plugins and ``[tool.speechlab.models]`` variants
    of ``pyproject``); ``datasets`` registered names or manifest/folder paths. ``db`` is a SQLAlchemy
    URL or SQLite path to record the run in (and to keep the inference cache in); without it nothing
    is recorded or cached. ``plugins``: objects with ``@hookimpl`` registration functions, beside
    the installed entry points. Errors in inputs are in each result's ``errors``; a model that cannot
    be built raises ``ModelLoadError``.

        from pytest_speechlab import evaluate_models
        (result,) = evaluate_models(["faster-whisper/tiny.en"], ["speechlab/speech"], db="results.db")
        print(result.wer, result.wer_ci, result.rtf, result.hallucination_rate)
    """
    from ._store import normalize_url

    pyproject = Path(pyproject) if pyproject and Path(pyproject).is_file() else None
    root = pyproject.parent if pyproject else Path.cwd()
    engine = Engine(load_config(pyproject), root, db_url=normalize_url(db, root) if db else None,
                    repeats=repeats, cache_mode=cache, args=["evaluate_models", *models, *datasets], plugins=plugins)
    results = []
    try:
        for name in models:
            loaded = engine.pool.get(engine.registry.model(name))
            for ref in datasets:
                results.append(engine.evaluate(loaded, engine.dataset(ref)))
        engine.finish()
    finally:
        engine.pool.close()
    return results
