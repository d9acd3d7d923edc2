"""Recording: test outcomes and the finished run go to the results database; the Markdown (and the
GitHub step summary), benchmark JSON and run file are written from the serialized results; JUnit XML
gets each evaluation's figures as properties."""
from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path

import pytest

from .. import gate_report
from .._assertions import NotJudged
from .._machine import benchmark_machine_info
from .._text import redact, redact_args, storable, terminal
from .._types import SpeechlabError
from ..sinks import mlflow_sink, openmetrics
from ..sinks.report import (
    benchmark_json,
    chat_markdown,
    latency_markdown,
    robustness_markdown,
    run_file,
    scorecard_markdown,
    slices_markdown,
)
from .session import SpeechlabSession

DB_NOT_WRITTEN = 6  # the exit status of a session whose tests passed but whose results database failed
# the sections of Engine.serialized() the run file has its own places for; others are plugins' features
BUILT_IN_SECTIONS = ("evaluations", "robustness_evaluations", "robustness", "tts", "chat", "spoken", "gate", "slices")
REPORT_OPTIONS = ("speechlab_markdown", "speechlab_benchmark_json", "speechlab_json", "speechlab_openmetrics")


def check_report_paths(config: pytest.Config) -> None:
    """A report that could not be written is found out before the evaluation, not after it."""
    for option in REPORT_OPTIONS:
        value = getattr(config.option, option)
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


class Recorder:
    """Registered in pytest_configure beside the session."""

    def __init__(self, session: SpeechlabSession) -> None:
        self.session = session
        self.outcomes: list[dict] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.session.engine.recorder.run_id is not None and (report.when == "call" or report.outcome != "passed"):
            message = None if report.passed else str(report.longrepr)[-2000:]
            self.outcomes.append({"nodeid": report.nodeid, "outcome": report.outcome,
                                  "duration": report.duration, "message": message})

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        fixtures = getattr(item, "funcargs", {})
        evaluation = fixtures.get("speechlab_eval")
        if evaluation is not None and call.when == "call":  # JUnit XML properties
            figures = evaluation.summary()
            for key in ("model", "dataset", "error_metric", "error_rate", "wer", "cer", "rtf", "hallucination_rate", "normalizer"):
                value = figures[key]
                item.user_properties.append((f"speechlab_{key}", "" if value is None else terminal(value)))
            comparison = fixtures.get("speechlab_regression")
            if comparison is not None and not isinstance(comparison, str):  # the gate's analysis
                item.user_properties += gate_report.properties(comparison.analysis())
        report = yield
        if call.excinfo is not None and call.excinfo.errisinstance(NotJudged):
            # too few samples, a busy machine, cached timings with none re-timed here: neither passed nor failed
            path, line, _ = item.location
            report.outcome = "skipped"
            report.longrepr = (path, (line or 0) + 1, f"Skipped: {terminal(str(call.excinfo.value))}")
        return report

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        # The run is finished in the database before any report is written: a report that cannot be
        # written must not leave the measured run "incomplete".
        speechlab, engine = self.session, self.session.engine
        engine.finish(self.outcomes)
        self.write_reports(failed=session.exitstatus != 0)
        engine.notices += engine.pool.close()  # before the summary, which shows them
        engine.runner.executor.close()
        if speechlab.report_problems and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if engine.recorder.problem and session.exitstatus == 0 and engine.settings.db_failure == "fail":
            # the tests passed but the history (and the gate's next baseline) was not written
            session.exitstatus = speechlab.exit_status = DB_NOT_WRITTEN

    def write_reports(self, failed: bool = False) -> None:
        """Every sink of the finished session, after the results database has it: the Markdown (and
        the GitHub step summary), benchmark JSON, the run file, the OpenMetrics file, the MLflow run
        (marked FAILED when the session failed) and the plugins' ``speechlab_write_results``. One
        failure policy: a sink that fails is said once and costs no other sink its data."""
        speechlab, engine = self.session, self.session.engine
        record = engine.serialized()
        results, chats, spoken = record["evaluations"], record["chat"], record["spoken"]
        if not (results or chats):
            return
        grades = engine.grades()
        option = speechlab.config.option
        mlflow_uri = option.speechlab_mlflow or os.environ.get("SPEECHLAB_MLFLOW")
        recorder = engine.recorder
        meta = {"run_id": recorder.run_id, "args": redact_args(list(speechlab.config.invocation_params.args))}
        run_meta = {"run_id": recorder.run_id, "git_commit": engine.git[0]}

        @functools.cache
        def markdown() -> str:
            gate = record.get("gate") or {}
            return ((scorecard_markdown(results, grades) + latency_markdown(results) if results else "")
                    + gate_report.markdown(gate.get("comparisons", ()), gate.get("problems", ()))
                    + slices_markdown(record.get("slices"))
                    + robustness_markdown(record["robustness"]) + chat_markdown(chats))

        @functools.cache
        def benchmark() -> str:
            return json.dumps(storable(benchmark_json(results, grades, benchmark_machine_info(), chats)), indent=2)

        @functools.cache
        def figures() -> dict:
            exported = recorder.store.export_run(recorder.run_id)["run"] if recorder.store and recorder.run_id else None
            return storable(run_file(results, grades, meta, chats, spoken, {
                "curves": record["robustness"], "evaluations": record["robustness_evaluations"]}, exported,
                {key: value for key, value in record.items() if key not in BUILT_IN_SECTIONS},
                {key: record[key] for key in ("gate", "slices") if key in record}))

        def step_summary() -> None:
            with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
                fh.write(markdown())

        def mlflow() -> None:
            reports = {"results.json": json.dumps(figures(), indent=1, ensure_ascii=False), "scorecard.md": markdown(),
                       "benchmark.json": benchmark(), "metrics.prom": openmetrics.text(results, grades, chats, run_meta)}
            mlflow_sink.log_run(mlflow_uri, option.speechlab_mlflow_experiment, results, grades, chats, run_meta,
                                reports, failed=failed)

        sinks = [
            (option.speechlab_markdown, f"--speechlab-markdown {option.speechlab_markdown}",
             lambda: self._write(option.speechlab_markdown, markdown())),
            (os.environ.get("GITHUB_STEP_SUMMARY"), "$GITHUB_STEP_SUMMARY", step_summary),
            (option.speechlab_benchmark_json, f"--speechlab-benchmark-json {option.speechlab_benchmark_json}",
             lambda: self._write(option.speechlab_benchmark_json, benchmark())),
            (option.speechlab_json, f"--speechlab-json {option.speechlab_json}",
             lambda: self._write(option.speechlab_json, json.dumps(figures(), indent=1, ensure_ascii=False))),
            (option.speechlab_openmetrics, f"--speechlab-openmetrics {option.speechlab_openmetrics}",
             lambda: openmetrics.write(option.speechlab_openmetrics, results, grades, chats, run_meta)),
            (mlflow_uri, f"--speechlab-mlflow {mlflow_uri}", mlflow),
            *((True, f"plugin {name!r} (speechlab_write_results)", lambda sink=sink: sink(results=figures()))
              for name, sink in engine.registry.sinks),
        ]
        for wanted, label, write in sinks:
            if not wanted:
                continue
            try:
                write()
            except Exception as exc:  # noqa: BLE001 - one sink's failure never costs another sink its data
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:300] if str(exc) else ""
                speechlab.report_problems.append(redact(f"{label}: not written ({type(exc).__name__}: {why})"))

    @staticmethod
    def _write(path: str, text: str) -> None:
        """Atomically: a temporary file renamed into place (removed again when that fails)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
