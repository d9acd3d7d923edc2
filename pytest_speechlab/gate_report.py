"""The regression gate's analysis, rendered: one source (``Comparison.analysis()``, plain data) and
one renderer per place a reviewer reads it: the terminal, the Markdown scorecard (a CI step summary:
a short table, the analysis in a details block), the HTML report and the viewer, JUnit properties.
The run file carries the analysis itself.

Everything in an analysis that came from outside (model names, transcripts, ids) is escaped by the
renderer of its place: ``terminal``, ``md`` or ``esc``.
"""
from __future__ import annotations

import re
from typing import Iterable

from ._text import esc, md, terminal
from .metrics.stats import format_rate

LIMIT = 10  # utterances listed per kind in the text forms (the HTML and the run file have them all)


def _p(x: dict) -> str:
    text = f"p(worse) = {x['p']:.4f}"
    if x.get("p_adjusted") is not None:
        text += f", {x['correction']} over {x['family']} comparisons: {x['p_adjusted']:.4f}"
    return text


def _interval(f: dict) -> str:
    return f"[{f['confidence']:.0%} CI {f['ci'][0]:+.4f}, {f['ci'][1]:+.4f}]"


def _rtf_line(r: dict, a: dict, b: dict) -> str:
    return (f"RTF {r['baseline']:.3f} -> {r['candidate']:.3f} (x{r['ratio']:.2f}, tolerance x{r['tolerance']:.2f}: "
            f"{r['verdict']}; machines: {a['cpu'] or '?'} -> {b['cpu'] or '?'})")


def title(x: dict) -> str:
    a, b = x["baseline"], x["candidate"]
    return f"{a['model']} ({a['label']}) -> {b['model']} ({b['label']}) on {b['dataset']}"


def text(x: dict, limit: int = LIMIT) -> str:
    """The terminal's form (also the regression test's failure message and `speechlab compare`)."""
    a, b = x["baseline"], x["candidate"]
    lines = [title(x), f"  verdict: {x['headline']}"]
    if x["identity_changes"]:
        lines.append("  model identity changed: " + ", ".join(x["identity_changes"]))
    if x["machine_changes"]:
        lines.append(f"  machine changed: {', '.join(x['machine_changes'])}: {x['machine_note']}")
    for f in x["figures"]:
        if "difference" not in f:
            lines.append(f"  {f['name']}: {f['verdict']}")
            continue
        lines.append(f"  {f['name']} {f['baseline']:.4f} -> {f['candidate']:.4f}  difference {f['difference']:+.4f} "
                     f"{_interval(f)}  {_p(f)}  {f['verdict']}; {f['detectable']}")
    flips = x["flips"]
    if flips:
        lines.append(f"  {flips['note']}; utterances correct->wrong {flips['correct_to_wrong']}, wrong->correct "
                     f"{flips['wrong_to_correct']} (exact test p = {flips['p']:.4f})")
    h = x["hallucination"]
    if h:
        lines.append(f"  hallucinations {format_rate(h['baseline'], h['n'])} -> {format_rate(h['candidate'], h['n'])}  newly flagged "
                     f"{len(h['newly_flagged'])}, no longer {h['no_longer']}  exact {_p(h)}  {h['verdict']}; {h['detectable']}")
        for u in h["newly_flagged"][:limit]:
            lines.append(f"    newly flagged {u['id']}: {u['hypothesis'][:80]!r}")
    r = x["rtf"]
    if r and r["unjudged"]:
        lines.append(f"  RTF not judged: {r['unjudged']}")
    if r and r["ratio"] is not None:
        lines.append("  " + _rtf_line(r, a, b))
    if x["worse"]:
        lines.append(f"  got worse ({len(x['worse'])}):")
        for w in x["worse"][:limit]:
            lines.append(f"    {w['id']}: errors {w['errors_a']} -> {w['errors_b']}: {w['hyp_a']!r} -> {w['hyp_b']!r}")
    if x["changed"]:
        lines.append(f"  other changed transcripts ({len(x['changed'])}):")
        for c in x["changed"][:limit]:
            lines.append(f"    {c['id']}: {c['hyp_a']!r} -> {c['hyp_b']!r}")
    return terminal("\n".join(lines))


