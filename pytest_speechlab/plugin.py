"""The pytest plugin (``pytest11`` entry point): options, model/dataset fixtures, terminal summary.

Imported by every pytest run in an environment where pytest-speechlab is installed, so it imports
nothing heavy: registries, manifests and models are built only when a test asks for them.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from ._config import SpeechlabConfig, load_config
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
        "--speechlab-progress", choices=("auto", "bar", "lines", "off"), default="auto",
        help="progress of long evaluations: a bar on a terminal, a line every 15 s in logs "
        "(auto picks by whether output is a terminal).",
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


class SpeechlabSession:
    """Everything that lives for one pytest session: registry, built models, evaluation results."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: SpeechlabConfig = load_config(_pyproject(config))
        self._registry = None
        self._datasets: dict[str, Any] = {}
        self.results: dict[tuple[str, str], Any] = {}
        from ._runner import ModelPool, Runner

        self.pool = ModelPool()
        self.runner = Runner(repeats=config.option.speechlab_repeat)
        self.min_grade = config.option.speechlab_min_grade or self.settings.grades.min_grade
        if self.min_grade is not None:
            from ._grading import check_grade_name

            check_grade_name(self.min_grade, "--speechlab-min-grade")

    @property
    def registry(self):
        if self._registry is None:
            from ._registry import build_registry, make_plugin_manager

            # conftest.py files and pytest plugins that implement speechlab hooks take part too,
            # so a team can register a local model without packaging it.
            local = [
                plugin for plugin in self.config.pluginmanager.get_plugins()
                if hasattr(plugin, "speechlab_register_models") or hasattr(plugin, "speechlab_register_datasets")
            ]
            registry = build_registry(make_plugin_manager(local))
            registry.add_variants(self.settings.variants, self.settings.source)
            self._registry = registry
        return self._registry

    def selected_models(self) -> list[str]:
        names = self.config.option.speechlab_models or self.config.getini("speechlab_models") or DEFAULT_MODELS
        for name in names:
            self.registry.model(name)  # unknown names stop the run with the list of known ones
        return list(dict.fromkeys(names))

    def selected_datasets(self) -> list[str]:
        cli = self.config.option.speechlab_datasets
        if cli:
            return list(dict.fromkeys(cli))
        ini = self.config.getini("speechlab_datasets")
        if ini:
            return [ref if ref in self.registry.datasets else str(self.config.rootpath / ref) for ref in ini]
        return list(DEFAULT_DATASETS)

    def dataset(self, ref: str):
        if ref not in self._datasets:
            from ._dataset import load_dataset

            spec = self.registry.datasets.get(ref)
            self._datasets[ref] = load_dataset(spec.path, name=ref) if spec else load_dataset(ref)
        return self._datasets[ref]

    def thresholds(self, model: str) -> dict[str, float]:
        base = self.registry.model(model).base
        return {metric: self.settings.threshold(metric, model, base) for metric in self.settings.thresholds}

    def evaluate(self, loaded, dataset) -> Any:
        key = (loaded.name, dataset.name)
        if key not in self.results:
            from ._metrics import evaluate
            from ._normalize import get_normalizer
            from ._runner import environment

            with self._progress(f"{loaded.name} x {dataset.name}", len(dataset.utterances)) as progress:
                outputs = self.runner.run(loaded, dataset.utterances,
                                          on_output=lambda o: progress.advance(o.audio_seconds))
            self.results[key] = evaluate(
                loaded.name, dataset.name, outputs, get_normalizer(self.settings.normalizer),
                dataset.errors, self.settings.hallucination, model_info=loaded.info,
                load_seconds=loaded.load_seconds,
                environment=environment(loaded),
            )
        return self.results[key]

    def grade(self, model: str):
        from ._grading import grade_model

        results = [r for (name, _), r in self.results.items() if name == model]
        return grade_model(model, results, self.settings.grades)

    def _progress(self, label: str, total: int):
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
    print(text)
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
    except SpeechlabError as exc:
        raise _usage(exc) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.pool.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session: SpeechlabSession = metafunc.config.stash[session_key]
    names = set(metafunc.fixturenames)
    try:
        if "speechlab_model" in names:
            models = session.selected_models()
            metafunc.parametrize("speechlab_model", models, indirect=True, scope="session", ids=models)
        if "speechlab_dataset" in names:
            refs = session.selected_datasets()
            marker = metafunc.definition.get_closest_marker("speechlab_datasets")
            kind = marker.kwargs.get("kind", marker.args[0] if marker.args else None) if marker else None
            if kind:
                refs = [r for r in refs if any(u.kind == kind for u in session.dataset(r).utterances)]
            ids = [session.dataset(r).name for r in refs]
            metafunc.parametrize("speechlab_dataset", refs, indirect=True, scope="session", ids=ids)
    except SpeechlabError as exc:
        raise _usage(exc) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests whose dataset filter (speechlab_datasets(kind=...)) matched no dataset, rather
    than reporting them as skipped: a non-speech test has nothing to do on a speech-only set."""
    def empty(item: pytest.Item) -> bool:
        return "speechlab_dataset" in getattr(item, "fixturenames", ()) and any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in item.iter_markers("skip")
        )

    deselected = [item for item in items if empty(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not empty(item)]


@pytest.fixture(scope="session")
def speechlab_session(pytestconfig: pytest.Config) -> SpeechlabSession:
    """The session object: registry, model pool, evaluation results."""
    return pytestconfig.stash[session_key]


@pytest.fixture(scope="session")
def speechlab_model(request: pytest.FixtureRequest, speechlab_session: SpeechlabSession):
    """The model under test, built once per session (parametrized over the selected models)."""
    from ._runner import ModelLoadError

    name = getattr(request, "param", None) or speechlab_session.selected_models()[0]
    try:
        return speechlab_session.pool.get(speechlab_session.registry.model(name))
    except ModelLoadError as exc:
        pytest.fail(str(exc), pytrace=False)


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


@pytest.fixture
def speechlab_thresholds(speechlab_session: SpeechlabSession, speechlab_model) -> dict[str, float]:
    """Thresholds for the model under test, from ``[tool.speechlab.thresholds]``."""
    return speechlab_session.thresholds(speechlab_model.name)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is None or not session.results:
        return
    from ._summary import summary_lines

    terminalreporter.write_sep("=", "speechlab summary")
    models = dict.fromkeys(model for model, _ in session.results)
    grades = [session.grade(model) for model in models]
    for line in summary_lines(session.results.values(), session.pool.loaded, grades):
        terminalreporter.write_line(line)
