"""The pytest session's hold on the engine: selection from options and ini values, progress on
pytest's terminal, the regression gate's problems as configuration-time warnings."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from .. import _hookspecs
from .._config import load_config
from .._progress import Progress
from .._text import terminal
from .._types import SpeechlabError
from ..engine.frontend import Frontend
from ..engine.pipeline import Engine
from ..grading import check_grade_name
from ..sinks.store import default_url, normalize_url
from .options import DEFAULT_DATASETS, DEFAULT_MODELS

session_key = pytest.StashKey["SpeechlabSession"]()
HOOKS = tuple(name for name in dir(_hookspecs) if name.startswith("speechlab_"))  # what a conftest.py may implement

def _pyproject(config: pytest.Config) -> Path:
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    return config.rootpath / "pyproject.toml"


class SpeechlabSession(Frontend):
    """The pytest side of an evaluation session: it holds the engine (``.engine``, what the
    ``speechlab_session`` fixture gives tests) and is the engine's frontend: the selection from
    pytest's options and ini values, the progress on pytest's terminal (given back to the current
    test's line), conftest.py files' hook implementations. Registered as a plugin for the current
    test's id."""

    def __init__(self, config: pytest.Config) -> None:
        super().__init__()
        self.config = config
        option = config.option
        settings = load_config(_pyproject(config))
        self.engine = Engine(settings, config.rootpath,
                             db_url=None if option.speechlab_no_db else self._configured_db(settings),
                             repeats=option.speechlab_repeat, cache_mode=option.speechlab_cache,
                             retime=option.speechlab_retime, args=list(config.invocation_params.args),
                             workers=option.speechlab_workers, threads=option.speechlab_threads,
                             isolate=option.speechlab_isolate or None,
                             executor=option.speechlab_executor, ray_address=option.speechlab_ray_address,
                             ray_audio=option.speechlab_ray_audio, frontend=self)
        for feature in self.engine.features.values():
            feature.configure(option)
        self.report_problems: list[str] = []
        self.exit_status: int | None = None  # set where the plugin changed the session's (DB_NOT_WRITTEN)
        self.current_nodeid: str | None = None
        self.metamorphic: dict[tuple, object] = {}  # (model, speech set) -> MetamorphicCheck (the properties suite)

        self.min_grade = config.option.speechlab_min_grade or settings.grades.min_grade
        if self.min_grade is not None:
            check_grade_name(self.min_grade, "--speechlab-min-grade")

    def _configured_db(self, settings) -> str:
        """--speechlab-db, else $SPEECHLAB_DB (keeps a password out of the command line), else
        [tool.speechlab] db, else .speechlab/results.db under the rootdir."""
        root = self.config.rootpath
        configured = self.config.option.speechlab_db or os.environ.get("SPEECHLAB_DB") or settings.db
        return normalize_url(configured, root) if configured else default_url(root)

    def local_plugins(self) -> list:
        # conftest.py files and pytest plugins that implement speechlab hooks take part too,
        # so a team can register a local model without packaging it.
        return [plugin for plugin in self.config.pluginmanager.get_plugins()
                if any(hasattr(plugin, name) for name in HOOKS)]

    def models(self, engine) -> list[str]:
        """ASR defaults to DEFAULT_MODELS when nothing is selected; TTS and chat have no default:
        their suites are deselected without a model. Unknown names stop the run with the list of
        known ones."""
        names = self.config.option.speechlab_models or self.config.getini("speechlab_models") or DEFAULT_MODELS
        for name in names:
            engine.registry.model(name)
        return list(names)

    def datasets(self, engine) -> list[str]:
        cli = self.config.option.speechlab_datasets
        if cli:
            return list(cli)
        ini = self.config.getini("speechlab_datasets")
        if ini:
            return [ref if ref in engine.registry.datasets else str(self.config.rootpath / ref) for ref in ini]
        return list(DEFAULT_DATASETS)

    def check_gate(self) -> list[str]:
        problems = self.engine.gate.check()
        for problem in problems:  # before warnings capture starts: said at configuration time
            self.config.issue_config_time_warning(UserWarning(problem), stacklevel=2)
        return problems

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.current_nodeid = nodeid  # the progress display gives pytest's line back to this test

    def progress(self, label: str, total: int):
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
    return pytest.UsageError(terminal(f"pytest-speechlab: {exc}"))  # it may name a file or a manifest value