def _adjusted(x: dict) -> str:
    return f" ({x['correction']} over {x['family']}: {x['p_adjusted']:.4f})" if x.get("p_adjusted") is not None else ""


def _cells(f: dict) -> list[str]:
    """A figure's row: name, baseline, candidate, difference [CI], p (adjusted), detectable, verdict."""
    if "difference" not in f:
        return [f["name"], "-", "-", "-", "-", "-", f["verdict"]]
    return [f["name"], f"{f['baseline']:.4f}", f"{f['candidate']:.4f}",
            f"{f['difference']:+.4f} [{f['ci'][0]:+.4f}, {f['ci'][1]:+.4f}]", f"{f['p']:.4f}{_adjusted(f)}",
            "-" if f["mde"] is None else f"{f['mde']:+.4f}", f["verdict"]]


def rows(x: dict) -> list[list[str]]:
    rows = [_cells(f) for f in x["figures"]]
    h = x["hallucination"]
    if h:
        rows.append(["hallucinations", format_rate(h["baseline"], h["n"]), format_rate(h["candidate"], h["n"]),
                     f"{len(h['newly_flagged'])} newly flagged, {h['no_longer']} no longer", f"{h['p']:.4f}{_adjusted(h)}",
                     h["detectable"], h["verdict"]])
    r = x["rtf"]
    if r and r["ratio"] is not None:
        rows.append(["RTF", f"{r['baseline']:.3f}", f"{r['candidate']:.3f}", f"x{r['ratio']:.2f}", "-",
                     f"tolerance x{r['tolerance']:.2f}", r["verdict"] + (f": {r['unjudged']}" if r["unjudged"] else "")])
    return rows


HEADER = ["figure", "baseline", "candidate", "difference [CI]", "p (worse)", "detectable", "verdict"]


