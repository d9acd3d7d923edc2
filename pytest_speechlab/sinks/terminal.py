"""The terminal summary: one row per model x dataset, then input errors and the measuring setup.

Everything here reads the serialized form of a result (``EvalResult.serialized()``,
``ChatEval.serialized()``), like every other sink."""
from __future__ import annotations

from typing import Iterable

from .._text import format_table
from ..metrics.results import SIGNAL_ONLY
from .report import (  # the one latency table and the notes on verdicts, in every renderer
    LATENCY_HEADER,
    LATENCY_NOTE,
    fault_lines,
    _span,
    latency_rows,
    verdict_notes,
)


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


MAX_FLAGGED_SHOWN = 8


def _headline(metric: str, value: float | None) -> str:
    return "-" if value is None else f"{metric.upper()} {value:.3f}"



def summary_lines(records: Iterable[dict], loads: dict, grades: Iterable = (), width: int | None = None) -> list[str]:
    """``records``: each evaluation's ``serialized()``; ``loads``: model -> how many times it was built."""
    records = list(records)
    repeated = any(r["summary"]["nondeterminism_rate"] is not None for r in records)
    metrics = {r["summary"]["error_metric"] for r in records}
    # one kind of figure: the column is named for it; several (WER, CER, macro): each cell says which
    named = {"wer": "WER", "cer": "CER", "macro": "macro"}[next(iter(metrics))] if len(metrics) == 1 else "error"
    header = ["model", "dataset", "utts", "audio s", named, f"{named} 95% CI", "CER", "S/D/I", "halluc",
              "halluc 95% CI", "RTF", "RTFx", "threads", "load s", "loads", "cached", "errors"] + (["nondet"] if repeated else [])
    rows = []
    for record in records:
        s = record["summary"]
        languages = s["languages"]
        rows.append([
            s["model"], s["dataset"], f"{s['processed']}/{s['utterances'] + len(record['dataset_errors'])}",
            f"{s['audio_seconds']:.1f}", _num(s["error_rate"]) if named != "error" else _headline(s["error_metric"], s["error_rate"]),
            _span(s["error_ci"]),
            _num(s["cer"]),
            f"{s['substitutions']}/{s['deletions']}/{s['insertions']}" if s["scored"] and len(languages) <= 1 else "-",
            f"{s['hallucinated']}/{s['processed']}", _span(s["hallucination_ci"], ".2f"),
            _num(s["rtf"]), _num(s["rtfx"], ".1f"), str(record["environment"].get("threads") or "-"),
            _num(s["load_seconds"], ".2f"), str(loads.get(s["model"], "-")),
            f"{s['cached']}/{s['processed']}", str(s["errors"]),
        ] + ([_num(s["nondeterminism_rate"])] if repeated else []))
    lines = format_table(header, rows, width=width)
    multilingual = [r for r in records if len(r["summary"]["languages"]) > 1]
    for r in multilingual:  # one row per model x dataset x language
        s = r["summary"]
        lines.append(f"{s['model']} on {s['dataset']}, per language ({s['error_label']}: {_num(s['error_rate'])} "
                     f"[{_span(s['error_ci'])}]):")
        lines += ["  " + line for line in format_table(
            ["lang", "utts", "error", "95% CI", "CER", "S/D/I", "halluc", "lang ID"],
            [[lang["language"], f"{lang['scored']}/{lang['utterances']}", _headline(lang["metric"], lang["error_rate"]),
              "too few" if lang.get("too_few") else _span(lang["ci"]), _num(lang["cer"]),
              f"{lang['substitutions']}/{lang['deletions']}/{lang['insertions']}" if lang["scored"] else "-",
              f"{lang['hallucinated']}/{lang['utterances']}",
              f"{lang['language_id']['correct']}/{lang['language_id']['total']}" if lang["language_id"] else "-"]
             for lang in s["languages"]], text_columns=1, width=width - 2 if width else None)]
        by_label: dict[str, list[str]] = {}
        for lang in s["languages"]:
            by_label.setdefault(lang["normalizer"], []).append(lang["language"])
        lines.append("  normalizers: " + "; ".join(f"{' '.join(langs)}: {label}" for label, langs in by_label.items()))
    normalizers = sorted({r["normalizer"] for r in records if len(r["summary"]["languages"]) <= 1})
    lines.append(f"error: corpus WER, or CER for a language written without spaces (zh, ja, th, lo, km, my, yue); "
                 "across languages, the macro average of each language's figure (its interval resamples within "
                 f"each language). Normalizers: {' | '.join(normalizers) or 'per language, above'}; "
                 "non-speech clips are not scored. S/D/I: substitutions/deletions/insertions. halluc: "
                 "utterances with a hallucination finding, Wilson 95% interval. RTF excludes model load and "
                 "one warm-up call.")
    cached = [r for r in records if r["summary"]["cached"]]
    if cached:
        total = sum(r["summary"]["cached"] for r in records)
        computed = sum(r["summary"]["computed"] for r in records)
        lines.append(f"inference cache: {total} outputs from the cache, {computed} computed. Cached outputs keep "
                     "the timing measured when they were computed; speed checks use a sample re-timed here:")
        for r in cached:
            s, sources = r["summary"], [u["cached"] for u in r["utterances"] if u["cached"]]
            runs = sorted({str(c.get("run_id"))[:8] for c in sources})
            cpus = sorted({str(c.get("cpu")) for c in sources})
            retimed = s["retimed"]
            here = (f"re-timed here on {retimed.get('utterances', 0)} utterances: RTF {_num(retimed.get('rtf'))}"
                    if retimed else "none re-timed here (retime 0): speed not judged")
            lines.append(f"  {s['model']} on {s['dataset']}: {s['cached']} cached (runs {', '.join(runs)}; "
                         f"{', '.join(cpus)}), RTF {_num(s['rtf'])} as cached; {here}")
    machines = {(e.get("cpu"), e.get("cpu_count"), e.get("device"), e.get("python"), e.get("batch_size", 1))
                for e in (r["environment"] for r in records)}
    for cpu, count, device, python, batch in sorted(machines, key=str):
        lines.append(f"measured on: {cpu} ({count} CPUs), device {device}, Python {python}, batch size {batch}")
    measured = [r for r in records if r["summary"]["throughput"]]
    if measured:
        lines.append("throughput (audio s computed per wall-clock s of the evaluation; RTF above is per utterance):")
        for r in measured:
            s, e = r["summary"], r["environment"]
            rtfs = ", ".join(f"batch {size}: {_num(rtf)}" for size, rtf in s["rtf_by_batch_size"].items())
            lines.append(f"  {s['model']} on {s['dataset']}: {s['throughput']:.2f} over {s['wall_seconds']:.1f} s wall, "
                         f"{e.get('workers', 1)} {e.get('executor', 'serial')} worker(s) x {e.get('threads') or '-'} "
                         f"thread(s); RTF {rtfs}")
    served = latency_rows(records)
    if served:
        lines.append("service latency:")
        lines += ["  " + line for line in format_table(list(LATENCY_HEADER), served, width=width)]
        lines.append("  " + LATENCY_NOTE)
        for r in records:
            faults = fault_lines(r, limit=5) if r["summary"].get("latency") else []
            if faults:
                lines.append(f"  faults and failures, {r['summary']['model']} on {r['summary']['dataset']}:")
                lines += [f"    {line}" for line in faults]
    identified = [r for r in records if r["summary"]["language_id"]]
    if identified:
        lines.append("language identification (the language the model reports against the manifest's):")
        for r in identified:
            s, lid = r["summary"], r["summary"]["language_id"]
            per = ", ".join(f"{lang['language']} {lang['language_id']['correct']}/{lang['language_id']['total']}"
                            for lang in s["languages"] if lang["language_id"]) if len(s["languages"]) > 1 else ""
            lines.append(f"  {s['model']} on {s['dataset']}: {lid['correct']}/{lid['total']} "
                         f"[{_span(lid['ci'], '.2f')}]" + (f" ({per})" if per else ""))
    flagged = [(r, u) for r in records for u in r["utterances"] if u["hallucinated"]]
    if flagged:
        lines.append(f"hallucination findings ({len(flagged)} utterances):")
        for r in records:
            mine = [u for u in r["utterances"] if u["hallucinated"]]
            for u in mine[:MAX_FLAGGED_SHOWN]:
                kinds = "; ".join(f"{f['kind']}: {f['evidence']}" for f in u["findings"] if f["kind"] not in SIGNAL_ONLY)
                lines.append(f"  [{r['model']}] {r['dataset']} {u['utterance_id']}: {u['hypothesis'][:60]!r}: {kinds}")
            if len(mine) > MAX_FLAGGED_SHOWN:
                lines.append(f"  [{r['model']}] {r['dataset']}: {len(mine) - MAX_FLAGGED_SHOWN} more")
    lines += verdict_notes(records)
    grades = list(grades)
    if grades:
        lines.append("readiness grades:")
        lines.extend(f"  {g.model}: {g}" for g in grades)
    errors = [(r, e) for r in records for e in [*r["dataset_errors"], *(u["error"] for u in r["utterances"] if u["error"])]]
    if errors:
        lines.append(f"input errors ({len(errors)}); the other utterances were evaluated:")
        lines.extend(f"  [{r['model']}] {e}" for r, e in errors)
    skipped = [(r, u) for r in records for u in r["utterances"] if u["status"] == "skipped"]
    if skipped:
        lines.append(f"skipped utterances ({len(skipped)}):")
        lines.extend(f"  [{r['model']}] {u['source']}: {u['note']}" for r, u in skipped)
    return lines


