"""The terminal summary: one row per model x dataset, then input errors and the measuring setup."""
from __future__ import annotations

from typing import Iterable

from .._text import format_table
from ..metrics.results import EvalResult
from ..metrics.stats import wilson
from ..tasks.chat import ChatEval


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


MAX_FLAGGED_SHOWN = 8


def _ci(result: EvalResult) -> str:
    ci = result.wer_ci
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-"


def summary_lines(results: Iterable[EvalResult], loaded: dict, grades: Iterable = (), width: int | None = None) -> list[str]:
    results = list(results)
    repeated = any(r.nondeterminism_rate is not None for r in results)
    header = ["model", "dataset", "utts", "audio s", "WER", "WER 95% CI", "CER", "S/D/I", "halluc",
              "halluc 95% CI", "RTF", "RTFx", "threads", "load s", "loads", "cached", "errors"] + (["nondet"] if repeated else [])
    rows = []
    for r in results:
        words = r.words
        scored = bool(r.scored)
        model = loaded.get(r.model)
        flagged, total = r.hallucination_counts
        ci = wilson(flagged, total)
        rows.append([
            r.model, r.dataset,
            f"{len(r.processed)}/{len(r.utterances) + len(r.dataset_errors)}",
            f"{r.audio_seconds:.1f}",
            _num(r.wer), _ci(r), _num(r.cer),
            f"{words.substitutions}/{words.deletions}/{words.insertions}" if scored else "-",
            f"{flagged}/{total}", f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-",
            _num(r.rtf), _num(r.rtfx, ".1f"), str(r.environment.get("threads", "-")),
            _num(r.load_seconds, ".2f"),
            str(model.load_count) if model else "-",
            f"{r.cached_count}/{len(r.processed)}",
            str(len(r.errors)),
        ] + ([_num(r.nondeterminism_rate)] if repeated else []))
    lines = format_table(header, rows, width=width)
    normalizers = sorted({r.normalizer for r in results})
    lines.append(f"WER/CER: corpus level after normalizer {', '.join(normalizers)}; "
                 "non-speech clips are not scored. S/D/I: substitutions/deletions/insertions. halluc: "
                 "utterances with a hallucination finding, Wilson 95% interval. RTF excludes model load and "
                 "one warm-up call.")
    cached = [r for r in results if r.cached_count]
    if cached:
        total = sum(r.cached_count for r in results)
        computed = sum(r.computed_count for r in results)
        lines.append(f"inference cache: {total} outputs from the cache, {computed} computed. Cached outputs keep "
                     "the timing measured when they were computed; speed checks use a sample re-timed here:")
        for r in cached:
            runs = sorted({str((u.cached or {}).get("run_id"))[:8] for u in r.utterances if u.cached})
            cpus = sorted({str((u.cached or {}).get("cpu")) for u in r.utterances if u.cached})
            retimed = r.retimed or {}
            lines.append(f"  {r.model} on {r.dataset}: {r.cached_count} cached (runs {', '.join(runs)}; "
                         f"{', '.join(cpus)}), RTF {_num(r.rtf)} as cached; re-timed here on "
                         f"{retimed.get('utterances', 0)} utterances: RTF {_num(retimed.get('rtf'))}")
    machines = {(r.environment.get("cpu"), r.environment.get("cpu_count"), r.environment.get("device"),
                 r.environment.get("python")) for r in results}
    for cpu, count, device, python in sorted(machines, key=str):
        lines.append(f"measured on: {cpu} ({count} CPUs), device {device}, Python {python}, batch size 1")
    flagged = [(r, u) for r in results for u in r.flagged]
    if flagged:
        lines.append(f"hallucination findings ({len(flagged)} utterances):")
        for r in results:
            for u in r.flagged[:MAX_FLAGGED_SHOWN]:
                kinds = "; ".join(str(f) for f in u.findings if f.counts)
                lines.append(f"  [{r.model}] {r.dataset} {u.utterance.id}: {u.hypothesis[:60]!r}: {kinds}")
            if len(r.flagged) > MAX_FLAGGED_SHOWN:
                lines.append(f"  [{r.model}] {r.dataset}: {len(r.flagged) - MAX_FLAGGED_SHOWN} more")
    grades = list(grades)
    if grades:
        lines.append("readiness grades:")
        lines.extend(f"  {g.model}: {g}" for g in grades)
    errors = [(r, e) for r in results for e in r.errors]
    if errors:
        lines.append(f"input errors ({len(errors)}); the other utterances were evaluated:")
        lines.extend(f"  [{r.model}] {e}" for r, e in errors)
    skipped = [(r, u) for r in results for u in r.skipped]
    if skipped:
        lines.append(f"skipped utterances ({len(skipped)}):")
        lines.extend(f"  [{r.model}] {u.utterance.source}: {u.note}" for r, u in skipped)
    return lines


def chat_summary_lines(evals: list[ChatEval]) -> list[str]:
    def num(v, fmt=".2f"):
        return "-" if v is None else format(v, fmt)

    header = ["model", "prompts", "answered", "pass", "relevance", "TTFT s", "tok/s", "flagged", "load s", "errors"]
    rows = [[e.model, e.prompts, f"{len(e.answered)}/{len(e.items)}", num(e.pass_rate),
             num(e.mean_relevance), num(e.median_first_token_seconds), num(e.tokens_per_second, ".1f"),
             str(len(e.flagged)), num(e.load_seconds), str(len(e.errors))] for e in evals]
    lines = format_table(header, rows)
    lines.append("pass: share of prompts whose answer holds the expected content; relevance: mean cosine "
                 f"similarity of answer and question ({', '.join(sorted({e.relevance_judge or '-' for e in evals}))}); "
                 "TTFT: median time to first token; load and one warm-up excluded.")
    for e in evals:
        for line in e.failures(0.0):
            lines.append(f"  [{e.model}] {line}")
        for err in e.errors:
            lines.append(f"  [{e.model}] {err}")
    return lines
