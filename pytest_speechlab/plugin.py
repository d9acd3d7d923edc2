"""The pytest plugin (``pytest11`` entry point): options, model/dataset fixtures, terminal summary.

Imported by every pytest run in an environment where pytest-speechlab is installed, so it imports
nothing heavy: registries, manifests and models are built only when a test asks for them.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import pytest

from ._config import load_config
from ._engine import Engine
from ._text import redact, redact_args, storable, terminal
from ._types import SpeechlabError

DEFAULT_MODELS = ["faster-whisper/tiny.en"]
DEFAULT_DATASETS = ["speechlab/speech", "speechlab/nonspeech"]

session_key = pytest.StashKey["SpeechlabSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("speechlab", "speech model evaluation (pytest-speechlab)")
    group.addoption(
        "--speechlab-model", action="append", default=[], metavar="NAME", dest="speechlab_models",
        help="model to evaluate (repeatable); overrides the speechlab_models ini value. "
        f"Default: {', '.join(DEFAULT_MODELS)}.",
    )
    group.addoption(
        "--speechlab-dataset", action="append", default=[], metavar="NAME_OR_PATH",
        dest="speechlab_datasets",
        help="dataset: a registered name, a JSONL manifest or a LibriSpeech-layout folder "
        "(repeatable); overrides the speechlab_datasets ini value. "
        f"Default: {', '.join(DEFAULT_DATASETS)}.",
    )
    group.addoption(
        "--speechlab-list-models", action="store_true", default=False,
        help="list registered models and datasets (name, task, backend, plugin, weights) and exit.",
    )
    group.addoption(
        "--speechlab-min-grade", metavar="GRADE", default=None,
        help="readiness tests fail for a model graded below GRADE (A+, A, B, C, D, F); "
        "default: [tool.speechlab.grades] min_grade.",
    )
    group.addoption(
        "--speechlab-repeat", metavar="N", type=int, default=1,
        help="transcribe every utterance N times and report the share whose transcript changes "
        "(non-determinism); only the first run is timed.",
    )
    group.addoption(
        "--speechlab-db", metavar="URL_OR_PATH", default=None,
        help="results database: a SQLAlchemy URL (postgresql+psycopg://...) or a SQLite file. "
        "Default: [tool.speechlab] db, else .speechlab/results.db under the rootdir.",
    )
    group.addoption(
        "--speechlab-no-db", action="store_true", default=False,
        help="do not record this run in the results database.",
    )
    group.addoption(
        "--speechlab-baseline", metavar="NAME_OR_RUN", default=None,
        help="compare every model x dataset with this baseline run (a name from `speechlab baseline "
        "set`, a run id or 'latest'); the comparison shows in the summary.",
    )
    group.addoption(
        "--speechlab-fail-on-regression", action="store_true", default=False,
        help="with --speechlab-baseline: fail when WER/CER is significantly worse beyond the minimum "
        "effect, or RTF grew beyond its tolerance ([tool.speechlab.regression]).",
    )
    group.addoption(
        "--speechlab-markdown", metavar="PATH", default=None,
        help="write the scorecard as Markdown (also appended to $GITHUB_STEP_SUMMARY when set).",
    )
    group.addoption(
        "--speechlab-benchmark-json", metavar="PATH", default=None,
        help="write a pytest-benchmark JSON file: per-utterance inference times per model x dataset, "
        "speech figures in extra_info (pytest-benchmark compare reads it).",
    )
    group.addoption(
        "--speechlab-json", metavar="PATH", default=None,
        help="write every per-utterance output and metric of this run as JSON.",
    )
    group.addoption(
        "--speechlab-progress", choices=("auto", "bar", "lines", "off"), default="auto",
        help="progress of long evaluations: a bar on a terminal, a line every 15 s in logs "
        "(auto picks by whether output is a terminal).",
    )
    group.addoption(
        "--speechlab-cache", choices=("on", "off", "refresh", "read-only"), default=None,
        help="the inference cache (in the results database): on (default: reuse outputs, store new "
        "ones), off, refresh (recompute and replace), read-only (reuse, never write); "
        "default: [tool.speechlab] cache.",
    )
    group.addoption(
        "--speechlab-retime", metavar="N", type=int, default=None,
        help="when an evaluation's outputs come from the inference cache, time N of its utterances again "
        "here for the speed checks (at least 1); default: [tool.speechlab] retime, else 20.",
    )
    group.addoption(
        "--speechlab-tts-judge", metavar="NAME", default=None,
        help="ASR model that transcribes synthesized speech for TTS intelligibility; "
        "default: [tool.speechlab.tts] judge, else faster-whisper/tiny.en.",
    )
    parser.addini("speechlab_models", "models evaluated when no --speechlab-model is given",
                  type="linelist", default=[])
    parser.addini("speechlab_datasets", "datasets evaluated when no --speechlab-dataset is given "
                  "(paths relative to the rootdir)", type="linelist", default=[])


def _pyproject(config: pytest.Config) -> Path:
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    return config.rootpath / "pyproject.toml"


class SpeechlabSession(Engine):
    """The engine as one pytest session sees it: selection from options and ini values, progress on
    pytest's terminal, the regression gate, TTS/chat orchestration, reports, and the hooks that record
    test outcomes."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        option = config.option
        settings = load_config(_pyproject(config))
        super().__init__(settings, config.rootpath, db_url=None if option.speechlab_no_db else self._configured_db(settings),
                         repeats=option.speechlab_repeat, cache_mode=option.speechlab_cache,
                         retime=option.speechlab_retime, args=list(config.invocation_params.args))
        self.baseline = option.speechlab_baseline
        self.fail_on_regression = option.speechlab_fail_on_regression
        self.tts_judge_name = option.speechlab_tts_judge
        self.report_problems: list[str] = []
        self.current_nodeid: str | None = None
        self.outcomes: list[dict] = []
        from ._report import AudioBudget

        self.audio_budget = AudioBudget()
        self.min_grade = config.option.speechlab_min_grade or self.settings.grades.min_grade
        if self.min_grade is not None:
            from ._grading import check_grade_name

            check_grade_name(self.min_grade, "--speechlab-min-grade")

    def _configured_db(self, settings) -> str:
        """--speechlab-db, else $SPEECHLAB_DB (keeps a password out of the command line), else
        [tool.speechlab] db, else .speechlab/results.db under the rootdir."""
        from ._store import default_url, normalize_url

        root = self.config.rootpath
        configured = self.config.option.speechlab_db or os.environ.get("SPEECHLAB_DB") or settings.db
        return normalize_url(configured, root) if configured else default_url(root)

    def build_registry(self, extra_plugins=()):
        # conftest.py files and pytest plugins that implement speechlab hooks take part too,
        # so a team can register a local model without packaging it.
        local = [
            plugin for plugin in self.config.pluginmanager.get_plugins()
            if hasattr(plugin, "speechlab_register_models") or hasattr(plugin, "speechlab_register_datasets")
        ]
        return super().build_registry(local)

    def selected_models(self, task: str | None = None) -> list[str]:
        """The selected models (of one task when given). ASR defaults to DEFAULT_MODELS when nothing
        is selected; TTS and chat have no default: their suites are deselected without a model."""
        names = self.config.option.speechlab_models or self.config.getini("speechlab_models") or DEFAULT_MODELS
        for name in names:
            self.registry.model(name)  # unknown names stop the run with the list of known ones
        names = list(dict.fromkeys(names))
        return names if task is None else [n for n in names if self.registry.model(n).task == task]

    def selected_datasets(self) -> list[str]:
        cli = self.config.option.speechlab_datasets
        if cli:
            return list(dict.fromkeys(cli))
        ini = self.config.getini("speechlab_datasets")
        if ini:
            return [ref if ref in self.registry.datasets else str(self.config.rootpath / ref) for ref in ini]
        return list(DEFAULT_DATASETS)

    def check_gate(self) -> list[str]:
        problems = super().check_gate()
        for problem in problems:  # before warnings capture starts: said at configuration time
            self.config.issue_config_time_warning(UserWarning(problem), stacklevel=2)
        return problems

    # -- hooks of this session's plugin object (registered in pytest_configure) -----------------

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.current_nodeid = nodeid  # the progress display gives pytest's line back to this test

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.run_id is not None and (report.when == "call" or report.outcome != "passed"):
            message = None if report.passed else str(report.longrepr)[-2000:]
            self.outcomes.append({"nodeid": report.nodeid, "outcome": report.outcome,
                                  "duration": report.duration, "message": message})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        # The run is finished in the database before any report is written: a report that cannot be
        # written must not leave the measured run "incomplete".
        self.finish(self.outcomes)
        self.write_reports()
        self.notices += self.pool.close()  # before the summary, which shows them
        if self.report_problems and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    REPORT_OPTIONS = ("speechlab_markdown", "speechlab_benchmark_json", "speechlab_json")

    def check_report_paths(self) -> None:
        """A report that could not be written is found out before the evaluation, not after it."""
        for option in self.REPORT_OPTIONS:
            value = getattr(self.config.option, option)
            if not value:
                continue
            path = Path(value)
            flag = "--" + option.replace("_", "-")
            if path.is_dir():
                raise SpeechlabError(f"{flag} {value}: is a folder; give a file name")
            parent = path.parent if str(path.parent) else Path(".")
            if not parent.is_dir():
                raise SpeechlabError(f"{flag} {value}: folder {parent} does not exist")
            if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise SpeechlabError(f"{flag} {value}: not writable")

    def _write_report(self, flag: str, path: str, text: str) -> None:
        """Atomically (a temporary file renamed into place); a failure is said, never a traceback."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self.report_problems.append(f"{flag} {path}: not written ({type(exc).__name__}: {exc.strerror or exc})")

    def write_reports(self) -> None:
        """Markdown (and the GitHub step summary), benchmark JSON and the run file."""
        chats, spoken = self.chat_reports()
        if not (self.results or chats):
            return
        from ._report import benchmark_json, chat_markdown, run_file, scorecard_markdown

        results, grades = list(self.results.values()), self.grades()
        option = self.config.option
        text = None
        if option.speechlab_markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
            text = (scorecard_markdown(results, grades) if results else "") + chat_markdown(chats)
        if option.speechlab_markdown:
            self._write_report("--speechlab-markdown", option.speechlab_markdown, text)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            try:
                with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as exc:
                self.report_problems.append(f"$GITHUB_STEP_SUMMARY: not written ({type(exc).__name__}: {exc})")
        if option.speechlab_benchmark_json and (results or chats):
            from ._runner import cpu_name
            import platform

            machine = {"node": platform.node(), "processor": platform.processor(), "machine": platform.machine(),
                       "python_version": platform.python_version(), "system": platform.system(),
                       "release": platform.release(), "cpu": {"brand_raw": cpu_name(), "count": os.cpu_count()}}
            self._write_report("--speechlab-benchmark-json", option.speechlab_benchmark_json,
                               json.dumps(storable(benchmark_json(results, grades, machine, chats)), indent=2))
        if option.speechlab_json:
            meta = {"run_id": self.run_id, "args": redact_args(list(self.config.invocation_params.args))}
            self._write_report("--speechlab-json", option.speechlab_json,
                               json.dumps(storable(run_file(results, grades, meta, chats, spoken)), indent=1, ensure_ascii=False))

    # -- pytest-html (optional) ---------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        from ._report import all_evidence_html, chat_html, scorecard_html

        if self.results:
            results = list(self.results.values())
            thresholds = {m: self.thresholds(m) for m in dict.fromkeys(r.model for r in results)}
            prefix.append(scorecard_html(results, self.grades(), thresholds, self.run_description()))
            # the evidence of every evaluation, once, whether its tests passed or not
            postfix.append(all_evidence_html(results, self.audio_budget))
        chats, _ = self.chat_reports()
        if chats:
            prefix.append(chat_html(chats))

    def run_description(self) -> dict:
        from ._runner import cpu_name

        commit = None
        with contextlib.suppress(OSError):
            import subprocess

            out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=self.config.rootpath,
                                 capture_output=True, text=True, timeout=10)
            commit = out.stdout.strip() if out.returncode == 0 else None
        threads = ", ".join(f"{name}: {loaded.info.get('threads', '?')}" for name, loaded in self.pool.loaded.items())
        return {"run": self.run_id or "not recorded (--speechlab-no-db or no database)", "commit": commit,
                "cpu": f"{cpu_name()} ({os.cpu_count()} CPUs)", "threads": threads,
                "database": self.store.shown_url if self.store else None}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        evaluation = getattr(item, "funcargs", {}).get("speechlab_eval")
        if evaluation is not None and call.when == "call":  # JUnit XML properties
            for key, value in (("model", evaluation.model), ("dataset", evaluation.dataset),
                               ("wer", evaluation.wer), ("cer", evaluation.cer), ("rtf", evaluation.rtf),
                               ("hallucination_rate", evaluation.hallucination_rate),
                               ("normalizer", evaluation.normalizer)):
                item.user_properties.append((f"speechlab_{key}", "" if value is None else terminal(value)))
        return (yield)

    def progress(self, label: str, total: int):
        from ._progress import Progress

        mode = self.config.option.speechlab_progress
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            mode = "off"
        elif mode == "auto":
            interactive = getattr(reporter, "isatty", False) and not os.environ.get("CI")
            mode = "bar" if interactive else "lines"
        return Progress(
            label, total, mode=mode, write_line=(reporter.write_line if reporter else print),
            suspend=capman.global_and_fixture_disabled if capman else contextlib.nullcontext,
            new_line=reporter.ensure_newline if reporter else (lambda: None),
            resume=(lambda: reporter.write_fspath_result(self.current_nodeid, "")) if reporter and self.current_nodeid
            and reporter.verbosity <= 0 else (lambda: None),
            width=reporter._tw.fullwidth if reporter is not None and hasattr(reporter, "_tw") else None,
        )


def _usage(exc: SpeechlabError) -> pytest.UsageError:
    return pytest.UsageError(f"pytest-speechlab: {exc}")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    if not config.option.speechlab_list_models:
        return None
    from ._listing import list_registered

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            session = SpeechlabSession(config)
            text = list_registered(session.registry)
        except SpeechlabError as exc:
            raise _usage(exc) from None
    print(terminal(text))
    for w in caught:
        print(f"warning: {w.message}")
    return 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "speechlab_datasets(kind): run this test only on datasets containing utterances of "
        "that kind ('speech' or 'nonspeech')",
    )
    try:
        config.stash[session_key] = SpeechlabSession(config)
    except SpeechlabError as exc:
        raise _usage(exc) from None
    config.pluginmanager.register(config.stash[session_key], "speechlab-session")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Check an explicit selection before collection, so a typo is a usage error, not N errors."""
    config = session.config
    speechlab = config.stash[session_key]
    try:
        if config.option.speechlab_models or config.getini("speechlab_models"):
            speechlab.selected_models()
        if config.option.speechlab_datasets or config.getini("speechlab_datasets"):
            for ref in speechlab.selected_datasets():
                speechlab.dataset(ref)
        speechlab.check_report_paths()
        speechlab.check_gate()
    except SpeechlabError as exc:
        raise _usage(exc) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.pool.close()
        config.pluginmanager.unregister(session)


