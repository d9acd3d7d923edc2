"""The evaluation engine: selection -> plan -> execute -> score -> record, without pytest.

``Engine`` holds what one evaluation session needs (settings, registry, model pool, runner, results
store, inference cache) and evaluates a model on a dataset: the runner executes (only cache misses
reach it), each output is scored as it arrives and recorded in batches, and the result is an
``EvalResult``. The pytest plugin is a subclass that takes its selection and progress display from
pytest; ``evaluate_models`` uses the engine directly, from Python or the ``speechlab`` command.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import time
import warnings
from pathlib import Path
from typing import Any

from .._audio import AudioError, read_audio
from .._config import SpeechlabConfig, check_repeats, load_config
from .._dataset import Dataset
from .._machine import ContentionProbe, environment, git_state, machine
from .._perturb import (
    chain_label,
    ladder,
    missing_library,
    parse_chain,
    seeds_of,
    split_dataset_ref,
)
from .._registry import build_registry, make_plugin_manager
from .._text import redact, redact_args
from .._types import InputError, SpeechlabError, Utterance
from ..batching import BatchComparison, batched_name
from ..compare import Side, compare, family_size, judge
from ..crossruntime import (
    COMPARABLE_DECODE,
    RuntimeComparison,
    comparable_name,
    runtime_groups,
)
from ..grading import cap_grade, grade_model
from ..metrics.normalize import get_normalizer
from ..metrics.quality import (
    QualityResult,
    centroid,
    missing_quality_library,
    mos,
    similarity,
    speaker_embedding,
)
from ..metrics.wer import score_words
from ..robustness import Curve, RobustnessEval
from ..sinks.store import RowsRejected, Store, normalize_url, run_metadata
from ..tasks import ASR, CHAT, TTS
from ..tasks.chat import ChatEval, judge_messages, parse_verdict
from ..tasks.spoken import SpokenEval, SpokenItem
from ..tasks.tts import audio_file_name, write_wav
from .cache import OutputCache, cache_audit
from .executors import ProcessExecutor, SerialExecutor, threads_environment
from .ray_executor import RayExecutor
from .runner import ModelLoadError, ModelPool, Runner, batch_size

FLUSH_SECONDS = 2.0  # utterance rows wait at most this long before they are written (and seen live)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def advance(self, audio_seconds: float) -> None:
        return None


def make_executor(kind: str = "local", workers: int = 1, threads: int | None = None, address: str | None = None):
    """``local``: serial with one worker, worker processes with more; ``ray``: Ray actors."""
    if workers < 1:
        raise SpeechlabError(f"--speechlab-workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise SpeechlabError(f"--speechlab-threads must be at least 1, got {threads}")
    if kind == "ray":
        return RayExecutor(workers, threads, address)
    if kind != "local":
        raise SpeechlabError(f"--speechlab-executor {kind!r}: choose local or ray")
    return ProcessExecutor(workers, threads) if workers > 1 else SerialExecutor()


class Engine:
    """One evaluation session's state and the evaluation itself (no pytest here)."""

    def __init__(self, settings: SpeechlabConfig, root: Path, *, db_url: str | None, repeats: int | None = None,
                 cache_mode: str | None = None, retime: int | None = None, args: list[str] | tuple = (),
                 plugins: list | tuple = (), workers: int = 1, threads: int | None = None,
                 executor: str = "local", ray_address: str | None = None) -> None:
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
        self._datasets: dict[str, Any] = {}
        self.results: dict[tuple[str, str], Any] = {}
        self.tts_evals: dict[tuple[str, str], Any] = {}
        self.store = None  # opened at the first evaluation
        self.run_id: str | None = None
        self.store_problem: str | None = None
        self.notices: list[str] = []
        self._cache = None
        self.pool = ModelPool()
        self.runner = Runner(executor=make_executor(executor, workers, threads, ray_address),
                             repeats=self.repeats, timeout=settings.utterance_timeout, seed=settings.seed)
        if threads and self.runner.executor.workers == 1:  # models built in this process read it
            os.environ.update(threads_environment(threads))
        self.comparisons: dict[tuple[str, str], Any] = {}
        self.runtime_comparisons: dict[str, Any] = {}  # dataset -> [RuntimeComparison] or a reason
        self.batch_comparisons: dict[tuple, Any] = {}  # (dataset, size) -> [BatchComparison] or a reason
        self.batch_equivalence: int | None = None  # the batch size the equivalence suite compares with 1
        self.chat_evals: dict[tuple, Any] = {}
        self.robustness: dict[tuple, Any] = {}  # (model, dataset) -> RobustnessEval
        self._reference_speaker = None  # its centroid embedding, once
        self.metamorphic: dict[tuple, Any] = {}  # (model, dataset) -> MetamorphicCheck (the properties suite)
        self.robustness_only: set[str] = set()  # perturbed datasets only the robustness suite evaluated
        self.baseline: str | None = None  # the regression gate's baseline (a name, a run id or 'latest')
        self.fail_on_regression = False
        self.baseline_store = None
        self.baseline_run: str | None = None
        self.gate_issues: list[str] | None = None
        self._gate_judged = False
        self.tts_judge_name: str | None = None  # default: [tool.speechlab.tts] judge
        self.models: list[str] = []  # the selection (the pytest plugin takes it from its options instead)
        self.datasets: list[str] = []
        self._registry = None
        self._plugins = list(plugins)  # objects with speechlab hook implementations, beside the entry points
        self._serialized: tuple | None = None  # (the evaluations it was built from, the serialized form)

    # -- selection (the pytest plugin takes it from its options) ---------------------------------

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.build_registry()
        return self._registry

    def build_registry(self, extra_plugins=()):
        registry = build_registry(make_plugin_manager([*self._plugins, *extra_plugins]))
        missing = registry.add_variants(self.settings.variants, self.settings.source)
        for absent in [*missing, *self.settings.check_models(set(registry.models))]:
            warnings.warn(absent, stacklevel=3)
        return registry

    def selected_models(self, task: str | None = None) -> list[str]:
        return [n for n in self.models if task is None or self.registry.model(n).task == task]

    def selected_datasets(self) -> list[str]:
        return list(self.datasets)

    def progress(self, label: str, total: int):
        return _NoProgress()

    def run_config(self) -> dict:
        """What the run row records of the configuration."""
        return {"models": self.selected_models(), "datasets": self.selected_datasets(), "args": self.args,
                "repeats": self.repeats, "seed": self.settings.seed}

    def dataset(self, ref: str):
        """A registered dataset, a path (named relative to the rootdir, so that runs from other
        folders compare), or either followed by a perturbation chain: ``speechlab/speech+noise:snr=10``."""
        if ref not in self._datasets:
            base, chain = split_dataset_ref(ref, lambda r: r in self.registry.datasets or Path(r).exists())
            if chain:
                self._datasets[ref] = self.perturbed(self.dataset(base), chain)
            elif spec := self.registry.datasets.get(ref):
                self._datasets[ref] = ASR.load(spec.path, name=ref, formats=self.registry.formats)
            else:
                path = Path(ref).resolve()
                root = self.root
                self._datasets[ref] = ASR.load(path, name=str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
                                                 formats=self.registry.formats)
        return self._datasets[ref]

    def perturbed(self, dataset, chain: str | tuple):
        """``dataset`` heard through ``chain`` (text, or parsed steps): the same utterance ids, its
        name the clean one's + the canonical chain."""
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

    # -- the results database ------------------------------------------------------------------

    def _open_store(self) -> None:
        """Open the store and start this run's row, once; a database problem warns, never stops."""
        if self.store is not None or self.store_problem or self.db_url() is None:
            return
        try:
            store = Store(self.db_url())
            self.run_id = store.start_run(run_metadata(self.git, get_normalizer(self.settings.normalizer).label,
                                                       self.run_config()))
            self.store = store
        except Exception as exc:  # noqa: BLE001
            self._store_failed(exc)

    @functools.cached_property
    def git(self) -> tuple[str | None, bool | None, str | None]:
        """(commit, dirty, commit time) of the checkout at the root: asked once per session, for the
        database row, the HTML report and the exports."""
        return git_state(self.root)

    def db_url(self) -> str | None:
        return self._db_url

    def _store_failed(self, exc: BaseException) -> None:
        self.store, self.store_problem = None, redact(f"results database not written: {type(exc).__name__}: {exc}")
        warnings.warn(self.store_problem, stacklevel=2)

    def _write(self, method: str, *args) -> None:
        if self.store is not None:
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
            self.results[key] = self.scored_run(
                loaded, loaded, dataset.name, dataset.utterances, list(dataset.errors),
                environment(loaded.info, batch_size(loaded), self.runner.executor_for(loaded)))
        return self.results[key]

    def scored_run(self, subject, transcriber, dataset_name: str, utterances, errors, env, adjust=None, info=None):
        """Run ``transcriber`` over ``utterances``, score each output as it comes, record it in batches.
        ``subject`` is the model the result is about (the transcriber itself, or a TTS model whose
        audio a judge transcribes; ``info`` then adds the judge's identity); ``adjust`` may rewrite
        each output first (the TTS timing)."""
        info = info or subject.info
        seeded = self.runner.seed is not None and callable(getattr(transcriber.instance, "seed", None))
        seeding = (f"seed({self.runner.seed}, utterance id, repeat) before every call" if seeded else
                   "not seeded: the model has no seed()" if self.runner.seed is not None else "seeding off (seed = false)")
        env = {**env, "repeats": self.repeats, "seed": self.runner.seed if seeded else None, "seeding": seeding}
        self._open_store()
        self._write("record_model", info, subject.load_seconds)
        self._write("record_progress", subject.name, dataset_name, len(utterances))
        normalizers = self.settings.language_normalizers(dataset_name)
        scored, pending = [], []

        flushed = time.monotonic()

        def flush() -> None:
            nonlocal flushed
            self._write("record_utterances", subject.name, dataset_name, list(pending))
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
        found = self.runner.cached(transcriber, utterances, cache)
        # speed is never judged on cached timings alone, and cached outputs are audited: a sample of
        # them is decoded and timed again before the evaluation (a stale cache is then recomputed whole)
        retimed = (self.retime_sample(transcriber, dataset_name, utterances, cache, found[1])
                   if adjust is None and self.retime else None)
        probe = ContentionProbe()
        started = time.perf_counter()
        with self.progress(f"{transcriber.name} x {dataset_name}", len(utterances)) as progress:
            self.runner.run(transcriber, utterances, on_output=on_output, cache=cache, found=found)
        wall = time.perf_counter() - started
        contention = probe.finish(self.settings.busy_tolerance)
        flush()
        events = getattr(self.runner.executor, "events", None)
        if events:  # worker deaths and retries, said in the summary
            self.notices += [f"{transcriber.name} on {dataset_name}: {event}" for event in events]
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
        self._write("record_aggregate", subject.name, dataset_name, result.summary(), result.environment)
        return result

    def output_cache(self):
        """The inference cache of this session (None without a results database, or when off)."""
        if self._cache is None:
            mode = self.cache_mode
            self._cache = OutputCache(self.store if mode != "off" else None, mode, self.run_id,
                                      {"cpu": machine()["cpu"], "host": machine()["host"]})
        return self._cache if self._cache.store is not None else None

    def retime_sample(self, transcriber, dataset_name: str, utterances, cache, hits: dict) -> dict | None:
        """Speed is never judged on cached timings alone: a deterministic sample of the utterances
        the cache has (``[tool.speechlab] retime``, default 20, or all when fewer) is decoded and
        timed again here, with the machine's contention measured meanwhile. The re-decoded
        transcripts audit the cache: one that differs from its cached output (neither decoded with
        sampling) means the cached outputs no longer come from this model (a changed service behind
        the same URL, an environment variable): that model's cached outputs are stale for the
        session and recomputed whole. A difference where sampling was used is nondeterminism, and
        counted as such. None when the cache has none of them (``hits``: its outputs)."""
        if not hits:
            return None
        sample = sorted((u for u in utterances if u.id in hits),
                        key=lambda u: hashlib.sha256(u.id.encode("utf-8", "surrogatepass")).hexdigest())[: self.retime]
        with self.progress(f"{transcriber.name} x {dataset_name} (re-timing {len(sample)} cached)", len(sample)) as progress:
            probe = ContentionProbe()
            outputs = []
            for unit in self.runner.plan(transcriber, sample):
                for output in self.runner.run_unit(transcriber, unit):
                    outputs.append(output)
                    progress.advance(output.audio_seconds)
            contention = probe.finish(self.settings.busy_tolerance)
        timed = [o for o in outputs if o.transcript is not None]
        audio, seconds = sum(o.audio_seconds for o in timed), sum(o.processing_seconds for o in timed)
        audit = cache_audit(hits, timed)
        if audit["stale"]:
            cache.stale.add(transcriber.name)
            self.notices.append(redact(
                f"inference cache: {audit['stale']} of {audit['compared']} re-decoded outputs of {transcriber.name} "
                f"differ from their cached ones without sampling ({', '.join(audit['stale_ids'][:5])}): its cached "
                "outputs are stale (the model changed behind the same identity) and were recomputed in this session"))
        return {"utterances": len(timed), "audio_seconds": audio, "processing_seconds": seconds,
                "rtf": seconds / audio if audio else None, "contention": contention, "audit": audit}

    def grade(self, model: str):
        aside = self._robustness_aside()
        results = [r for (name, dataset), r in self.results.items() if name == model and dataset not in aside]
        grade = grade_model(model, results, self.settings.grades)
        tts = [e for (name, _), e in self.tts_evals.items() if name == model]
        if tts:
            grade = cap_grade(grade, tts, self.settings.grades, self.thresholds(model))
        return grade

    # -- the regression gate ---------------------------------------------------------------------

    def gate_problems(self) -> list[str]:
        """Why the baseline cannot be compared with: no database, no such baseline, or a selected
        model x dataset it has no results for. Checked before any model is built."""
        ref = self.baseline
        if self.db_url() is None:
            return [f"--speechlab-no-db: there is no results database to read baseline {ref!r} from "
                    "(drop --speechlab-no-db, or give --speechlab-db)"]
        try:
            store = self.baseline_store = Store(self.db_url(), read_only=True)
            run_id = self.baseline_run = store.resolve(ref)
            have = store.evaluations(run_id)
        except SpeechlabError as exc:
            return [f"baseline {ref!r}: {exc}"]
        wanted = [(m, self.dataset(d).name) for m in self.selected_models("asr") for d in self.selected_datasets()]
        missing = [f"{m} on {d}" for m, d in wanted if (m, d) not in have]
        if not missing:
            return []
        return [f"baseline {ref!r} (run {run_id[:8]}) has no results for {', '.join(missing)}; it has "
                f"{', '.join(f'{m} on {d}' for m, d in sorted(have)) or 'no results at all'}. Fix: record a run "
                f"with those models and datasets and point the baseline at it (`speechlab baseline set {ref} RUN`), "
                "or select what the baseline has"]

    def check_gate(self) -> list[str]:
        """Before anything is evaluated: with fail_on_regression, a baseline that cannot be compared
        with is a SpeechlabError; otherwise the problems are returned (and kept as notices)."""
        if not self.baseline:
            if self.fail_on_regression:
                raise SpeechlabError("--speechlab-fail-on-regression needs --speechlab-baseline NAME "
                                     "(a name from `speechlab baseline set`, a run id or 'latest')")
            return []
        problems = self.gate_issues = self.gate_problems()
        if problems and self.fail_on_regression:
            raise SpeechlabError("the regression gate cannot compare, so it would pass without judging: "
                                 + "; ".join(problems))
        self.notices += [redact(f"regression comparison: {problem}") for problem in problems]
        return self.notices[-len(problems):] if problems else []

    # -- TTS and chat ----------------------------------------------------------------------------

    def text_set(self, ref: str):
        spec = self.registry.datasets.get(ref)
        return TTS.load(spec.path if spec else self.root / ref, name=ref)

    def tts_judge(self):
        """The ASR model that transcribes synthesized audio (built once, like any model)."""
        name = self.tts_judge_name or self.settings.tts.judge
        return self.pool.get(self.registry.model(name))

    def evaluate_tts(self, loaded, ref: str, folder: Path):
        """Synthesize every text (timed) into ``folder``, check the audio, score the judge's transcripts."""
        import numpy as np

        key = (loaded.name, ref)  # the text set is named by its reference
        if key in self.tts_evals:
            return self.tts_evals[key]
        texts = self.text_set(ref)
        judge = self.tts_judge()
        claims = bool(getattr(loaded.instance, "deterministic", False))
        utterances, timing, problems, differing, errors, clips = [], {}, {}, [], list(texts.errors), {}
        with self.progress(f"{loaded.name} x {texts.name} (synthesis)", len(texts.items)) as progress:
            for item in texts.items:
                out = self.runner.synthesize(loaded, item.text, repeat=claims)
                if out.error:
                    errors.append(InputError(item.source, out.error, item.id))
                    continue
                audio = out.value
                progress.advance(audio.seconds)
                found = TTS.score(audio, item.text, self.settings.tts.sanity)
                if found:
                    problems[item.id] = found
                if out.again and not np.array_equal(audio.samples, out.again[0].samples):
                    differing.append(item.id)
                path = write_wav(folder, audio_file_name(len(timing), item.id), audio)
                utterances.append(Utterance(item.id, str(path), item.text, duration=audio.seconds,
                                            source=item.source))
                timing[item.id] = out.seconds
                clips[item.id] = audio
        quality = self.tts_quality(clips) if self.settings.tts.quality else None

        def synthesis_timing(output):
            # the timing is this session's synthesis; only the judge's transcript may be a cached one
            notes = output.notes + (("judge transcript from the inference cache",) if output.cached else ())
            return dataclasses.replace(output, processing_seconds=timing[output.utterance.id], cached=None, notes=notes)

        env = {**environment(loaded.info), "judge": judge.name,
               "timing": "synthesis timed per text; load and one warm-up call excluded"}
        result = self.scored_run(loaded, judge, texts.name, utterances, errors, env, adjust=synthesis_timing,
                                  info={**loaded.info, "judge": judge.info})
        self.results[key] = result
        self.tts_evals[key] = TTS.summarize(result, judge.name, claims, problems, differing, errors, str(folder), quality)
        self._write("annotate_aggregate", loaded.name, texts.name, "tts", self.tts_evals[key].serialized())
        return self.tts_evals[key]

    def tts_quality(self, clips: dict) -> QualityResult:
        """DNSMOS of each synthesized clip, and each clip's speaker similarity to the reference
        speaker ([tool.speechlab.tts] reference_speaker), else to the centroid of the other clips."""
        problem = missing_quality_library()
        if problem:
            return QualityResult(problem=f"not measured: {problem}")
        result = QualityResult()
        embeddings = {}
        with self.progress("perceptual quality (DNSMOS, speaker embedding)", len(clips)) as progress:
            for item, audio in clips.items():
                progress.advance(audio.seconds)
                try:
                    scores = mos(audio.samples, audio.sample_rate)
                    if scores is None:
                        result.silent.append(item)
                        continue
                    result.mos[item] = scores
                    embeddings[item] = speaker_embedding(audio.samples, audio.sample_rate)
                except Exception as exc:  # noqa: BLE001 - one clip the scorers choke on is that clip's problem
                    result.failed[item] = f"{type(exc).__name__}: {exc}"[:300]
        try:
            reference = self.reference_speaker()
        except SpeechlabError as exc:
            result.problem = f"not measured: {exc}"
            return result
        if reference is not None:
            result.reference = self.settings.tts.reference_speaker
        else:
            result.reference = "the centroid of the voice's other clips (no reference_speaker set)"
        for item, embedding in embeddings.items():
            target = reference if reference is not None else centroid([e for i, e in embeddings.items() if i != item])
            value = similarity(embedding, target)
            if value is not None:
                result.similarity[item] = value
        return result

    def reference_speaker(self):
        """The centroid speaker embedding of [tool.speechlab.tts] reference_speaker's speech clips
        (a dataset, registered or a path; its first 20), or None when none is set."""
        ref = self.settings.tts.reference_speaker
        if ref is None:
            return None
        if self._reference_speaker is None:
            clips = [u for u in self.dataset(ref).utterances if u.kind == "speech"][:20]
            embeddings = []
            for utt in clips:
                with contextlib.suppress(AudioError):
                    raw = read_audio(utt.audio_path, utt.offset, utt.duration)
                    embeddings.append(speaker_embedding(raw.samples, raw.sample_rate))
            self._reference_speaker = centroid(embeddings)
            if self._reference_speaker is None:
                raise SpeechlabError(f"[tool.speechlab.tts] reference_speaker {ref!r}: no speech clip with a voice in it")
        return self._reference_speaker

    def compare_with_baseline(self, result):
        """The comparison of ``result`` with the baseline run's same model x dataset, or a reason why
        none. The first call judges the whole gate: every selected model x dataset is evaluated and
        compared, and the family-wise correction is applied over all of them."""
        if not self._gate_judged:
            self._gate_judged = True
            self._judge_gate()
        return self.comparisons.get((result.model, result.dataset),
                                    f"{result.model} on {result.dataset} is not part of the regression gate")

    def _judge_gate(self) -> None:
        ref = self.baseline
        problems = self.gate_issues if self.gate_issues is not None else self.gate_problems()
        store, run_id = self.baseline_store, self.baseline_run
        pairs = []
        for model in self.selected_models("asr"):
            try:
                loaded = self.pool.get(self.registry.model(model))
            except ModelLoadError:
                continue  # its own tests report the load failure
            for dataset_ref in self.selected_datasets():
                result = self.evaluate(loaded, self.dataset(dataset_ref))
                key = (result.model, result.dataset)
                rows = store.utterances(run_id, *key) if store is not None and run_id else []
                if not rows:
                    self.comparisons[key] = "; ".join(problems) or (
                        f"baseline {ref!r} (run {run_id[:8]}) has no results for {key[0]} on {key[1]}")
                    continue
                run = store.run(run_id)
                identity = next((m.get("info") for m in run["models"] if m["name"] == key[0]), None)
                where = next((a.get("environment") for a in run.get("aggregates", ())
                              if (a.get("model"), a.get("dataset")) == key), None)
                pairs.append((key, Side.from_rows(f"baseline {ref}, run {run_id[:8]}", *key, rows,
                                                  run.get("cpu") or "", identity, where), Side.from_result("this run", result)))
        policy = self.settings.regression
        family = family_size([(base, this) for _, base, this in pairs], policy)
        judged = judge([compare(base, this, policy, family) for _, base, this in pairs], policy)
        for (key, _, _), comparison in zip(pairs, judged):
            self.comparisons[key] = comparison

    def prompt_set(self, ref: str):
        spec = self.registry.datasets.get(ref)
        return CHAT.load(spec.path if spec else self.root / ref, name=ref)

    def relevance_judge(self):
        """The embedding model for chat relevance, or None when it is not installed (said in the summary)."""
        name = self.settings.chat.relevance_judge
        if name not in self.registry.models:
            return None
        try:
            return self.pool.get(self.registry.model(name))
        except ModelLoadError as exc:
            warnings.warn(f"chat relevance not measured: {exc}", stacklevel=2)
            return None

    def evaluate_chat(self, loaded, ref: str):
        key = (loaded.name, ref)  # the prompt set is named by its reference
        if key not in self.chat_evals:
            prompts = self.prompt_set(ref)
            normalizer = get_normalizer(self.settings.normalizer)
            items = []
            with self.progress(f"{loaded.name} x {prompts.name}", len(prompts.prompts)) as progress:
                for prompt in prompts.prompts:
                    items.append(CHAT.score(self.runner.respond(loaded, list(prompt.messages)), prompt, normalizer))
                    progress.advance(0.0)
            judge = self.relevance_judge()
            answered = [i for i in items if i.error is None and i.answer]
            if judge is not None and answered:
                import numpy as np

                questions = self.runner.embed(judge, [i.prompt.topic or i.prompt.question for i in answered])
                answers = self.runner.embed(judge, [i.answer for i in answered]) if not questions.error else questions
                error = questions.error or answers.error
                if error:
                    warnings.warn(f"chat relevance not measured: {error}", stacklevel=2)
                    judge = None
                for item, q, a in zip(answered, questions.value if judge else (), answers.value if judge else ()):
                    item.relevance = float(np.dot(q, a) / (np.linalg.norm(q) * np.linalg.norm(a) or 1.0))
            grader = self.grade_answers(items)
            self.chat_evals[key] = CHAT.summarize(loaded.name, prompts.name, items, prompts.errors,
                                            judge.name if judge else None, loaded.info, loaded.load_seconds,
                                            grader.name if grader else None, grader.info if grader else {})
            self._record_chat(loaded, prompts.name, self.chat_evals[key].rows(),
                              self.chat_evals[key].summary())
        return self.chat_evals[key]

    def grade_answers(self, items):
        """[tool.speechlab.chat] judge (a registered chat model) grades each keyed answer: its reply
        and verdict kept on the item, the reply cached like any output (keyed by the judge's
        identity and the exact request). Returns the judge, or None without one."""
        name = self.settings.chat.judge
        if name is None:
            return None
        judge = self.pool.get(self.registry.model(name))
        if judge.spec.task != "chat":
            raise SpeechlabError(f"[tool.speechlab.chat] judge {name!r} is a {judge.spec.task} model, not a chat model")
        self._open_store()  # the cache lives in the results database
        cache = self.output_cache()
        for item in items:
            if item.error is not None or item.passed is None:
                continue
            request = judge_messages(item.prompt, item.answer)
            key = cache.text_key(judge, request) if cache else None
            hit = cache.text(key) if cache else None
            if hit:
                item.judge_reply, item.judge_cached = hit["text"], True
            else:
                out = self.runner.respond(judge, request)
                if out.error:
                    item.judge_reply = f"(judge failed: {out.error})"
                    continue
                item.judge_reply = out.value.text
                if cache:
                    cache.put_text(judge.name, item.prompt.id, key, item.judge_reply, out.seconds)
            item.judged = parse_verdict(item.judge_reply)
        return judge

    def _record_chat(self, loaded, name: str, rows: list[dict], metrics: dict) -> None:
        """Chat and spoken-pipeline results go to the results database like ASR and TTS results."""
        self._open_store()
        self._write("record_model", loaded.info, loaded.load_seconds)
        self._write("record_utterances", loaded.name, name, rows)
        self._write("record_aggregate", loaded.name, name, metrics, environment(loaded.info))

    def spoken_questions(self, loaded, ref: str):
        """TTS speaks each ``spoken`` prompt, the ASR judge transcribes it, the chat model answers."""
        key = ("spoken", loaded.name, ref)
        if key in self.chat_evals:
            return self.chat_evals[key]
        tts_name = self.settings.chat.tts or next(iter(self.selected_models("tts")), None)
        if tts_name is None:
            self.chat_evals[key] = ("no TTS model for the spoken-question pipeline: select one "
                                    "(--speechlab-model piper/en_US-joe-medium) or set [tool.speechlab.chat] tts")
            return self.chat_evals[key]
        tts, asr = self.pool.get(self.registry.model(tts_name)), self.tts_judge()
        normalizer = get_normalizer(self.settings.normalizer)
        items = []
        for typed in self.evaluate_chat(loaded, ref).items:  # the same prompts, answered from text
            prompt = typed.prompt
            if not prompt.spoken:
                continue
            item = SpokenItem(prompt, typed=typed)
            spoken = self.runner.synthesize(tts, prompt.question)
            if spoken.error:
                item.error = spoken.error
                items.append(item)
                continue
            heard = self.runner.transcribe_audio(asr, prompt.id, spoken.value.samples, spoken.value.sample_rate)
            if heard.error is not None or heard.transcript is None:
                item.error = f"ASR {asr.name}: {heard.error.message if heard.error else 'no transcript'}"
                items.append(item)
                continue
            item.heard = heard.transcript.text.strip()
            words, _ = score_words(normalizer(prompt.question), normalizer(item.heard))
            item.question_wer = words.rate
            messages = [*prompt.messages[:-1], {"role": "user", "content": item.heard}]
            item.spoken = CHAT.score(self.runner.respond(loaded, messages), prompt, normalizer)
            items.append(item)
        self.chat_evals[key] = SpokenEval(loaded.name, tts.name, asr.name, items)
        self._record_chat(loaded, f"{ref} (spoken: {tts.name} -> {asr.name})",
                          self.chat_evals[key].rows(), self.chat_evals[key].summary())
        return self.chat_evals[key]

    def derived(self, loaded, name: str, params: dict, source: str):
        """A variant of a selected model that a suite needs (registered once under ``name``), built."""
        if name not in self.registry.models:
            self.registry.models[name] = loaded.spec.variant(name, params, source)
        return self.pool.get(self.registry.model(name))

    def evaluate_robustness(self, loaded, dataset) -> RobustnessEval:
        """``loaded`` on ``dataset`` clean and through each configured perturbation at its four
        severities (every seed), WERD per severity, NWERD against the reference model."""
        key = (loaded.name, dataset.name)
        if key not in self.robustness:
            self.robustness[key] = self._curves(loaded, dataset)
            reference = self.robustness_reference()
            if reference and reference != loaded.name:
                with contextlib.suppress(ModelLoadError):  # the reference's own tests report it
                    ref_key = (reference, dataset.name)
                    if ref_key not in self.robustness:
                        self.robustness[ref_key] = self._curves(self.pool.get(self.registry.model(reference)), dataset)
            theirs = {c.kind: c for c in self.robustness.get((reference, dataset.name), RobustnessEval("", "", None, [])).curves}
            for curve in self.robustness[key].curves:
                curve.normalize(theirs.get(curve.kind))
        return self.robustness[key]

    def robustness_reference(self) -> str | None:
        """The model NWERD is normalized by: [tool.speechlab.robustness] reference, else the first
        selected ASR model."""
        return self.settings.robustness.reference or next(iter(self.selected_models("asr")), None)

    def _curves(self, loaded, dataset) -> RobustnessEval:
        settings = self.settings.robustness
        clean = self.evaluate(loaded, dataset)
        curves = []
        for kind in settings.perturbations:
            points = []
            for chain in ladder(kind):
                results = []
                for seed in seeds_of(chain, settings.seeds):
                    perturbed = self.perturbed(dataset, seed)
                    self.robustness_only.add(perturbed.name)
                    results.append(self.evaluate(loaded, perturbed))
                points.append((chain_label(chain), results))
            curves.append(Curve.of(clean, kind, points))
        return RobustnessEval(loaded.name, dataset.name, clean, curves, settings.gate_severity)

    def compare_runtimes(self, dataset):
        """Each group of selected models that share weights, rebuilt with the same greedy decoding and
        evaluated on ``dataset``: a list of RuntimeComparison, or a str saying why there is none."""
        if dataset.name not in self.runtime_comparisons:
            loaded = []
            for name in self.selected_models("asr"):
                with contextlib.suppress(ModelLoadError):  # its own tests report the load failure
                    loaded.append(self.pool.get(self.registry.model(name)))
            groups = runtime_groups(loaded)
            comparisons = []
            for weights, members in groups.items():
                results = []
                for member in members:
                    derived = self.derived(member, comparable_name(member.name), COMPARABLE_DECODE, "cross-runtime suite")
                    results.append(self.evaluate(derived, dataset))
                comparisons.append(RuntimeComparison.of(weights, results))
            self.runtime_comparisons[dataset.name] = comparisons or (
                "no two selected models share weights on different runtimes (e.g. select "
                "faster-whisper/tiny.en, openai-whisper/tiny.en and transformers/tiny.en)")
        return self.runtime_comparisons[dataset.name]

    def compare_batching(self, dataset):
        """Each selected ASR model that has a batch method, at ``batch_equivalence`` size against
        batch 1 on ``dataset``: a list of BatchComparison, or a str saying why there is none."""
        size = self.batch_equivalence
        if not size:
            return "no batch size to compare: give --speechlab-batch-equivalence N"
        key = (dataset.name, size)
        if key not in self.batch_comparisons:
            comparisons = []
            for name in self.selected_models("asr"):
                with contextlib.suppress(ModelLoadError):  # its own tests report the load failure
                    loaded = self.pool.get(self.registry.model(name))
                    if not callable(getattr(loaded.instance, "transcribe_batch", None)) or batch_size(loaded) > 1:
                        continue
                    batched = self.derived(loaded, batched_name(name, size), {"batch_size": size}, "batch equivalence suite")
                    comparisons.append(BatchComparison.of(
                        self.evaluate(loaded, dataset), self.evaluate(batched, dataset), size))
            self.batch_comparisons[key] = comparisons or (
                "no selected ASR model has a batch method (transcribe_batch)")
        return self.batch_comparisons[key]

    def chat_reports(self) -> tuple[list, list]:
        """The chat evaluations and spoken-question pipelines of this session (reasons left out)."""
        evals = self.chat_evals.values()
        return [e for e in evals if isinstance(e, ChatEval)], [e for e in evals if isinstance(e, SpokenEval)]

    def serialized(self) -> dict:
        """Everything this session evaluated, in the serialized form every sink reads. Built once
        for the sinks at the end of a session (terminal, report files, pytest-html); again only when
        an evaluation was added since."""
        chats, spoken = self.chat_reports()
        everything = [*self.results.values(), *self.tts_evals.values(), *chats, *spoken, *self.robustness.values()]
        key = tuple(map(id, everything))
        if self._serialized is None or self._serialized[0] != key:
            aside = self._robustness_aside()  # shown in the robustness table, not as rows of their own
            self._serialized = (key, {
                "evaluations": [r.serialized() for (_, d), r in self.results.items() if d not in aside],
                "robustness_evaluations": [r.serialized() for (_, d), r in self.results.items() if d in aside],
                "tts": [t.serialized() for t in self.tts_evals.values()],
                "chat": [c.serialized() for c in chats], "spoken": [s.serialized() for s in spoken],
                "robustness": [{**curve.serialized(), "werd_limit": self.thresholds(curve.model)["werd"],
                                "gate_severity": ev.gate_severity}
                               for ev in self.robustness.values() for curve in ev.curves]})
        return self._serialized[1]

    def _robustness_aside(self) -> set[str]:
        """The perturbed datasets only the robustness suite evaluated (not selected as datasets)."""
        return self.robustness_only - {self.dataset(ref).name for ref in self.selected_datasets()}

    def grades(self) -> dict:
        return {model: self.grade(model) for model in dict.fromkeys(m for m, _ in self.results)}

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


def evaluate_models(models: list[str], datasets: list[str], *, pyproject: str | os.PathLike | None = "pyproject.toml",
                    db: str | None = None, cache: str | None = None, retime: int | None = None, repeats: int | None = None,
                    plugins: list | tuple = (),
                    workers: int = 1, threads: int | None = None, executor: str = "local",
                    ray_address: str | None = None) -> list:
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
                    workers=workers, threads=threads, executor=executor, ray_address=ray_address)
    engine.models, engine.datasets = list(models), list(datasets)
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
