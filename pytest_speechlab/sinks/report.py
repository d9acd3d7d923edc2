"""Reports people and CI systems read: an HTML scorecard and evidence for pytest-html, Markdown,
pytest-benchmark JSON, and the machine-readable run file.

Everything from a model or a manifest is untrusted text: it goes through ``html.escape`` (HTML),
``md()`` (Markdown) or ``json`` (files) and never into markup as it is.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import statistics
from typing import Iterable

from .._text import esc, md
from ..metrics.specs import SPECS
from ..metrics.stats import format_rate
from .store import RESULTS_FORMAT

AUDIO_EMBED_BUDGET = 2_000_000  # bytes of audio embedded per report; beyond it players link to files
AUDIO_EMBED_MAX_FILE = 400_000
BENCHMARK_VERSION = "5.1.0"  # the pytest-benchmark JSON layout this file follows

_STYLE = """
<style>
.speechlab table{border-collapse:collapse;margin:.5em 0;font-size:13px}
.speechlab th,.speechlab td{border:1px solid #ccc;padding:2px 6px;text-align:right}
.speechlab td.t,.speechlab th.t{text-align:left}
.speechlab .best{font-weight:bold;background:#e3f5e1}
.speechlab .failing{color:#a00}
.speechlab dl.run{display:grid;grid-template-columns:max-content auto;gap:0 1em;font-size:13px}
.speechlab dl.run dt{font-weight:bold}.speechlab dl.run dd{margin:0}
.speechlab .grade-C,.speechlab .grade-D,.speechlab .grade-F{color:#a00}
.speechlab .align span{padding:0 2px;margin:0 1px;border-radius:2px}
.speechlab .sub{background:#fde2a7}.speechlab .del{background:#f8c4c4;text-decoration:line-through}
.speechlab .ins{background:#c9e4f8}
.speechlab figure{display:inline-block;margin:0 1em}
.speechlab .scroll{max-width:100%;overflow-x:auto}
.speechlab .verdict-bad,.speechlab .problem{color:#a00;font-weight:bold}.speechlab .verdict-ok{color:#1d6b2c}
</style>
"""


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


# -- the scorecard --------------------------------------------------------------------------


def scorecard_rows(records: Iterable[dict], grades: dict, thresholds: dict | None = None) -> list[dict]:
    """One row per evaluation: its summary (the form the database keeps too) with the grade; with
    ``thresholds`` (model -> metric -> limit) each row also says which of its figures fail their
    limit (``failing``), so that no failing value is marked best. ``records``: each evaluation's
    ``EvalResult.serialized()``, as every function here takes them."""
    rows = []
    for record in records:
        r = record["summary"]
        grade = grades.get(r["model"])
        limits = (thresholds or {}).get(r["model"], {})
        # the "wer" limit judges the headline (WER, CER where written without spaces, the macro average)
        # a figure too few to judge is never marked failing (nor best)
        unjudged = r.get("too_few") if isinstance(r.get("too_few"), dict) else {}
        failing = {key for key, metric in (("error_rate", "wer"), ("cer", "cer"), ("rtf", "rtf"))
                   if r[key] is not None and metric in limits and not SPECS[metric].passes(r[key], limits[metric])
                   and metric not in unjudged}
        failing |= {f"language:{lang['language']}" for lang in r["languages"] if len(r["languages"]) > 1
                    and not lang.get("too_few")
                    and lang["error_rate"] is not None and lang["error_rate"] > limits.get("wer", float("inf"))}
        if "rtf" in failing:
            failing.add("rtfx")
        if any(metric in limits and not SPECS[metric].passes(r[SPECS[metric].figure] or 0, limits[metric])
               for metric in ("hallucination_rate", "nonspeech_hallucination_rate")):
            failing.add("hallucination_rate")
        rows.append({**r, "failing": sorted(failing),
                     "grade": grade.grade if grade else None, "grade_reason": grade.reason if grade else None})
    return rows


def _best(rows: list[dict], key: str, higher: bool = False):
    """The best value of a column among the rows whose value passes its limit."""
    values = [r[key] for r in rows if r[key] is not None and key not in r.get("failing", ())]
    return (max(values) if higher else min(values)) if values else None


def sdi(row: dict) -> str:
    single = len(row.get("languages", ())) <= 1
    return "-" if row["error_rate"] is None or not single else f'{row["substitutions"]}/{row["deletions"]}/{row["insertions"]}'

def _too_few(lang: dict) -> str:
    """", too few to judge (n = 2 < 10)" for a language under its minimum sample (a stored row of
    another shape: nothing)."""
    return f", {lang['too_few']}" if isinstance(lang.get("too_few"), str) else ""


def headline(metric: str, value: float | None, ci=None) -> str:
    """An error figure with what it is: "WER 0.123 [0.100, 0.150]", "CER ...", "macro ..."."""
    if value is None:
        return "-"
    return f"{metric.upper() if metric != 'macro' else 'macro'} {value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def scorecard_html(records: list[dict], grades: dict, thresholds: dict | None = None, run: dict | None = None) -> str:
    rows = scorecard_rows(records, grades, thresholds)
    best = {k: _best(rows, k, higher=(k == "rtfx")) for k in ("cer", "rtf", "rtfx", "hallucination_rate", "load_seconds")}
    # error rates are best only among rows of the same kind: a CER is never "better" than a WER
    best["error_rate"] = {m: _best([r for r in rows if r["error_metric"] == m], "error_rate") for m in {r["error_metric"] for r in rows}}

    def cell(row, key, spec=".3f", ci=None):
        value = row[key]
        text = _fmt(value, spec)
        if key == "error_rate" and value is not None:
            text = esc("macro" if row["error_metric"] == "macro" else row["error_metric"].upper()) + " " + text
        if ci and row[ci]:
            text += f" <small>[{row[ci][0]:.3f}, {row[ci][1]:.3f}]</small>"
        top = best.get(key).get(row["error_metric"]) if key == "error_rate" else best.get(key)
        if key in row["failing"]:
            cls = ' class="failing" title="fails its threshold"'
        elif value is not None and value == top and len(rows) > 1:
            cls = ' class="best"'
        else:
            cls = ""
        return f"<td{cls}>{text}</td>"

    body = []
    for row in rows:
        grade = row["grade"] or "-"
        body.append(
            f'<tr><td class="t">{esc(row["model"])}</td><td class="t">{esc(row["dataset"])}</td>'
            f'<td>{row["utterances"]}</td>{cell(row, "error_rate", ci="error_ci")}{cell(row, "cer", ci="cer_ci")}'
            f'<td>{sdi(row)}</td>'
            f'{cell(row, "rtf")}{cell(row, "rtfx", ".1f")}{cell(row, "hallucination_rate", ci="hallucination_ci")}'
            f'<td class="t grade-{esc(grade[0])}" title="{esc(row["grade_reason"] or "")}">{esc(grade)}</td>'
            f'{cell(row, "load_seconds", ".2f")}<td>{row["cached"]}/{row["cached"] + row["computed"]}</td></tr>'
        )
        for lang in row["languages"] if len(row["languages"]) > 1 else ():
            failing = f"language:{lang['language']}" in row["failing"]
            body.append(
                f'<tr class="language"><td class="t"></td><td class="t">{esc(row["dataset"])} · {esc(lang["language"])}</td>'
                f'<td>{lang["utterances"]}</td><td{" class=failing" if failing else ""}>'
                f'{esc(headline(lang["metric"], lang["error_rate"], lang["ci"]) + _too_few(lang))}</td>'
                f'<td>{_fmt(lang["cer"], ".3f")}</td>'
                f'<td>{lang["substitutions"]}/{lang["deletions"]}/{lang["insertions"]}</td>'
                f'<td colspan="6" class="t"><small>{esc(lang["normalizer"])}</small></td></tr>')
    header = ("<tr><th class='t'>model</th><th class='t'>dataset</th><th>utts</th><th>error [95% CI]</th>"
              "<th>CER [95% CI]</th><th>S/D/I</th><th>RTF</th><th>RTFx</th><th>hallucination rate [Wilson 95% CI]</th>"
              "<th class='t'>grade</th><th>load s</th><th>from cache</th></tr>")
    reasons = "".join(f"<li><b>{esc(g.model)}: {esc(g.grade)}</b> {esc(g.reason)}</li>" for g in grades.values())
    normalizers = ", ".join(sorted({esc(r["normalizer"]) for r in records}))
    return (
        f'{_STYLE}<div class="speechlab" id="speechlab-scorecard"><h2>Speech model scorecard</h2>'
        f"{run_html(run)}<table>{header}{''.join(body)}</table>"
        f"<p>error: corpus WER, CER for a language written without spaces, and across languages the macro "
        f"average of each language's figure (one row per language below it); normalizers {normalizers}; "
        f"95% bootstrap intervals over utterances; best passing "
        f"value per column in bold, values that fail their threshold in red. RTF excludes load and warm-up; outputs from "
        f"the inference cache keep the timing measured when they were computed, and speed checks use a sample "
        f"re-timed in this run ({sum(r['cached'] for r in rows)} cached outputs here"
        + ("; none re-timed where retime is 0: speed not judged there" if any(r.get("speed_unjudged") for r in rows) else "")
        + ")."
        f"</p><ul>{reasons}</ul>{notes_html(records)}{plots_html(rows)}</div>"
    )


def notes_html(records: list[dict]) -> str:
    notes = verdict_notes(records)
    return (f'<h3>How far the verdicts hold</h3><ul class="notes">{"".join(f"<li>{esc(n)}</li>" for n in notes)}</ul>'
            if notes else "")


def run_html(run: dict | None) -> str:
    """Which run this is: id, commit, CPU, threads per model."""
    if not run:
        return ""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in run.items() if v not in (None, ""))
    return f'<dl class="run" id="speechlab-run">{items}</dl>'


def all_evidence_html(records: list[dict], budget: AudioBudget) -> str:
    """Evidence for every evaluation, green or red, once each."""
    parts = [evidence_html(r, budget) for r in records]
    return "".join(p for p in parts if p)


# -- plots (inline SVG, no plotting dependency) ----------------------------------------------


def _svg_scatter(points: list[tuple[float, float, str]], xlabel: str, ylabel: str, title: str) -> str:
    if not points:
        return ""
    w, h, pad = 560, 280, 50
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = 0.0, max(xs) * 1.1 or 1.0
    y0, y1 = 0.0, max(ys) * 1.1 or 1.0

    def sx(x):
        return pad + (x - x0) / (x1 - x0) * (w - 2 * pad)

    def sy(y):
        return h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    def label_at(x, y, label):  # labels on the right half of the plot extend to the left
        anchor, dx = ("end", -6) if sx(x) > w / 2 else ("start", 6)
        return f'<text x="{sx(x) + dx:.1f}" y="{sy(y) - 6:.1f}" font-size="10" text-anchor="{anchor}">{esc(label)}</text>'

    dots = "".join(
        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="#2a6fb0"><title>{esc(label)}</title></circle>'
        + label_at(x, y, label)
        for x, y, label in points
    )
    axes = (f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>'
            f'<text x="{w / 2}" y="{h - 12}" font-size="11" text-anchor="middle">{esc(xlabel)} (0 to {x1:.3g})</text>'
            f'<text x="14" y="{h / 2}" font-size="11" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
            f'{esc(ylabel)} (0 to {y1:.3g})</text>')
    return (f'<figure><figcaption>{esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{w}" height="{h}" role="img">{axes}{dots}</svg></figure>')


def _svg_bars(bars: list[tuple[str, float]], title: str) -> str:
    if not bars:
        return ""
    top = max(v for _, v in bars) or 1.0
    row, label_w, bar_w = 22, 300, 220
    h = row * len(bars) + 10
    body = "".join(
        f'<text x="{label_w - 6}" y="{i * row + 16}" font-size="11" text-anchor="end">{esc(label)}</text>'
        f'<rect x="{label_w}" y="{i * row + 5}" width="{value / top * bar_w:.1f}" height="14" fill="#2a6fb0">'
        f"<title>{esc(label)}: {value:.3f}</title></rect>"
        f'<text x="{label_w + value / top * bar_w + 4:.1f}" y="{i * row + 16}" font-size="11">{value:.3f}</text>'
        for i, (label, value) in enumerate(bars)
    )
    return (f'<figure><figcaption>{esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{label_w + bar_w + 60}" height="{h}" role="img">{body}</svg></figure>')


def _short(dataset: str) -> str:
    """A manifest path by its folder ('.../realspeech-dev/manifest.jsonl' -> 'realspeech-dev')."""
    parts = dataset.replace("\\", "/").rstrip("/").split("/")
    return parts[-2] if len(parts) > 1 and "." in parts[-1] else parts[-1]


def plots_html(summaries: list[dict]) -> str:
    speech = [r for r in summaries if r["error_rate"] is not None and r["rtfx"]]

    def name(r):
        return f"{r['model']} / {_short(r['dataset'])}" + ("" if r["error_metric"] == "wer" else f" ({r['error_metric']})")
    frontier = _svg_scatter([(r["rtfx"], r["error_rate"], name(r)) for r in speech],
                            "RTFx (faster →)", "error", "Speed/accuracy: error (WER; CER or macro where marked) "
                            "against RTFx per model x dataset")
    per_dataset = _svg_bars([(name(r), r["error_rate"])
                             for r in sorted(speech, key=lambda r: (r["dataset"], r["model"]))],
                            "Error rate per dataset and model")
    return frontier + per_dataset


# -- evidence for a failing test --------------------------------------------------------------


def alignment_html(alignment: list) -> str:
    parts = []
    for op, ref, hyp in alignment:
        ref, hyp = " ".join(ref), " ".join(hyp)
        if op == "equal":
            parts.append(f"<span>{esc(ref)}</span>")
        elif op == "substitute":
            parts.append(f'<span class="sub" title="substitution: reference {esc(ref)}">{esc(hyp)}</span>')
        elif op == "delete":
            parts.append(f'<span class="del" title="deletion">{esc(ref)}</span>')
        else:
            parts.append(f'<span class="ins" title="insertion">{esc(hyp)}</span>')
    return '<div class="align">' + " ".join(parts) + "</div>"


AUDIO_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg", "opus": "audio/ogg"}


class AudioBudget:
    """Embeds short clips as data URLs until the budget is spent; links to the file after that.
    Each clip is embedded once per report: a later mention links to the first player."""

    def __init__(self, budget: int = AUDIO_EMBED_BUDGET) -> None:
        self.left = budget
        self.players: dict[str, str] = {}  # path -> the element id of its player

    def player(self, path: str) -> str:
        from pathlib import Path

        if path in self.players:
            return f'<a href="#{self.players[path]}">audio: see the player above</a>'
        # The MIME type comes from a fixed table, never from the (untrusted) file name.
        mime = AUDIO_TYPES.get(os.path.splitext(path)[1].lower().lstrip("."), "application/octet-stream")
        try:
            size = os.path.getsize(path)
        except OSError:
            return f"<span>audio missing: {esc(path)}</span>"
        element = f"speechlab-clip-{len(self.players) + 1}"
        self.players[path] = element
        if size <= AUDIO_EMBED_MAX_FILE and size <= self.left:
            self.left -= size
            with open(path, "rb") as fh:
                data = base64.b64encode(fh.read()).decode("ascii")
            return f'<audio id="{element}" controls preload="none" src="data:{mime};base64,{data}"></audio>'
        url = esc(Path(os.path.abspath(path)).as_uri())
        return (f'<audio id="{element}" controls preload="none" src="{url}"></audio> '
                f'<a href="{url}">{esc(os.path.basename(path))}</a>')


MAX_EVIDENCE = 200  # utterances shown per evaluation; the run file has all of them


def word_errors(u: dict) -> int:
    return (u["substitutions"] or 0) + (u["deletions"] or 0) + (u["insertions"] or 0)


def worst(record: dict, n: int = 5) -> list[dict]:
    """The scored utterances with the most word errors (ties: higher utterance WER first)."""
    scored = [u for u in record["utterances"] if u["status"] == "scored"]
    ranked = sorted(scored, key=lambda u: (word_errors(u), word_errors(u) / max(
        u["hits"] + u["substitutions"] + u["deletions"], 1)), reverse=True)
    return [u for u in ranked[:n] if word_errors(u)]


def evidence_html(record: dict, budget: AudioBudget, n_worst: int = 5) -> str:
    """The worst utterances and every hallucination of one evaluation, with alignment and audio."""
    worst_utts = worst(record, n_worst)
    shown = {u["utterance_id"] for u in worst_utts}
    all_flagged = [u for u in record["utterances"] if u["hallucinated"]]
    flagged = [u for u in all_flagged if u["utterance_id"] not in shown]
    utts = (worst_utts + flagged)[:MAX_EVIDENCE]
    rows = []
    for u in utts:
        findings = "".join(f"<li>{esc(f['kind'])}: {esc(f['evidence'])}</li>" for f in u["findings"])
        reference = u["hits"] + u["substitutions"] + u["deletions"] if u["status"] == "scored" else 0
        wer = f"{'CER' if u['unit'] == 'char' else 'WER'} {word_errors(u) / reference:.2f}" if reference else "not scored"
        note = f"<p><i>{esc(u['note'])}</i></p>" if u["note"] else ""
        rows.append(
            f'<div class="utt"><p><b>{esc(u["utterance_id"])}</b> ({esc(u["source"])}) {wer}</p>'
            f"<p>ref: {esc(u['reference_normalized'])}</p><p>hyp: {esc(u['hypothesis'])}</p>{note}"
            f"{alignment_html(u['alignment']) if u['alignment'] else ''}"
            f"{'<ul>' + findings + '</ul>' if findings else ''}{budget.player(u['audio_path'])}</div>"
        )
    if not rows:
        return ""
    more = len(worst_utts) + len(flagged) - len(utts)
    tail = f"<p>{more} more flagged utterances are in the run file (--speechlab-json).</p>" if more > 0 else ""
    return (f'{_STYLE}<div class="speechlab evidence"><h4>Evidence: {esc(record["model"])} on {esc(record["dataset"])} '
            f"(worst {len(worst_utts)} by errors, {len(all_flagged)} with a hallucination finding)</h4>"
            + "".join(rows) + tail + "</div>")


# -- Markdown, benchmark JSON, run file --------------------------------------------------------


def scorecard_markdown(records: list[dict], grades: dict) -> str:
    rows = scorecard_rows(records, grades)
    lines = ["## Speech model scorecard", "",
             "| model | dataset | utts | error [95% CI] | CER | S/D/I | RTF | RTFx | hallucinated [Wilson 95% CI] | grade | cached |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {md(r['model'])} | {md(r['dataset'])} | {r['utterances']} | "
                     f"{headline(r['error_metric'], r['error_rate'], r['error_ci'])} | "
                     f"{_fmt(r['cer'])} | {sdi(r)} | {_fmt(r['rtf'])} | "
                     f"{_fmt(r['rtfx'], '.1f')} | {format_rate(r['hallucinated'], r['processed'])} | {md(r['grade'] or '-')} | {r['cached']} |")
        for lang in r["languages"] if len(r["languages"]) > 1 else ():
            lines.append(f"| | {md(r['dataset'])} · {md(lang['language'])} | {lang['utterances']} | "
                         f"{md(headline(lang['metric'], lang['error_rate'], lang['ci']) + _too_few(lang))} | {_fmt(lang['cer'])} | "
                         f"{lang['substitutions']}/{lang['deletions']}/{lang['insertions']} | | | | | |")
    lines.append("")
    for g in grades.values():
        lines.append(f"- **{md(g.model)}: {md(g.grade)}** {md(g.reason)}")
    notes = verdict_notes(records)
    if notes:
        lines += ["", "How far the verdicts hold:", "", *(f"- {md(note)}" for note in notes)]
    return "\n".join(lines) + "\n"


def _stats(times: list[float]) -> dict:
    data = sorted(times) or [0.0]
    n = len(data)
    q = statistics.quantiles(data, n=4) if n >= 2 else [data[0]] * 3
    iqr = q[2] - q[0]
    mean = statistics.fmean(data)
    stddev = statistics.stdev(data) if n > 1 else 0.0
    low, high = q[0] - 1.5 * iqr, q[2] + 1.5 * iqr
    return {
        "min": data[0], "max": data[-1], "mean": mean, "stddev": stddev, "rounds": n, "median": statistics.median(data),
        "iqr": iqr, "q1": q[0], "q3": q[2], "iqr_outliers": sum(1 for x in data if x < low or x > high),
        "stddev_outliers": sum(1 for x in data if abs(x - mean) > stddev) if stddev else 0,
        "outliers": f"{sum(1 for x in data if abs(x - mean) > stddev) if stddev else 0};"
                    f"{sum(1 for x in data if x < low or x > high)}",
        "ld15iqr": min((x for x in data if x >= low), default=data[0]),
        "hd15iqr": max((x for x in data if x <= high), default=data[-1]),
        "ops": 1 / mean if mean else 0.0, "total": sum(data), "iterations": 1,
    }


def benchmark_json(records: list[dict], grades: dict, machine: dict, chats=()) -> dict:
    """pytest-benchmark's file layout: one benchmark per model x dataset (and per chat model x prompt
    set); its stats are the per-utterance (per-prompt) times; extra_info carries the figures.
    ``chats``: each chat evaluation's ``ChatEval.serialized()``."""
    benchmarks = []
    for record, row in zip(records, scorecard_rows(records, grades)):
        model, dataset = row["model"], row["dataset"]
        times = [u["processing_seconds"] for u in record["utterances"] if u["status"] in ("scored", "unscored")]
        name = f"speechlab[{model}-{dataset}]"
        benchmarks.append({
            "group": dataset, "name": name, "fullname": f"speechlab::{name}",
            "params": {"model": model, "dataset": dataset}, "param": f"{model}-{dataset}",
            "extra_info": {
                **{k: v for k, v in row.items() if k != "failing"},
                "model_identity": record["model_info"],
                "cached_outputs": row["cached"], "computed_outputs": row["computed"],
                "timing": "; ".join(filter(None, [
                    ("stats are per-utterance times, some measured in earlier runs (inference cache); "
                     + ("none re-timed in this run (retime 0): speed not judged" if row.get("speed_unjudged")
                        else "retimed is this run's sample")) if row["cached"] else "measured in this run",
                    "an utterance decoded in a batch has its share of the batch's time, by audio length"
                    if any(size != "1" for size in row["rtf_by_batch_size"]) else "",
                    f"{row['workers']} concurrent workers: the stats are per-utterance latencies, not throughput "
                    f"(see throughput)" if row["workers"] > 1 else ""])),
            },
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 1, "max_time": 0,
                        "min_time": 0, "warmup": True},
            "stats": _stats(times),
        })
    for chat in chats:
        s = chat["summary"]
        name = f"speechlab-chat[{s['model']}-{s['prompts']}]"
        benchmarks.append({
            "group": s["prompts"], "name": name, "fullname": f"speechlab::{name}",
            "params": {"model": s["model"], "prompts": s["prompts"]}, "param": f"{s['model']}-{s['prompts']}",
            "extra_info": {**s, "model_identity": chat["model_info"]},
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 1, "max_time": 0,
                        "min_time": 0, "warmup": True},
            "stats": _stats([i["seconds"] for i in chat["items"] if i["error"] is None]),
        })
    return {"machine_info": machine, "commit_info": {}, "benchmarks": benchmarks,
            "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(), "version": BENCHMARK_VERSION}


def run_file(records: list[dict], grades: dict, meta: dict, chats=(), spoken=(), robustness: dict | None = None,
             run: dict | None = None, features: dict | None = None, sections: dict | None = None) -> dict:
    """Every per-utterance output and metric: nothing shown in the HTML is only in the HTML.
    ``robustness``: {"curves": [...], "evaluations": [...]} of the robustness suite; ``run``: the
    run as the results database holds it (what ``speechlab export`` writes under "run"), so that
    ``speechlab import`` reads this file too; None when the session recorded no run. ``features``:
    the sections of features added by plugins (``speechlab_register_features``); ``sections``: the
    built-in features' own: ``gate`` (the regression gate's analyses, None without
    ``--speechlab-baseline``) and ``slices`` (each evaluation by slice, None without slice fields)."""
    return {
        "format": RESULTS_FORMAT, "meta": json.loads(json.dumps(meta, default=str)),
        "scorecard": scorecard_rows(records, grades),
        "evaluations": list(records), "chat": list(chats), "spoken": list(spoken),
        "robustness": robustness or {"curves": [], "evaluations": []}, "features": features or {}, "run": run,
        "gate": None, "slices": None, **(sections or {}),
    }


# -- a service's latency (one row per evaluation of a model behind a service) -------------------

LATENCY_HEADER = ("model", "dataset", "concurrency", "requests", "p50 s", "p95 s [95% CI]", "p99 s",
                  "first partial p95 s", "after audio p95 s", "pacing", "throughput req/s", "faults", "failed")


def _p(figure: dict, q: str, ci: bool = False) -> str:
    value = figure.get(q)
    if value is None:
        return "-"
    interval = figure.get(f"{q}_ci") if ci else None
    needs = figure.get(f"{q}_ci_needs") if ci else None
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else
                             f" [no interval: n {figure.get('n')} < {needs}]" if needs else "")


def latency_rows(records: Iterable[dict]) -> list[list[str]]:
    """The latency table's cells (plain text; each renderer escapes them), for the evaluations of
    a model behind a service."""
    rows = []
    for record in records:
        s, lat = record["summary"], record["summary"].get("latency")
        if not lat:
            continue
        pacing = lat["pacing_ratio"]
        faults = ", ".join(f"{k} x{v}" for k, v in sorted(lat["faults"].items())) or "0"
        failed = ", ".join(f"{k} x{v}" for k, v in sorted(lat["errors_by_cause"].items())) or "0"
        rows.append([s["model"], s["dataset"], str(lat["concurrency"]),
                     f"{lat['requests']}" + (f" ({lat['cached']} timings cached)" if lat["cached"] else ""),
                     _p(lat["end_to_end_s"], "p50"), _p(lat["end_to_end_s"], "p95", ci=True), _p(lat["end_to_end_s"], "p99"),
                     _p(lat["first_partial_s"], "p95"), _p(lat["after_audio_s"], "p95"),
                     f"{pacing['median']:.3f}x" if pacing else "-",
                     _fmt(lat["throughput_requests_per_s"], ".2f"),
                     f"{faults} ({lat['requests_with_faults']} requests)" if lat["faults"] else "0", failed])
    return rows


def fault_lines(record: dict, limit: int = 20) -> list[str]:
    """Each request of a service evaluation that met a fault or failed, with what happened to it
    (plain text; each renderer escapes it); the rest are counted."""
    lines = []
    for u in record["utterances"]:
        faults = (u.get("latency") or {}).get("faults") or []
        if not faults and u["status"] != "error":
            continue
        counted = ", ".join(f"{kind} x{faults.count(kind)}" for kind in dict.fromkeys(faults))
        failed = f"failed: {u['error'][:200]}" if u["status"] == "error" else "succeeded"
        lines.append(f"{u['utterance_id']}: {counted + '; ' if counted else ''}{failed}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"{len(lines) - limit} more in the run file (--speechlab-json)"]
    return lines


LATENCY_NOTE = ("Per request, under the stated concurrency; one warm-up request excluded. End to end: from "
                "the start of the request to the final transcript. First partial and after audio: streaming only "
                "(from the end of the audio sent to the final transcript). Pacing: seconds taken to send the audio "
                "/ its length (1.00x is real time). Throughput on the wall clock, apart from latency. Faults were "
                "recovered from (a retried 429 or 5xx); failed requests are counted by cause. p95's interval is "
                "two order statistics that cover it at 95% whatever the distribution: it needs 59 requests "
                "(p99: 299); with fewer none is given.")


def latency_html(records: list[dict]) -> str:
    rows = latency_rows(records)
    if not rows:
        return ""
    head = "".join(f"<th{' class=t' if i < 2 else ''}>{esc(h)}</th>" for i, h in enumerate(LATENCY_HEADER))
    body = "".join("<tr>" + "".join(f"<td{' class=t' if i < 2 else ''}>{esc(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    faults = "".join(f"<h4>Faults and failures: {esc(r['model'])} on {esc(r['dataset'])}</h4><ul>"
                     + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>"
                     for r in records if r["summary"].get("latency") and (lines := fault_lines(r)))
    return (f'<div class="speechlab" id="speechlab-latency"><h2>Service latency</h2><table><tr>{head}</tr>{body}'
            f"</table><p>{esc(LATENCY_NOTE)}</p>{faults}</div>")


def latency_markdown(records: list[dict]) -> str:
    rows = latency_rows(records)
    if not rows:
        return ""
    lines = ["## Service latency", "", "| " + " | ".join(LATENCY_HEADER) + " |",
             "|" + "---|" * 2 + "---:|" * (len(LATENCY_HEADER) - 2)]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    lines += ["", md(LATENCY_NOTE)]
    for r in records:
        if r["summary"].get("latency") and (faults := fault_lines(r)):
            lines += ["", f"Faults and failures, {md(r['model'])} on {md(r['dataset'])}:", *(f"- {md(f)}" for f in faults)]
    return "\n".join(lines) + "\n"


# -- chat (its own figures: no WER; answers are model output, escaped like transcripts) ----------


def _ci(ci) -> str:
    return f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci else ""


def judge_line(summary: dict) -> str:
    """What the chat judge model said, for every renderer ('' without one)."""
    if not summary.get("judge"):
        return ""
    return (f"{summary['model']} judged by {summary['judge']}: pass {_fmt(summary['judge_pass_rate'], '.2f')}"
            f"{_ci(summary.get('judge_pass_ci'))} ({summary['judge_passed']}/{summary['judge_checked']}), "
            f"agreeing with the answer key on {_fmt(summary['judge_agreement'], '.2f')}; "
            f"{summary['judge_no_verdict']} repl(ies) without a verdict; {summary['judge_cached']} from the cache")


def chat_html(chats) -> str:
    if not chats:
        return ""
    rows = "".join(
        f'<tr><td class="t">{esc(r["model"])}</td><td class="t">{esc(r["prompts"])}</td>'
        f'<td>{r["processed"]}/{r["utterances"]}</td><td>{_fmt(r["pass_rate"], ".2f")}{_ci(r.get("pass_ci"))}</td>'
        f'<td>{_fmt(r["mean_relevance"], ".2f")}</td><td>{_fmt(r["median_first_token_s"], ".2f")}</td>'
        f'<td>{_fmt(r["tokens_per_second"], ".1f")}</td><td>{r["flagged"]}</td></tr>' for r in (c["summary"] for c in chats))
    failures = "".join(f"<li>{esc(c['summary']['model'])}: {esc(line)}</li>" for c in chats for line in c["failures"])
    failures += "".join(f"<li>{esc(line)}</li>" for c in chats if (line := judge_line(c["summary"])))
    return (f'<div class="speechlab" id="speechlab-chat"><h2>Chat</h2><table><tr><th class="t">model</th>'
            f'<th class="t">prompts</th><th>answered</th><th>pass</th><th>relevance</th><th>TTFT s</th>'
            f"<th>tok/s</th><th>flagged</th></tr>{rows}</table><ul>{failures}</ul></div>")


def chat_markdown(chats) -> str:
    if not chats:
        return ""
    lines = ["## Chat", "", "| model | prompts | answered | pass | relevance | TTFT s | tok/s | flagged |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {md(r['model'])} | {md(r['prompts'])} | {r['processed']}/{r['utterances']} | "
              f"{_fmt(r['pass_rate'], '.2f')}{_ci(r.get('pass_ci'))} | {_fmt(r['mean_relevance'], '.2f')} | "
              f"{_fmt(r['median_first_token_s'], '.2f')} | {_fmt(r['tokens_per_second'], '.1f')} | {r['flagged']} |"
              for r in (c["summary"] for c in chats)]
    lines += [f"- {md(c['summary']['model'])}: {md(line)}" for c in chats for line in c["failures"]]
    lines += [f"- {md(line)}" for c in chats if (line := judge_line(c["summary"]))]
    return "\n".join(lines) + "\n"


# -- robustness (WER per perturbation x severity; serialized curves) ----------------------------

ROBUSTNESS_HEADER = ["model", "perturbation", "clean", "severity 1", "severity 2", "severity 3", "severity 4",
                     "NWERD", "NWERD sum ratio", "breaks at", "halluc sev 4"]
ROBUSTNESS_NOTE = ("WER [95% CI] per severity (mild to harsh), the audio perturbed at the model's input rate; "
                   "WERD = perturbed WER - clean WER, paired on the same utterances (negative clipped at 0); NWERD "
                   "as Speech Robust Bench defines it (arXiv:2403.07937): the mean over severities of the model's "
                   "WERD / the reference model's (1.00: as robust as the reference; large where the reference "
                   "barely degrades at some severity); NWERD sum ratio: ImageNet-C's summed WERD / the "
                   "reference's ('-' where the reference's sum is under 0.05); (N errors): utterances that failed there (the failures are in "
                   "the results database and the run file); breaks at: the first severity with WERD above the werd "
                   "threshold (judged up to gate_severity); halluc: speech utterances with a hallucination "
                   "finding at the harshest severity.")


def _signed(point: dict) -> float | None:
    """A severity's signed WER difference (runs stored before it was kept apart: their "werd")."""
    value = point.get("werd_signed", point.get("werd"))
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def robustness_rows(curves: list[dict]) -> list[list[str]]:
    rows = []
    for c in curves:
        def cell(p):
            ci = p.get("ci")
            spread = f" ±{p['seed_spread'] / 2:.3f}" if p.get("seed_spread") is not None else ""
            errors = f" ({p['errors']} errors)" if p.get("errors") else ""  # a transform or the model failed
            return (f"{_fmt(p.get('wer'))}{spread} [{_fmt(ci[0], '.2f')}-{_fmt(ci[1], '.2f')}]" if ci
                    else _fmt(p.get("wer"))) + errors
        points = c["points"]
        broken = next((p for p in points if _signed(p) is not None and _signed(p) > c["werd_limit"]), None)
        harsh = points[-1]["hallucinated"] if points else [0, 0]
        rows.append([c["model"], c["kind"], _fmt(c.get("clean_wer")), *map(cell, points), *[""] * (4 - len(points)),
                     _fmt(c.get("nwerd"), ".2f"), _fmt(c.get("nwerd_sum_ratio"), ".2f"),
                     f"{broken['severity']} (WERD {_signed(broken):+.3f})" if broken else "-",
                     f"{harsh[0]}/{harsh[1]}"])
    return rows


def robustness_ladders(curves: list[dict]) -> list[str]:
    """What each severity is, per perturbation: 'noise: snr=30 | snr=20 | ...'."""
    def label(p):
        heard = p.get("snr_heard") if isinstance(p.get("snr_heard"), dict) else None
        mean = heard.get("mean") if heard else None
        return p["label"].split(":", 1)[-1] + (f" (heard {mean:.1f} dB)" if isinstance(mean, (int, float)) else "")
    ladders = {c["kind"]: [label(p) for p in c["points"]] for c in curves}
    return [f"{kind}: " + " | ".join(labels) for kind, labels in ladders.items()]


def _svg_lines(series: list[tuple[str, list[float | None]]], title: str, xlabels: list[str]) -> str:
    """WER (y) against severity (x), one line per model."""
    values = [v for _, ys in series for v in ys if v is not None]
    if not values:
        return ""
    w, h, pad = 420, 240, 44
    top = max(values) * 1.1 or 1.0
    colors = ("#2a6fb0", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085")

    def sx(i):
        return pad + i / max(len(xlabels) - 1, 1) * (w - 2 * pad)

    def sy(v):
        return h - pad - v / top * (h - 2 * pad)
    body = ""
    for n, (name, ys) in enumerate(series):
        color = colors[n % len(colors)]
        pts = [(sx(i), sy(v), v) for i, v in enumerate(ys) if v is not None]
        body += (f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts) + '"/>')
        body += "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{esc(name)}: {v:.3f}</title></circle>'
                        for x, y, v in pts)
        body += f'<text x="{w - pad + 4}" y="{pad + 12 * n}" font-size="10" fill="{color}">{esc(name)}</text>'
    axes = (f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>'
            + "".join(f'<text x="{sx(i):.1f}" y="{h - pad + 14}" font-size="10" text-anchor="middle">{esc(x)}</text>'
                      for i, x in enumerate(xlabels))
            + f'<text x="14" y="{h / 2}" font-size="11" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
              f"WER (0 to {top:.2f})</text>")
    return (f'<figure><figcaption>{esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{w + 160}" height="{h}" role="img">{axes}{body}</svg></figure>')


def robustness_plots_html(curves: list[dict]) -> str:
    """One plot per perturbation and dataset: WER from clean to severity 4, a line per model."""
    groups: dict[tuple, list[dict]] = {}
    for c in curves:
        groups.setdefault((c["kind"], c["dataset"]), []).append(c)
    return "".join(_svg_lines([(c["model"], [c.get("clean_wer"), *(p.get("wer") for p in c["points"])]) for c in group],
                              f"{kind} on {dataset}: WER against severity",
                              ["clean", *(str(p["severity"]) for p in group[0]["points"])])
                   for (kind, dataset), group in groups.items())


def robustness_html(curves: list[dict]) -> str:
    if not curves:
        return ""
    head = "".join(f"<th{' class=t' if i < 2 else ''}>{esc(h)}</th>" for i, h in enumerate(ROBUSTNESS_HEADER))
    body = "".join("<tr>" + "".join(f"<td{' class=t' if i < 2 else ''}>{esc(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in robustness_rows(curves))
    ladders = "".join(f"<li>{esc(line)}</li>" for line in robustness_ladders(curves))
    return (f'<div class="speechlab" id="speechlab-robustness"><h2>Robustness</h2><table><tr>{head}</tr>{body}</table>'
            f"<p>{esc(ROBUSTNESS_NOTE)}</p><ul>{ladders}</ul>{robustness_plots_html(curves)}</div>")


def robustness_markdown(curves: list[dict]) -> str:
    if not curves:
        return ""
    lines = ["## Robustness", "", "| " + " | ".join(ROBUSTNESS_HEADER) + " |",
             "|" + "---|" * 2 + "---:|" * (len(ROBUSTNESS_HEADER) - 2)]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in robustness_rows(curves)]
    lines += ["", md(ROBUSTNESS_NOTE), "", *(f"- {md(line)}" for line in robustness_ladders(curves))]
    return "\n".join(lines) + "\n"


def property_failures_html(failures: list[dict], budget: AudioBudget) -> str:
    """Each failed metamorphic property at its smallest example (hypothesis' shrunk one): the
    chain, each clip's clean and perturbed transcript, and the perturbed audio."""
    if not failures:
        return ""
    parts = []
    for f in failures:
        clips = "".join(f'<div class="utt"><p><b>{esc(c["utterance_id"])}</b>: {c["words"]} word(s) changed</p>'
                        f'<p>clean: {esc(c["clean"])}</p><p>perturbed: {esc(c["perturbed"])}</p>'
                        f'{budget.player(c["audio_path"]) if c["audio_path"] else ""}</div>' for c in f["changes"])
        parts.append(f"<h4>{esc(f['nodeid'])}: {esc(f['model'])}, {esc(f['what'])}</h4>"
                     f"<p>smallest failing perturbation: <code>{esc(f['chain'])}</code></p>{clips}")
    return (f'{_STYLE}<div class="speechlab evidence" id="speechlab-properties"><h2>Metamorphic properties that '
            f"failed</h2>{''.join(parts)}</div>")


MAX_VARIED_SHOWN = 8


def _span(ci, fmt: str = ".3f") -> str:
    return f"{ci[0]:{fmt}}-{ci[1]:{fmt}}" if ci else "-"


def verdict_notes(records: list[dict]) -> list[str]:
    """Plain-text notes on how far each evaluation's verdicts hold: what varied between repeats (or
    a figure resting on sampled decoding), and speed not judged on a busy machine. The terminal,
    the HTML report and the Markdown show these same lines (each renderer escapes them)."""
    return _sample_lines(records) + _repeat_lines(records) + _speed_lines(records)


def _sample_lines(records: list[dict]) -> list[str]:
    """Figures with too few samples to judge ([tool.speechlab.min_samples]): shown, never judged."""
    lines = []
    for r in records:
        s = r["summary"]
        found = s.get("too_few") if isinstance(s.get("too_few"), dict) else {}
        languages = [lang for lang in s.get("languages") or () if isinstance(lang, dict) and lang.get("too_few")]
        listed = languages and len(s["languages"]) > 1  # the languages say it: not again per metric
        parts = [f"{metric} {why}" for metric, why in found.items() if not (listed and metric in ("wer", "cer"))]
        if listed:
            parts.append("languages listed, not averaged: " + ", ".join(f"{lang.get('language')} {lang['too_few']}"
                                                                       for lang in languages))
        if parts:
            lines.append(f"not judged, {s['model']} on {s['dataset']}: " + "; ".join(parts)
                         + " ([tool.speechlab.min_samples]; no threshold, grade or gate uses these)")
    return lines


def _repeat_lines(records: list[dict]) -> list[str]:
    """What varied between repeats (each figure's mean and range, the transcripts that changed),
    and, without repeats, figures resting on sampled decoding."""
    lines = []
    for r in records:
        s, var = r["summary"], r["summary"].get("variability")
        if var:
            seed = r["environment"].get("seeding") or "-"
            lines.append(f"repeats, {s['model']} on {s['dataset']}: {var['repeats']} per utterance ({seed}); "
                         f"transcripts varied on {var['varied']}/{var['repeated']} [{_span(var['share_ci'], '.2f')}]")
            for figure, spread in var["figures"].items():
                counts = spread.get("flagged")
                ranged = (f"{min(counts)}-{max(counts)} of {spread['of']} flagged" if counts else
                          f"{spread['min']:.3f}-{spread['max']:.3f}")
                lines.append(f"  {figure}: mean {spread['mean']:.3f}, {ranged} across repeats"
                             + (f", 95% over utterances and repeats {_span(spread['ci'])}" if spread.get("ci") else ""))
            for v in var["varied_utterances"][:MAX_VARIED_SHOWN]:
                flagged = var["flagged"].get(v["utterance_id"])
                lines.append(f"  varied {v['utterance_id']}" + (f" (flagged in {flagged}/{var['repeats']})" if flagged else "")
                             + (" [sampled]" if v["sampled"] else "") + ": "
                             + " | ".join(repr(t[:40]) for t in v["transcripts"][:4]))
        elif s.get("sampling"):
            lines.append(f"sampling, {s['model']} on {s['dataset']}: {s['sampling']['note']}")
    return lines


def _speed_lines(records: list[dict]) -> list[str]:
    """Why speed was not judged where it was not (a busy machine, cached timings), and the machine's
    contention where it was measured."""
    lines = []
    for r in records:
        s = r["summary"]
        contention = (s.get("retimed") or {}).get("contention") if s["cached"] else s.get("contention")
        if s.get("speed_unjudged") and (contention or {}).get("busy"):  # cached timings: said with the cache above
            lines.append(s["speed_unjudged"])
    return lines


# -- error rates by slice (the run file's "slices" section) -------------------------------------

SLICE_HEADER = ("slice", "utterances", "error rate [95% CI]", "hallucinated [95% CI]", "judged")


def _ranked(f: dict) -> list[dict]:
    """A field's slices, the judged ones worst first, then those too small to judge."""
    return sorted(f["slices"], key=lambda s: (s["too_few"] is not None, -(s["error_rate"] or 0)))


def _slice_ci(s: dict) -> str:
    return f" [{s['ci'][0]:.3f}-{s['ci'][1]:.3f}]" if s["ci"] else ""


def _slice_rows(f: dict) -> list[list[str]]:
    return [[s["value"], str(s["utterances"]), f"{_fmt(s['error_rate'])}{_slice_ci(s)}",
             format_rate(s["hallucinated"], s["processed"]), s["too_few"] or "yes"] for s in _ranked(f)]


def _slice_test(f: dict) -> str:
    if f["p_value"] is None:
        return "gap not judged: fewer than two slices large enough to judge"
    adjusted = f" (Holm over {f['family']} fields: {f['p_adjusted']:.4f})" if f["family"] > 1 else ""
    return (f"gap {f['worst']} - {f['best']}: {f['gap']:+.3f} [95% CI {f['gap_ci'][0]:+.3f}, {f['gap_ci'][1]:+.3f}], "
            f"heterogeneity p = {f['p_value']:.4f}{adjusted}")


def slice_lines(sections: list[dict], alpha: float) -> list[str]:
    """The terminal's lines: per evaluation and field its slices worst first, then the gap and the
    heterogeneity test with its verdict at ``alpha``."""
    out = []
    for section in sections:
        for f in section["fields"]:
            shown = [f"{s['value']}: not scored ({s['utterances']})" if s["error_rate"] is None else
                     f"{s['value']} {s['error_rate']:.3f}{_slice_ci(s)} (n = {s['scored']}"
                     f"{', too few to judge' if s['too_few'] else ''})" for s in _ranked(f)]
            head = (f"slices of {section['model']} on {section['dataset']} by {f['field']}: " + "; ".join(shown[:12])
                    + (f"; {len(shown) - 12} more" if len(shown) > 12 else "")
                    + (f"; {f['missing']} without the field" if f["missing"] else ""))
            p = f["p_adjusted"] if f["p_adjusted"] is not None else f["p_value"]
            verdict = "" if p is None else ": the slices differ" if p < alpha else ": within noise"
            out += [head, f"  {_slice_test(f)}{verdict}"]
    return out


def slices_markdown(sections: list[dict] | None) -> str:
    if not sections:
        return ""
    lines = ["## Error rates by slice", ""]
    for section in sections:
        for f in section["fields"]:
            lines += [f"**{md(section['model'])} on {md(section['dataset'])} by {md(f['field'])}**: "
                      f"{md(_slice_test(f))}", "", "| " + " | ".join(SLICE_HEADER) + " |", "|---|---:|---:|---:|---|"]
            lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in _slice_rows(f)[:30]]
            lines.append("")
    return "\n".join(lines) + "\n"


def slices_html(sections: list[dict] | None) -> str:
    """Per evaluation and field: a bar chart of the slices' error rates and the table behind it."""
    if not sections:
        return ""
    out = [f'{_STYLE}<div class="speechlab slices"><h2>Error rates by slice</h2>']
    for section in sections:
        for f in section["fields"]:
            title = f"{section['model']} on {section['dataset']} by {f['field']}"
            bars = [(s["value"], s["error_rate"]) for s in f["slices"] if s["error_rate"] is not None and not s["too_few"]]
            out.append(f"<h3>{esc(title)}</h3><p>{esc(_slice_test(f))}</p>")
            out.append(_svg_bars(bars[:30], f"error rate by {f['field']} (slices large enough to judge)"))
            out.append('<div class="scroll"><table><thead><tr>' + "".join(f'<th class="t">{esc(h)}</th>' for h in SLICE_HEADER)
                       + "</tr></thead><tbody>" + "".join(
                           "<tr>" + "".join(f'<td class="{"t" if i in (0, 4) else "n"}">{esc(c)}</td>' for i, c in enumerate(row))
                           + "</tr>" for row in _slice_rows(f)) + "</tbody></table></div>")
    out.append("</div>")
    return "\n".join(out)


# -- text-to-speech: perceptual quality and listeners ------------------------------------------

TTS_HEADER = ("model", "texts", "DNSMOS OVRL [95% CI]", "speaker similarity [95% CI]", "listeners' MOS [95% CI]",
              "texts whose clip was rated", "same clips: listeners / DNSMOS", "Pearson r [95% CI]")


def _mean_ci(figure: dict | None, spec: str = ".2f") -> str:
    if not figure or figure.get("mean") is None:
        return "-"
    ci = figure.get("ci")
    return format(figure["mean"], spec) + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else "") + f" (n = {figure['n']})"


def tts_rows(records: Iterable[dict]) -> list[list[str]]:
    rows = []
    for t in records:
        q = (t.get("quality") or {}).get("figures") or {}
        listeners = t.get("listeners") or {}
        m, beside = listeners.get("mos") or {}, listeners.get("beside") or {}
        r, rci = beside.get("pearson"), beside.get("ci")
        rows.append([t["model"], t["texts"], _mean_ci(q.get("ovrl")), _mean_ci(q.get("speaker_similarity")),
                     _mean_ci({"mean": m.get("mos"), "ci": m.get("ci"), "n": m.get("n")}) if m else "no rating",
                     f"{listeners['same_clips']} ({listeners['clips']} distinct clips rated)" if listeners else "-",
                     f"{beside['listeners']:.2f} / {beside['dnsmos']:.2f} on {beside['clips']}" if beside else "-",
                     "-" if r is None else f"{r:.2f}" + (f" [{rci[0]:.2f}, {rci[1]:.2f}]" if rci else "")])
    return rows


def tts_html(records: list[dict] | None) -> str:
    """Each TTS evaluation's DNSMOS and speaker similarity beside the listeners' ratings of the same
    clips (from `speechlab view --listening`), with their correlation and a scatter per model."""
    if not records:
        return ""
    out = [f'{_STYLE}<div class="speechlab tts"><h2>Text-to-speech: predicted quality and listeners</h2>',
           '<div class="scroll"><table><thead><tr>' + "".join(f'<th class="t">{esc(h)}</th>' for h in TTS_HEADER)
           + "</tr></thead><tbody>" + "".join(
               "<tr>" + "".join(f'<td class="{"t" if i < 2 else "n"}">{esc(c)}</td>' for i, c in enumerate(row)) + "</tr>"
               for row in tts_rows(records)) + "</tbody></table></div>"]
    for t in records:
        points = ((t.get("listeners") or {}).get("beside") or {}).get("points") or []
        if len(points) >= 3:
            out.append(_svg_scatter([(y, x, str(item)) for x, y, item in points[:200]], "DNSMOS OVRL",
                                    "listeners' mean score (ACR)", f"{t['model']}: listeners against DNSMOS, per clip"))
    out.append("</div>")
    return "\n".join(out)