def test_id(name: str) -> str:
    """A parametrize id from a model or dataset name. Names come from plugins, configuration and
    file paths; pytest-html renders test ids as markup, so anything but word characters and
    ``. , : / + = @ ~ -`` becomes ``_`` (ordinary names such as "faster-whisper/tiny.en" are unchanged)."""
    import re

    return re.sub(r"[^\w.,:/+=@~-]", "_", name) or "_"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session: SpeechlabSession = metafunc.config.stash[session_key]
    names = set(metafunc.fixturenames)
    try:
        for fixture, task in (("speechlab_model", "asr"), ("speechlab_tts_model", "tts"), ("speechlab_chat_model", "chat")):
            if fixture in names:
                models = session.selected_models(task)
                metafunc.parametrize(fixture, models, indirect=True, scope="session", ids=list(map(test_id, models)))
        if "speechlab_tts_texts" in names:
            refs = session.settings.tts.texts
            metafunc.parametrize("speechlab_tts_texts", refs, indirect=True, scope="session", ids=list(map(test_id, refs)))
        if "speechlab_chat_prompts" in names:
            refs = session.settings.chat.prompts
            metafunc.parametrize("speechlab_chat_prompts", refs, indirect=True, scope="session", ids=list(map(test_id, refs)))
        if "speechlab_dataset" in names:
            refs = session.selected_datasets()
            marker = metafunc.definition.get_closest_marker("speechlab_datasets")
            kind = marker.kwargs.get("kind", marker.args[0] if marker.args else None) if marker else None
            if kind:
                refs = [r for r in refs if any(u.kind == kind for u in session.dataset(r).utterances)]
            ids = [test_id(session.dataset(r).name) for r in refs]
            metafunc.parametrize("speechlab_dataset", refs, indirect=True, scope="session", ids=ids)
    except SpeechlabError as exc:
        raise _usage(exc) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests whose dataset filter (speechlab_datasets(kind=...)) matched no dataset, rather
    than reporting them as skipped: a non-speech test has nothing to do on a speech-only set."""
    def empty(item: pytest.Item) -> bool:
        return any(name.startswith("speechlab_") for name in getattr(item, "fixturenames", ())) and any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in item.iter_markers("skip")
        )

    def needs_baseline(item: pytest.Item) -> bool:
        return "speechlab_regression" in getattr(item, "fixturenames", ()) and not config.option.speechlab_baseline

    def needs_two_models(item: pytest.Item) -> bool:
        return ("speechlab_runtime_comparison" in getattr(item, "fixturenames", ())
                and len(config.stash[session_key].selected_models("asr")) < 2)

    unwanted = [item for item in items if empty(item) or needs_baseline(item) or needs_two_models(item)]
    if unwanted:
        config.hook.pytest_deselected(items=unwanted)
        items[:] = [item for item in items if item not in unwanted]


@pytest.fixture(scope="session")
def speechlab_session(pytestconfig: pytest.Config) -> SpeechlabSession:
    """The session object: registry, model pool, evaluation results."""
    return pytestconfig.stash[session_key]


@pytest.fixture(scope="session")
def speechlab_model(request: pytest.FixtureRequest, speechlab_session: SpeechlabSession):
    """The model under test, built once per session (parametrized over the selected models)."""
    name = getattr(request, "param", None) or speechlab_session.selected_models("asr")[0]
    return _build(speechlab_session, name)


def _build(speechlab_session: SpeechlabSession, name: str):
    from ._runner import ModelLoadError

    try:
        return speechlab_session.pool.get(speechlab_session.registry.model(name))
    except ModelLoadError as exc:
        pytest.fail(terminal(str(exc)), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_tts_model(request: pytest.FixtureRequest, speechlab_session: SpeechlabSession):
    """The TTS model under test, built once (parametrized over the selected models of task tts)."""
    return _build(speechlab_session, request.param)


@pytest.fixture(scope="session")
def speechlab_chat_model(request: pytest.FixtureRequest, speechlab_session: SpeechlabSession):
    """The chat model under test, built once (parametrized over the selected models of task chat)."""
    return _build(speechlab_session, request.param)


@pytest.fixture(scope="session")
def speechlab_tts_texts(request: pytest.FixtureRequest) -> str:
    """A TTS text set ([tool.speechlab.tts] texts: registered names or paths relative to the rootdir)."""
    return request.param


@pytest.fixture(scope="session")
def speechlab_chat_prompts(request: pytest.FixtureRequest) -> str:
    """A chat prompt set ([tool.speechlab.chat] prompts)."""
    return request.param


@pytest.fixture(scope="session")
def speechlab_tts_eval(speechlab_session: SpeechlabSession, speechlab_tts_model, speechlab_tts_texts,
                      tmp_path_factory: pytest.TempPathFactory):
    """The TTS model on the text set: a TTSEval (``.result`` is the round-trip EvalResult)."""
    from ._runner import ModelLoadError

    try:
        return speechlab_session.evaluate_tts(speechlab_tts_model, speechlab_tts_texts,
                                              tmp_path_factory.mktemp("speechlab-tts"))
    except ModelLoadError as exc:  # the judge
        pytest.fail(terminal(f"TTS judge: {exc}"), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_chat_eval(speechlab_session: SpeechlabSession, speechlab_chat_model, speechlab_chat_prompts):
    """The chat model on the prompt set: a ChatEval."""
    return speechlab_session.evaluate_chat(speechlab_chat_model, speechlab_chat_prompts)


@pytest.fixture(scope="session")
def speechlab_spoken_eval(speechlab_session: SpeechlabSession, speechlab_chat_model, speechlab_chat_prompts):
    """The spoken-question pipeline (TTS -> ASR -> chat): a SpokenEval, or a str saying why there is none."""
    from ._runner import ModelLoadError

    try:
        return speechlab_session.spoken_questions(speechlab_chat_model, speechlab_chat_prompts)
    except ModelLoadError as exc:
        pytest.fail(terminal(f"spoken-question pipeline: {exc}"), pytrace=False)


@pytest.fixture(scope="session")
def speechlab_dataset(request: pytest.FixtureRequest, speechlab_session: SpeechlabSession):
    """The dataset under test (parametrized over the selected datasets); audio is read lazily."""
    ref = getattr(request, "param", None) or speechlab_session.selected_datasets()[0]
    return speechlab_session.dataset(ref)


@pytest.fixture(scope="session")
def speechlab_eval(speechlab_session: SpeechlabSession, speechlab_model, speechlab_dataset):
    """The evaluation of the model on the dataset, computed once and shared by every test."""
    return speechlab_session.evaluate(speechlab_model, speechlab_dataset)


@pytest.fixture(scope="session")
def speechlab_grade(speechlab_session: SpeechlabSession, speechlab_model):
    """The readiness grade of the model under test, over every selected dataset (evaluated once)."""
    for ref in speechlab_session.selected_datasets():
        speechlab_session.evaluate(speechlab_model, speechlab_session.dataset(ref))
    return speechlab_session.grade(speechlab_model.name)


@pytest.fixture(scope="session")
def speechlab_min_grade(speechlab_session: SpeechlabSession) -> str | None:
    """``--speechlab-min-grade`` or ``[tool.speechlab.grades] min_grade``; None when neither is set."""
    return speechlab_session.min_grade


@pytest.fixture(scope="session")
def speechlab_regression(speechlab_session: SpeechlabSession, speechlab_eval):
    """The comparison with ``--speechlab-baseline`` (a Comparison), or a str saying why there is none.
    Tests using it are deselected when no baseline is given."""
    return speechlab_session.compare_with_baseline(speechlab_eval)


@pytest.fixture(scope="session")
def speechlab_runtime_comparison(speechlab_session: SpeechlabSession, speechlab_dataset):
    """The selected models that share weights, on their runtimes with the same greedy decoding, over the
    dataset: a list of RuntimeComparison, or a str saying why there is none. Tests using it are
    deselected when fewer than two models are selected."""
    return speechlab_session.compare_runtimes(speechlab_dataset)


@pytest.fixture(scope="session")
def speechlab_fail_on_regression(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.option.speechlab_fail_on_regression


@pytest.fixture
def speechlab_thresholds(speechlab_session: SpeechlabSession, speechlab_model) -> dict[str, float]:
    """Thresholds for the model under test, from ``[tool.speechlab.thresholds]``."""
    return speechlab_session.thresholds(speechlab_model.name)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is None:
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and any(
            getattr(config.option, o) for o in ("speechlab_models", "speechlab_datasets", "speechlab_baseline")):
        terminalreporter.write_line(
            "pytest-speechlab: no tests were collected, so nothing was evaluated. The standard suites ship "
            "with the package: run `pytest --pyargs pytest_speechlab.suites ...`, or `speechlab init` to copy "
            "them into ./suites with a commented [tool.speechlab] block.")
    if not (session.results or session.chat_evals):
        for problem in session.report_problems:
            terminalreporter.write_line(terminal(problem))
        return
    from ._summary import summary_lines

    width = getattr(terminalreporter, "_tw", None) and terminalreporter._tw.fullwidth or 100

    def write(text: str) -> None:
        for line in str(text).splitlines() or [""]:  # outside text: no control characters, no passwords
            terminalreporter.write_line(terminal(redact(line), one_line=True))

    terminalreporter.write_sep("=", "speechlab summary")
    if session.results:
        grades = [session.grade(model) for model in dict.fromkeys(model for model, _ in session.results)]
        for line in summary_lines(session.results.values(), session.pool.loaded, grades, width=width):
            write(line)
    for tts in session.tts_evals.values():
        for line in tts.report():
            write(line)
    chats, spoken_evals = session.chat_reports()
    if chats:
        from ._chat import chat_summary_lines

        write("chat:")
        for line in chat_summary_lines(chats):
            write(line)
    for spoken in spoken_evals:
        for line in spoken.report():
            write(line)
    for comparisons in session.runtime_comparisons.values():
        for comparison in comparisons if isinstance(comparisons, list) else ():
            for line in comparison.report():
                write(line)
    for comparison in session.comparisons.values():
        write(comparison if isinstance(comparison, str) else comparison.report())
    for problem in session.notices + session.report_problems:
        write(problem)
    if session.run_id:
        write(f"recorded as run {session.run_id} in {session.store.shown_url if session.store else '?'}"
              + (f" ({session.store_problem})" if session.store_problem else ""))
    elif session.store_problem:
        write(session.store_problem)
