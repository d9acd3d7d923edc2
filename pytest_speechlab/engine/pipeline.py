"""The evaluation engine: selection -> plan -> execute -> score -> record, without pytest.

``Engine`` holds what one evaluation session needs (settings, registry, model pool, runner, results
store, inference cache) and evaluates a model on a speech set: the runner executes (only cache misses
reach it), each output is scored as it arrives and recorded in batches, and the result is an
``EvalResult``. Every task's items go through the same loop (``run_items``: the runner, the session's
executor, the inference cache). What goes beyond one model on one set lives in ``features`` (TTS,
chat, the regression gate, robustness, cross-runtime and batch comparisons), each built here with the
engine and asked the same questions (``engine.features.Feature``).

Whoever drives the engine is its ``Frontend``: the selection, the progress display and local hook
implementations. ``evaluate_models`` drives it from Python or the ``speechlab`` command; the pytest
plugin holds one engine per session and is its frontend.
"""
from __future__ import annotations

import functools
import hashlib
import os
import time
import warnings
from pathlib import Path
from typing import Any

from .._config import SpeechlabConfig, check_repeats
from .._dataset import Dataset
from .._machine import ContentionProbe, environment, git_state, machine
from .._perturb import chain_label, missing_library, parse_chain, split_dataset_ref
from .._registry import build_registry, make_plugin_manager
from .._text import redact, redact_args
from .._types import Call, SpeechlabError
from ..grading import grade_model
from ..metrics.normalize import get_normalizer
from ..sinks.recorder import RunRecorder
from ..sinks.store import Store, run_metadata
from ..tasks import ASR
from .cache import CachedRun, OutputCache, cache_audit
from .executors import threads_environment
from .features import FEATURES
from .frontend import Frontend, make_executor
from .runner import ModelPool, Runner, batch_size

FLUSH_SECONDS = 2.0  # utterance rows wait at most this long before they are written (and seen live)


def _timing(output) -> tuple[float, float] | None:
    """(audio seconds, processing seconds) of a timed output of any task; None for a failed one."""
    if isinstance(output, Call):
        value = output.invocation.value
        return None if output.invocation.error else (getattr(value, "seconds", 0.0), output.invocation.seconds)
    return None if output.transcript is None else (output.audio_seconds, output.processing_seconds)