def chat_summary_lines(chats: list[dict]) -> list[str]:
    """``chats``: each chat evaluation's ``serialized()``."""
    def num(v, fmt=".2f"):
        return "-" if v is None else format(v, fmt)

    header = ["model", "prompts", "answered", "pass", "pass 95% CI", "relevance", "TTFT s", "tok/s", "flagged",
              "load s", "errors"]
    rows = [[s["model"], s["prompts"], f"{s['processed']}/{s['utterances']}", num(s["pass_rate"]),
             _span(s.get("pass_ci"), ".2f"),
             num(s["mean_relevance"]), num(s["median_first_token_s"]), num(s["tokens_per_second"], ".1f"),
             str(s["flagged"]), num(s["load_seconds"]), str(len(c["errors"]))]
            for c in chats for s in [c["summary"]]]
    lines = format_table(header, rows)
    judges = sorted({c["summary"]["relevance_judge"] or "-" for c in chats})
    lines.append("pass: share of prompts whose answer passes its answer key (accepted aliases, required and "
                 "forbidden facts, on whole words), Wilson 95% interval; relevance: mean cosine "
                 f"similarity of answer and question ({', '.join(judges)}); "
                 "TTFT: median time to first token; load and one warm-up excluded.")
    for c in chats:
        s = c["summary"]
        if s.get("judge"):
            lines.append(f"  [{s['model']}] judged by {s['judge']}: pass {num(s['judge_pass_rate'])}"
                         f" [{_span(s.get('judge_pass_ci'), '.2f')}]"
                         f" ({s['judge_passed']}/{s['judge_checked']}); agrees with the answer key on "
                         f"{num(s['judge_agreement'])}; no verdict in {s['judge_no_verdict']} repl(ies); "
                         f"{s['judge_cached']} verdict(s) from the cache")
        if s.get("cached"):  # their TTFT and tokens/s are the timings measured when they were computed
            lines.append(f"  [{s['model']}] {s['cached']} of {s['utterances']} answers from the inference cache: "
                         "their timings are those measured when they were computed")
        for line in [*c["failures"], *c["errors"]]:
            lines.append(f"  [{c['summary']['model']}] {line}")
    return lines

