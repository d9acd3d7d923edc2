"""The run's figures in the Prometheus text format (``--speechlab-openmetrics PATH``), for
node_exporter's textfile collector or a Pushgateway, built with prometheus-client from the one
serialized form of the results.

Every figure is a gauge (no counters or histograms, so no ``*_created`` series) labelled with the
model and dataset (and language, for the per-language figures); an interval's ends are gauges of
their own (``*_ci_lower`` / ``*_ci_upper``). Label values are untrusted text: prometheus-client
escapes quotes, backslashes and newlines, and the other control characters are shown as escapes
first. The file is written atomically (prometheus-client writes a temporary file and renames it).
"""
from __future__ import annotations

import time

from .._text import terminal
from ..metrics.stats import interval, number

PREFIX = "speechlab"
# (name, help, key in the summary, key of its interval)
FIGURES = (
    ("wer", "word error rate (corpus-level)", "wer", "wer_ci"),
    ("cer", "character error rate (corpus-level)", "cer", "cer_ci"),
    ("error_rate", "the error figure the evaluation is judged by (WER, or CER for character languages)", "error_rate", "error_ci"),
    ("rtf", "real-time factor: processing seconds per audio second", "rtf", None),
    ("hallucination_rate", "share of utterances with a hallucination finding", "hallucination_rate", "hallucination_ci"),
    ("utterances", "utterances in the evaluation", "utterances", None),
    ("processed", "utterances the model produced an output for", "processed", None),
    ("audio_seconds", "seconds of audio evaluated", "audio_seconds", None),
)


def _label(value) -> str:
    return terminal("" if value is None else value, one_line=True)


def registry(records: list[dict], grades: dict, chats=(), meta: dict | None = None):
    """A prometheus-client registry holding the figures of ``records`` (EvalResult.serialized()),
    ``grades`` (model -> Grade) and ``chats`` (ChatEval.serialized())."""
    from prometheus_client import CollectorRegistry, Gauge, Info

    reg = CollectorRegistry()
    pair = ["model", "dataset"]
    gauges = {}
    for name, help_text, key, ci_key in FIGURES:
        gauges[key] = Gauge(f"{PREFIX}_{name}", help_text, pair, registry=reg)
        if ci_key:
            gauges[ci_key] = (Gauge(f"{PREFIX}_{name}_ci_lower", f"{help_text}: lower end of the 95% interval", pair, registry=reg),
                              Gauge(f"{PREFIX}_{name}_ci_upper", f"{help_text}: upper end of the 95% interval", pair, registry=reg))
    language = Gauge(f"{PREFIX}_language_error_rate", "each language's error figure (WER or CER)",
                     [*pair, "language", "metric"], registry=reg)
    for record in records:
        s = record["summary"]
        labels = (_label(s["model"]), _label(s["dataset"]))
        for _, _, key, ci_key in FIGURES:
            value = number(s.get(key))
            if value is not None:
                gauges[key].labels(*labels).set(value)
            ci = interval(s.get(ci_key)) if ci_key else None
            if ci:
                gauges[ci_key][0].labels(*labels).set(ci[0])
                gauges[ci_key][1].labels(*labels).set(ci[1])
        for lang in s.get("languages") or ():
            value = number(lang.get("error_rate"))
            if value is not None:
                language.labels(*labels, _label(lang.get("language")), _label(lang.get("metric"))).set(value)
    if chats:
        passed = Gauge(f"{PREFIX}_chat_pass_rate", "share of checked chat answers that pass their answer keys",
                       ["model", "prompts"], registry=reg)
        ttft = Gauge(f"{PREFIX}_chat_first_token_seconds", "median time to the first token",
                     ["model", "prompts"], registry=reg)
        for chat in chats:
            s = chat["summary"]
            labels = (_label(s.get("model")), _label(s.get("prompts")))
            checked, ok = number(s.get("checked")), number(s.get("passed"))
            if checked:
                passed.labels(*labels).set(ok / checked)
            if number(s.get("median_first_token_s")) is not None:
                ttft.labels(*labels).set(number(s["median_first_token_s"]))
    if grades:
        grade = Info(f"{PREFIX}_grade", "the readiness grade of each model", ["model"], registry=reg)
        for model, g in grades.items():
            grade.labels(_label(model)).info({"grade": _label(getattr(g, "grade", g))})
    if meta:
        Info(f"{PREFIX}_run", "the run these figures come from", registry=reg).info(
            {k: _label(v) for k, v in meta.items() if v is not None})
        Gauge(f"{PREFIX}_run_timestamp_seconds", "when the figures were written (Unix time)",
              registry=reg).set(time.time())
    return reg


def write(path: str, records: list[dict], grades: dict, chats=(), meta: dict | None = None) -> None:
    from prometheus_client import write_to_textfile

    write_to_textfile(path, registry(records, grades, chats, meta))


def text(records: list[dict], grades: dict, chats=(), meta: dict | None = None) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry(records, grades, chats, meta)).decode("utf-8")