class Engine:
    """One evaluation session's state and the evaluation itself (no pytest here)."""

    def __init__(self, settings: SpeechlabConfig, root: Path, *, db_url: str | None, repeats: int | None = None,
                 cache_mode: str | None = None, retime: int | None = None, args: list[str] | tuple = (),
                 plugins: list | tuple = (), workers: int = 1, threads: int | None = None,
                 executor: str = "local", ray_address: str | None = None, frontend: Frontend | None = None,
                 isolate: bool | None = None, ray_audio: str = "ship") -> None:
        self.settings = settings
        self.root = Path(root)
        self._db_url = db_url  # None: nothing is recorded (and nothing cached)
        self.args = redact_args(list(args))
        self.cache_mode = cache_mode or settings.cache
        # every utterance decoded this many times, every repeat scored (nondeterminism measured)
        self.repeats = settings.repeats if repeats is None else check_repeats(repeats, "--speechlab-repeat")
        self.retime = settings.retime if retime is None else retime
        if self.retime < 0:
            raise SpeechlabError(f"--speechlab-retime {self.retime}: give the number of utterances to time again "
                                 "(0: speed is not judged on cached outputs)")
        self.frontend = frontend or Frontend()
        self._datasets: dict[str, Any] = {}
        self.results: dict[tuple[str, str], Any] = {}
        self.notices: list[str] = []
        # the results database, the run started at the first write
        self.recorder = RunRecorder(db_url, lambda: run_metadata(self.git, get_normalizer(settings.normalizer).label,
                                                                  self.run_config()), self.notices)
        self._cache = None
        self.pool = ModelPool()
        isolate = settings.isolate if isolate is None else isolate  # the model in a worker process even alone
        self.runner = Runner(executor=make_executor(executor, workers, threads, ray_address, isolate, ray_audio),
                             repeats=self.repeats, timeout=settings.utterance_timeout, seed=settings.seed)
        if threads and self.runner.executor.workers == 1:  # models built in this process read it
            os.environ.update(threads_environment(threads))
        self._registry = None
        self._plugins = list(plugins)  # objects with speechlab hook implementations, beside the entry points
        self._serialized: tuple | None = None  # (the evaluations it was built from, the serialized form)
        self.features: dict[str, Any] = {cls.name: cls(self) for cls in FEATURES}  # plugins' join with the registry
        self.tts, self.chat, self.gate = self.features["tts"], self.features["chat"], self.features["gate"]
        self.robustness, self.cross_runtime, self.batching = (self.features[name] for name in
                                                              ("robustness", "cross_runtime", "batching"))

    # -- selection ------------------------------------------------------------------------------

    @property
    def registry(self):
        if self._registry is None:
            registry = build_registry(make_plugin_manager([*self._plugins, *self.frontend.local_plugins()]))
            # a variant or thresholds of a model whose plugin is not installed here (a project's optional
            # models) are said only when that model is selected: a first run has no warning about them
            registry.add_variants(self.settings.variants, self.settings.source)
            self.settings.check_models(set(registry.models))  # a near miss of a registered name: an error
            self._registry = registry
            for cls in registry.features:
                self.features.setdefault(cls.name, cls(self))
            for name in set(self.settings.features) - set(self.features):
                warnings.warn(f"[tool.speechlab.features.{name}]: no feature named {name!r} is installed "
                              f"(installed: {', '.join(self.features)})", stacklevel=2)
        return self._registry

    def selected_models(self, task: str | None = None) -> list[str]:
        """The selected models (of one task when given); an unknown name stops the run with the
        list of known ones."""
        names = list(dict.fromkeys(self.frontend.models(self)))
        return [n for n in names if task is None or self.registry.model(n).task == task]

    def selected_datasets(self) -> list[str]:
        return list(dict.fromkeys(self.frontend.datasets(self)))

    def progress(self, label: str, total: int):
        return self.frontend.progress(label, total)

    def run_config(self) -> dict:
        """What the run row records of the configuration."""
        return {"models": self.selected_models(), "datasets": self.selected_datasets(), "args": self.args,
                "repeats": self.repeats, "seed": self.settings.seed}

    def dataset(self, ref: str):
        """A registered speech set, a path (named relative to the rootdir, so that runs from other
        folders compare), or either followed by a perturbation chain: ``speechlab/speech+noise:snr=10``."""
        if ref not in self._datasets:
            base, chain = split_dataset_ref(ref, lambda r: r in self.registry.datasets or Path(r).exists())
            if chain:
                self._datasets[ref] = self.perturbed(self.dataset(base), chain)
            elif ref in self.registry.datasets:
                self._datasets[ref] = ASR.load(self._registered(ref, ASR), name=ref, formats=self.registry.formats)
            else:
                path = Path(ref).resolve()
                root = self.root
                self._datasets[ref] = ASR.load(path, name=str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
                                                 formats=self.registry.formats)
        return self._datasets[ref]

    def load_set(self, task, ref: str):
        """A TTS text set or chat prompt set: registered, or a path relative to the rootdir."""
        path = self._registered(ref, task) if ref in self.registry.datasets else self.root / ref
        return task.load(path, name=ref)

    def _registered(self, ref: str, task) -> str:
        """The path of a registered set, which must be of the kind the task reads."""
        spec = self.registry.datasets[ref]
        if spec.kind != task.set_kind:
            raise SpeechlabError(f"{ref!r} is a {spec.kind}, not a {task.set_kind}: "
                                 + {"speech set": "select it with --speechlab-dataset",
                                    "TTS text set": "name it in [tool.speechlab.tts] texts",
                                    "chat prompt set": "name it in [tool.speechlab.chat] prompts"}.get(spec.kind, ""))
        return spec.path

    def perturbed(self, dataset, chain: str | tuple):
        """``dataset`` heard through ``chain`` (text, or parsed steps): the same utterance ids, its
        name the clean one's + the canonical chain."""
        import dataclasses

        steps = parse_chain(chain, self.settings.perturbations) if isinstance(chain, str) else chain
        if problem := missing_library(steps):
            raise SpeechlabError(problem)
        name = f"{dataset.name}+{chain_label(steps)}"
        if dataset.name in self.settings.dataset_languages:  # heard through a chain, it is the same language
            self.settings.dataset_languages.setdefault(name, self.settings.dataset_languages[dataset.name])
        if name not in self._datasets:
            self._datasets[name] = Dataset(name, dataset.path, [dataclasses.replace(u, perturbation=u.perturbation + steps)
                                                                for u in dataset.utterances], list(dataset.errors))
        return self._datasets[name]

    def thresholds(self, model: str) -> dict[str, float]:
        base = self.registry.model(model).base
        return {metric: self.settings.threshold(metric, model, base) for metric in self.settings.thresholds}

    def derived(self, loaded, name: str, params: dict, source: str):
        """A variant of a selected model that a suite needs (registered once under ``name``), built."""
        if name not in self.registry.models:
            self.registry.models[name] = loaded.spec.variant(name, params, source)
        return self.pool.get(self.registry.model(name))

    # -- the results database ------------------------------------------------------------------

    @functools.cached_property
    def git(self) -> tuple[str | None, bool | None, str | None]:
        """(commit, dirty, commit time) of the checkout at the root: asked once per session, for the
        database row, the HTML report and the exports."""
        return git_state(self.root)

    def db_url(self) -> str | None:
        return self._db_url

    # -- evaluating ------------------------------------------------------------------------------

    def evaluate(self, loaded, dataset) -> Any:
        key = (loaded.name, dataset.name)
        if key not in self.results:
            self.results[key] = self.scored_run(
                loaded, loaded, dataset.name, dataset.utterances, list(dataset.errors),
                environment(loaded.info, batch_size(loaded), self.runner.executor_for(loaded)))
        return self.results[key]

    def scored_run(self, subject, transcriber, dataset_name: str, utterances, errors, env, adjust=None, info=None,
                   retimed=None):
        """Run ``transcriber`` over ``utterances``, score each output as it comes, record it in batches.
        ``subject`` is the model the result is about (the transcriber itself, or a TTS model whose
        audio a judge transcribes; ``info`` then adds the judge's identity); ``adjust`` may rewrite
        each output first (the TTS timing) and ``retimed`` then gives the re-timed sample of its
        cached outputs (the transcriber's own are re-timed here)."""
        info = info or subject.info
        seeded = self.runner.seed is not None and callable(getattr(transcriber.instance, "seed", None))
        seeding = (f"seed({self.runner.seed}, utterance id, repeat) before every call" if seeded else
                   "not seeded: the model has no seed()" if self.runner.seed is not None else "seeding off (seed = false)")
        env = {**env, "repeats": self.repeats, "seed": self.runner.seed if seeded else None, "seeding": seeding}
        self.recorder.model(info, subject.load_seconds)
        self.recorder.progress(subject.name, dataset_name, len(utterances))
        normalizers = self.settings.language_normalizers(dataset_name)
        scored, pending = [], []

        flushed = time.monotonic()

        def flush() -> None:
            nonlocal flushed
            self.recorder.utterances(subject.name, dataset_name, list(pending))
            pending.clear()
            flushed = time.monotonic()

        def on_output(output) -> None:
            progress.advance(output.audio_seconds)
            scored.append(ASR.score(adjust(output) if adjust else output, normalizers, self.settings.hallucination))
            pending.append(scored[-1].row())
            # a batch is full, or a slow model has kept rows waiting: the viewer shows a run as it goes
            if len(pending) >= Store.BATCH or time.monotonic() - flushed >= FLUSH_SECONDS:
                flush()

        cache = self.output_cache()
        cached = CachedRun(self.runner, cache)
        found = cached.lookup(transcriber, utterances)
        # speed is never judged on cached timings alone, and cached outputs are audited: a sample of
        # them is decoded and timed again before the evaluation (a stale cache is then recomputed whole)
        if adjust is None and self.retime and found[1]:
            retimed = self.retime_sample(transcriber, dataset_name, utterances, found[1])
        probe = ContentionProbe()
        started = time.perf_counter()
        with self.progress(f"{transcriber.name} x {dataset_name}", len(utterances)) as progress:
            cached.run(transcriber, utterances, on_output, found)
        self._said(cache)
        wall = time.perf_counter() - started
        contention = probe.finish(self.settings.busy_tolerance)
        flush()
        events = getattr(self.runner.executor, "events", None)
        if events:  # worker deaths and retries, said in the summary and kept with the evaluation
            self.notices += [f"{transcriber.name} on {dataset_name}: {event}" for event in events]
            env = {**env, "worker_events": list(events)}
            events.clear()
        order = {u.id: i for i, u in enumerate(utterances)}  # cached outputs arrive first: keep the set's order
        scored.sort(key=lambda u: order.get(u.utterance.id, len(order)))
        result = ASR.summarize(subject.name, dataset_name, normalizers, scored, errors,
                            model_info=info, load_seconds=subject.load_seconds, environment=env,
                            wall_seconds=wall, workers=self.runner.executor_for(transcriber).workers,
                            contention=contention, unstable=self.settings.unstable,
                            min_samples=dict(self.settings.min_samples))
        if retimed is not None:
            result.cache_audit = retimed.pop("audit")
            if result.cached_count:
                result.retimed = retimed
        self.recorder.aggregate(subject.name, dataset_name, result.summary(), result.environment)
        return result

    def run_items(self, loaded, items: list, label: str) -> tuple[list, dict]:
        """Every item's output in order, through the runner's one loop (the session's executor, the
        inference cache), with progress shown; and the outputs that came from the cache."""
        cache = self.output_cache()
        cached = CachedRun(self.runner, cache)
        found = cached.lookup(loaded, items)
        outputs = {}
        with self.progress(label, len(items)) as progress:
            def on_output(output) -> None:
                outputs[output.item_id] = output
                progress.advance((_timing(output) or (0.0, 0.0))[0])

            cached.run(loaded, items, on_output, found)
        self._said(cache)
        return [outputs[item.id] for item in items], found[1]

    def _said(self, cache) -> None:
        """What the cache has to say (it stopped: its database failed; rows it could not decode), once
        each; the run went on without it."""
        for message in cache.said if cache is not None else ():
            if message not in self.notices:
                self.notices.append(message)
                warnings.warn(message, stacklevel=3)

    def output_cache(self):
        """The inference cache of this session (None without a results database, or when off)."""
        if self._cache is None:  # it lives in the results database
            mode, store = self.cache_mode, self.recorder.open()
            self._cache = OutputCache(store if mode != "off" else None, mode, self.recorder.run_id,
                                      {"cpu": machine()["cpu"], "host": machine()["host"]})
        return self._cache if self._cache.store is not None else None

    def retime_sample(self, model, set_name: str, items: list, hits: dict) -> dict:
        """Speed is never judged on cached timings alone: a deterministic sample of the items the
        cache has (``[tool.speechlab] retime``, default 20, or all when fewer) is run and timed
        again here, with the machine's contention measured meanwhile. The re-computed outputs audit
        the cache: one that differs from its cached output (neither decoded with sampling) means
        the cached outputs no longer come from this model (a changed service behind the same URL,
        an environment variable): that model's cached outputs are stale for the session and
        recomputed whole. A difference where sampling was used is nondeterminism, and counted as
        such (``hits``: the cached outputs)."""
        sample = sorted((u for u in items if u.id in hits),
                        key=lambda u: hashlib.sha256(u.id.encode("utf-8", "surrogatepass")).hexdigest())[: self.retime]
        with self.progress(f"{model.name} x {set_name} (re-timing {len(sample)} cached)", len(sample)) as progress:
            probe = ContentionProbe()
            outputs = []
            # where the outputs were computed: the session's executor (a crash stays in a worker)
            for output in self.runner.executor_for(model).run(self.runner, model, self.runner.plan(model, sample)):
                outputs.append(output)
                progress.advance((_timing(output) or (0.0, 0.0))[0])
            contention = probe.finish(self.settings.busy_tolerance)
        timed = [t for o in outputs if (t := _timing(o)) is not None]
        audio, seconds = sum(a for a, _ in timed), sum(s for _, s in timed)
        audit = cache_audit(hits, outputs)
        if audit["stale"]:
            self.output_cache().stale.add(model.name)
            self.notices.append(redact(
                f"inference cache: {audit['stale']} of {audit['compared']} re-computed outputs of {model.name} "
                f"differ from their cached ones without sampling ({', '.join(audit['stale_ids'][:5])}): its cached "
                "outputs are stale (the model changed behind the same identity) and were recomputed in this session"))
        return {"utterances": len(timed), "audio_seconds": audio, "processing_seconds": seconds,
                "rtf": seconds / audio if audio else None, "contention": contention, "audit": audit}

    def grade(self, model: str):
        aside = self.aside()
        grade = grade_model(model, [r for (name, dataset), r in self.results.items()
                                    if name == model and dataset not in aside], self.settings.grades)
        for feature in self.features.values():
            grade = feature.cap(grade, model)
        return grade

    def grades(self) -> dict:
        return {model: self.grade(model) for model in dict.fromkeys(m for m, _ in self.results)}

    def aside(self) -> set[str]:
        """Speech sets whose evaluations a feature shows in its own section (not as evaluations)."""
        return set().union(*(feature.aside() for feature in self.features.values()))

    def serialized(self) -> dict:
        """Everything this session evaluated, in the serialized form every sink reads. Built once
        for the sinks at the end of a session (terminal, report files, pytest-html); again only when
        an evaluation was added since."""
        everything = [*self.results.values(), *(e for f in self.features.values() for e in f.evaluations())]
        key = tuple(map(id, everything))
        if self._serialized is None or self._serialized[0] != key:
            aside = self.aside()
            record = {"evaluations": [r.serialized() for (_, d), r in self.results.items() if d not in aside]}
            for feature in self.features.values():
                record.update(self.asked(feature, "serialized", {}))
            self._serialized = (key, record)
        return self._serialized[1]

    def asked(self, feature, question: str, otherwise: Any) -> Any:
        """A feature's answer to ``serialized`` or ``report_lines``; a feature that raises is said
        once in the summary and costs no other feature or sink its data."""
        try:
            return getattr(feature, question)()
        except Exception as exc:  # noqa: BLE001 - a plugin's feature
            notice = redact(f"feature {feature.name!r}: {question}() failed: {type(exc).__name__}: {exc}")
            if notice not in self.notices:
                self.notices.append(notice)
            return otherwise

    def finish(self, outcomes: list[dict] = ()) -> None:
        """Record the test outcomes (if any), each model's grade, and that the run finished."""
        if self.recorder.run_id is None:
            return
        if outcomes:  # setup and call may both report: the last word per test wins
            self.recorder.outcomes(list({o["nodeid"]: o for o in outcomes}.values()))
        for model in dict.fromkeys(m for m, _ in self.results):
            grade = self.grade(model)
            self.recorder.grade(model, grade.grade, grade.reason)
        self.recorder.finish()
