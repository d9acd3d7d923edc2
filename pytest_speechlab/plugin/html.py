"""pytest-html: the scorecard above the results table and the evidence of every evaluation below it
(all of it rendered by ``sinks.report`` from the serialized results)."""
from __future__ import annotations

import pytest

from .. import gate_report
from .._machine import machine
from ..sinks.report import (
    AudioBudget,
    all_evidence_html,
    chat_html,
    latency_html,
    property_failures_html,
    robustness_html,
    scorecard_html,
    slices_html,
    tts_html,
)
from .session import SpeechlabSession


class HtmlReport:
    """Registered in pytest_configure; its hook is only called where pytest-html is installed."""

    def __init__(self, session: SpeechlabSession) -> None:
        self.session = session
        self.audio_budget = AudioBudget()  # one budget for the whole report: each clip embedded once

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        speechlab = self.session.engine
        record = speechlab.serialized()
        if record["evaluations"]:
            thresholds = {m: speechlab.thresholds(m) for m, _ in speechlab.results}
            prefix.append(scorecard_html(record["evaluations"], speechlab.grades(), thresholds, self.run_description()))
            prefix.append(latency_html(record["evaluations"]))
            # the evidence of every evaluation, once, whether its tests passed or not
            postfix.append(all_evidence_html(record["evaluations"], self.audio_budget))
        failures = [f for check in self.session.metamorphic.values() for f in check.evidence()]
        if failures:
            postfix.append(property_failures_html(failures, self.audio_budget))
        gate = record.get("gate")
        if gate:
            prefix.append(gate_report.html(gate["comparisons"], gate["problems"]))
        if record.get("slices"):
            prefix.append(slices_html(record["slices"]))
        if record["tts"]:
            prefix.append(tts_html(record["tts"]))
        if record["robustness"]:
            prefix.append(robustness_html(record["robustness"]))
        if record["chat"]:
            prefix.append(chat_html(record["chat"]))

    def run_description(self) -> dict:
        speechlab = self.session.engine
        commit = speechlab.git[0]
        here = machine()
        threads = ", ".join(f"{name}: {loaded.info.get('threads', '?')}" for name, loaded in speechlab.pool.loaded.items())
        recorder = speechlab.recorder
        return {"run": recorder.run_id or "not recorded (--speechlab-no-db or no database)",
                "commit": commit[:12] if commit else None, "cpu": f"{here['cpu']} ({here['cpu_count']} CPUs)",
                "threads": threads, "database": recorder.store.shown_url if recorder.store else None}