def markdown(analyses: Iterable[dict], problems: Iterable[str] = ()) -> str:
    """For a CI step summary: one line per model x dataset, then each analysis in a details block."""
    analyses, problems = list(analyses), list(problems)
    if not analyses and not problems:
        return ""
    out = ["", "## Regression gate", ""]
    out += [f"- {md(p)}" for p in problems]
    if analyses:
        policy = analyses[0]["policy"]
        out += ["", f"alpha {policy['alpha']}, minimum effect {policy['min_effect']}, correction "
                f"{policy['correction']}, RTF tolerance x{1 + policy['rtf_tolerance']:.2f}", "",
                "| model | dataset | baseline | verdict |", "|---|---|---|---|"]
        for x in analyses:
            mark = "**REGRESSION**" if x["regressed"] else "no regression"
            out.append(f"| {md(x['candidate']['model'])} | {md(x['candidate']['dataset'])} | "
                       f"{md(x['baseline']['model'])} ({md(x['baseline']['label'])}) | {mark}: "
                       f"{md(x['headline'].removeprefix('REGRESSION: '))} |")
    for x in analyses:
        out += ["", f"<details><summary>{esc(title(x))}</summary>", ""]
        out += [f"- model identity changed: {md(', '.join(x['identity_changes']))}"] if x["identity_changes"] else []
        out += [f"- machine changed: {md(', '.join(x['machine_changes']))}: {md(x['machine_note'])}"] \
            if x["machine_changes"] else []
        out += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        out += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows(x)]
        if x["worse"]:
            out += ["", f"Utterances that got worse ({len(x['worse'])}):", "",
                    "| utterance | errors | baseline | candidate |", "|---|---|---|---|"]
            out += [f"| {md(w['id'])} | {w['errors_a']} -> {w['errors_b']} | {md(w['hyp_a'])} | {md(w['hyp_b'])} |"
                    for w in x["worse"][:LIMIT]]
            if len(x["worse"]) > LIMIT:
                out.append(f"\n{len(x['worse']) - LIMIT} more in the HTML report and the run file.")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def html(analyses: Iterable[dict], problems: Iterable[str] = ()) -> str:
    """The HTML report's section: every figure, and every utterance that got worse (the viewer's
    compare page shows the same rows, from ``rows``, with audio players)."""
    analyses, problems = list(analyses), list(problems)
    if not analyses and not problems:
        return ""
    out = ['<section class="speechlab gate"><h2>Regression gate</h2>']
    out += [f'<p class="problem">{esc(p)}</p>' for p in problems]
    for x in analyses:
        verdict_class = "verdict-bad" if x["regressed"] else "verdict-ok"
        out.append(f"<h3>{esc(title(x))}</h3>")
        out.append(f'<p class="{verdict_class}"><strong>{esc(x["headline"])}</strong></p>')
        if x["identity_changes"]:
            out.append(f'<p>Model identity changed: {esc(", ".join(x["identity_changes"]))}</p>')
        if x["machine_changes"]:
            out.append(f'<p class="problem">Machine changed: {esc(", ".join(x["machine_changes"]))}. {esc(x["machine_note"])}</p>')
        out.append('<div class="scroll"><table><thead><tr>' + "".join(f'<th scope="col">{esc(h)}</th>' for h in HEADER)
                   + "</tr></thead><tbody>")
        for row in rows(x):
            out.append(f'<tr><th scope="row" class="t">{esc(row[0])}</th>' + "".join(
                f'<td class="{"t" if i >= 5 else "n"}">{esc(c)}</td>' for i, c in enumerate(row[1:], 1)) + "</tr>")
        out.append("</tbody></table></div>")
        if x["flips"]:
            f = x["flips"]
            out.append(f"<p>{esc(f['note'])}; utterances correct to wrong {f['correct_to_wrong']}, wrong to correct "
                       f"{f['wrong_to_correct']} (exact test p = {f['p']:.4f})</p>")
        out.append(f"<p>Utterances that got worse: {len(x['worse'])}; other changed transcripts: {len(x['changed'])}</p>")
        if x["worse"]:
            out.append('<div class="scroll"><table class="worse"><thead><tr><th scope="col">utterance</th>'
                       '<th scope="col">errors</th><th scope="col">baseline</th><th scope="col">candidate</th></tr></thead><tbody>')
            out += [f'<tr><th scope="row" class="t"><code>{esc(w["id"])}</code></th><td class="n">{w["errors_a"]} → '
                    f'{w["errors_b"]}</td><td class="t">{esc(w["hyp_a"])}</td><td class="t">{esc(w["hyp_b"])}</td></tr>'
                    for w in x["worse"]]
            out.append("</tbody></table></div>")
    out.append("</section>")
    return "\n".join(out)


def properties(x: dict) -> list[tuple[str, str]]:
    """JUnit XML properties of the regression test: the verdict and each figure's numbers."""
    props = [("speechlab_gate_baseline", terminal(f"{x['baseline']['model']} ({x['baseline']['label']})")),
             ("speechlab_gate_verdict", terminal(x["headline"])),
             ("speechlab_gate_identity_changes", terminal(", ".join(x["identity_changes"]))),
             ("speechlab_gate_machine_changes", terminal(", ".join(x["machine_changes"]))),
             ("speechlab_gate_worse", str(len(x["worse"])))]
    for f in x["figures"]:
        if "difference" not in f:
            continue
        key = "speechlab_gate_" + re.sub(r"\W+", "_", f["name"].lower())  # "WER", "en error": a language's
        props += [(f"{key}_difference", f"{f['difference']:+.4f}"), (f"{key}_ci", f"{f['ci'][0]:+.4f},{f['ci'][1]:+.4f}"),
                  (f"{key}_p", f"{f['p']:.4f}"), (f"{key}_p_adjusted", "" if f["p_adjusted"] is None else f"{f['p_adjusted']:.4f}"),
                  (f"{key}_mde", "" if f["mde"] is None else f"{f['mde']:+.4f}"), (f"{key}_verdict", f["verdict"])]
    return props
