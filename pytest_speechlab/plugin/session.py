"""The engine as one pytest session sees it: selection from options, progress on pytest's terminal,
test outcomes, and the reports (Markdown, benchmark JSON, run file, pytest-html)."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from .._config import load_config
from .._machine import benchmark_machine_info, git_state, machine
from .._progress import Progress
from .._text import redact_args, storable, terminal
from .._types import SpeechlabError
from ..engine.pipeline import Engine
from ..grading import check_grade_name
from ..sinks.report import (
    AudioBudget,
    all_evidence_html,
    benchmark_json,
    chat_html,
    chat_markdown,
    run_file,
    scorecard_html,
    scorecard_markdown,
)
from ..sinks.store import default_url, normalize_url
from .options import DEFAULT_DATASETS, DEFAULT_MODELS

session_key = pytest.StashKey["SpeechlabSession"]()

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

        self.audio_budget = AudioBudget()
        self.min_grade = config.option.speechlab_min_grade or self.settings.grades.min_grade
        if self.min_grade is not None:
            check_grade_name(self.min_grade, "--speechlab-min-grade")

    def _configured_db(self, settings) -> str:
        """--speechlab-db, else $SPEECHLAB_DB (keeps a password out of the command line), else
        [tool.speechlab] db, else .speechlab/results.db under the rootdir."""
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
            self._write_report("--speechlab-benchmark-json", option.speechlab_benchmark_json,
                               json.dumps(storable(benchmark_json(results, grades, benchmark_machine_info(), chats)),
                                          indent=2))
        if option.speechlab_json:
            meta = {"run_id": self.run_id, "args": redact_args(list(self.config.invocation_params.args))}
            self._write_report("--speechlab-json", option.speechlab_json,
                               json.dumps(storable(run_file(results, grades, meta, chats, spoken)), indent=1, ensure_ascii=False))

    # -- pytest-html (optional) ---------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
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
        commit, _ = git_state(Path(self.config.rootpath))
        here = machine()
        threads = ", ".join(f"{name}: {loaded.info.get('threads', '?')}" for name, loaded in self.pool.loaded.items())
        return {"run": self.run_id or "not recorded (--speechlab-no-db or no database)", "commit": commit[:12] if commit else None,
                "cpu": f"{here['cpu']} ({here['cpu_count']} CPUs)", "threads": threads,
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
