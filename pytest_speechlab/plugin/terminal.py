"""What pytest-speechlab writes on pytest's terminal: the model listing and the summary."""
from __future__ import annotations

import warnings
from shlex import quote as shell_quote

import pytest

from .._listing import list_registered
from .._text import format_table, redact, terminal
from .._types import SpeechlabError
from ..sinks.report import (
    ROBUSTNESS_HEADER,
    ROBUSTNESS_NOTE,
    robustness_ladders,
    robustness_rows,
)
from ..sinks.terminal import chat_summary_lines, summary_lines
from ..tasks.spoken import report_lines as spoken_lines
from ..tasks.tts import report_lines as tts_lines
from .recording import DB_NOT_WRITTEN
from .session import SpeechlabSession, _usage, session_key


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    if not config.option.speechlab_list_models:
        return None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            text = list_registered(SpeechlabSession(config).engine.registry)
        except SpeechlabError as exc:
            raise _usage(exc) from None
    print(terminal(text))
    for w in caught:
        print(f"warning: {w.message}")
    return 0



def next_steps(plugin: SpeechlabSession) -> str:
    """The summary's last word: where to look next (the run's figures, the history in a browser,
    the evidence with audio, the gate's comparison)."""
    option, recorder = plugin.config.option, plugin.engine.recorder
    steps = []
    if recorder.run_id and recorder.store:
        db = f"--db {shell_quote(option.speechlab_db)} " if option.speechlab_db else ""
        steps.append(f"speechlab {db}show {recorder.run_id[:8]} (figures, grades, failed tests)")
        gate = plugin.engine.gate
        if gate.baseline and any(not isinstance(c, str) and c.regressions for c in gate.comparisons.values()):
            steps.append(f"speechlab {db}compare {shell_quote(gate.baseline)} {recorder.run_id[:8]} (the regression)")
        steps.append(f"speechlab {db}view (history, trends, comparisons in a browser)")
    html = getattr(option, "htmlpath", None)
    steps.append(f"the evidence: {html}" if html else "--html report.html for the evidence (audio, alignments)")
    return "next: " + "; ".join(steps)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    plugin = config.stash.get(session_key, None)
    if plugin is None:
        return
    session = plugin.engine
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and any(
            getattr(config.option, o) for o in ("speechlab_models", "speechlab_datasets", "speechlab_baseline")):
        terminalreporter.write_line(
            "pytest-speechlab: no tests were collected, so nothing was evaluated. The standard suites ship "
            "with the package: run `pytest --pyargs pytest_speechlab.suites ...`, or `speechlab init` to copy "
            "them into ./suites with a commented [tool.speechlab] block.")
    if not (session.results or session.chat.evaluations()):
        for problem in plugin.report_problems:
            terminalreporter.write_line(terminal(problem))
        return

    width = getattr(terminalreporter, "_tw", None) and terminalreporter._tw.fullwidth or 100

    def write(text: str) -> None:
        for line in str(text).splitlines() or [""]:  # outside text: no control characters, no passwords
            terminalreporter.write_line(terminal(redact(line), one_line=True))

    terminalreporter.write_sep("=", "speechlab summary")
    record = session.serialized()
    if record["evaluations"]:
        grades = [session.grade(model) for model in dict.fromkeys(model for model, _ in session.results)]
        loads = {name: loaded.load_count for name, loaded in session.pool.loaded.items()}
        for line in summary_lines(record["evaluations"], loads, grades, width=width):
            write(line)
    if record["robustness"]:
        write("robustness:")
        for line in format_table(ROBUSTNESS_HEADER, robustness_rows(record["robustness"]), text_columns=2, width=width):
            write(line)
        for line in [*robustness_ladders(record["robustness"]), ROBUSTNESS_NOTE]:
            write(line)
    for tts in record["tts"]:
        for line in tts_lines(tts):
            write(line)
    if record["chat"]:
        write("chat:")
        for line in chat_summary_lines(record["chat"]):
            write(line)
    for spoken in record["spoken"]:
        for line in spoken_lines(spoken):
            write(line)
    for comparisons in session.batching.comparisons.values():
        for comparison in comparisons if isinstance(comparisons, list) else ():
            for line in comparison.report():
                write(line)
    for comparisons in session.cross_runtime.comparisons.values():
        for comparison in comparisons if isinstance(comparisons, list) else ():
            for line in comparison.report():
                write(line)
    for comparison in session.gate.comparisons.values():
        write(comparison if isinstance(comparison, str) else comparison.report())
    for feature in session.features.values():
        for line in session.asked(feature, "report_lines", []):
            write(line)
    for problem in session.notices + plugin.report_problems:
        write(problem)
    recorder = session.recorder
    if recorder.run_id:
        write(f"recorded as run {recorder.run_id} in {recorder.store.shown_url if recorder.store else '?'}"
              + (f" ({recorder.problem})" if recorder.problem else ""))
    elif recorder.problem:
        write(recorder.problem)
    write(next_steps(plugin))
    if plugin.exit_status == DB_NOT_WRITTEN:
        write(f"exit status {DB_NOT_WRITTEN}: the tests passed, but the results database was not written (the run's "
              'history and the next baseline are missing); [tool.speechlab] db_failure = "warn" keeps the tests\' status')
