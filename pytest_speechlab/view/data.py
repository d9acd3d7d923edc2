"""What the viewer's pages show, read from the results store (never written): runs with their gate
outcome, one run's scorecard, one evaluation's utterances, two runs compared the way the gate
compares them, and each model x dataset's figures across runs in commit order.

Everything here is plain data: the templates escape it (Jinja autoescape), the JSON endpoints
serialize it."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from .. import gate_report
from .._types import SpeechlabError
from ..compare import (
    compare,
    family_size,
    identity_changes,
    judge,
    machine_changes,
    pair_sides,
    stored_slices,
)
from ..metrics.stats import interval, number
from ..metrics.wer import score_words
from ..sinks.report import AUDIO_TYPES, verdict_notes

GATE_TEST = "test_no_regression_against_baseline"
TREND_METRICS = {  # key in the aggregate -> (label, interval key)
    "wer": ("WER", "wer_ci"), "cer": ("CER", "cer_ci"), "rtf": ("RTF", None),
    "hallucination_rate": ("hallucination rate", "hallucination_ci"),
}
SORTS = {  # the evaluation page's orders: errors first by default
    "errors": lambda u: (-(u["errors"] if u["errors"] is not None else -1), u["utterance_id"]),
    "wer": lambda u: (-(u["wer"] if u["wer"] is not None else -1), u["utterance_id"]),
    "id": lambda u: u["utterance_id"],
    "duration": lambda u: (-(u["audio_seconds"] or 0), u["utterance_id"]),
    "rtf": lambda u: (-(u["rtf"] if u["rtf"] is not None else -1), u["utterance_id"]),
}
PAGE = 100


def _short(commit) -> str:
    return str(commit)[:10] if commit else "-"


def _gate(outcomes: list[dict]) -> str:
    """The regression gate's outcome in a run: passed, failed, skipped (nothing to compare), or
    'not run'."""
    found = [o["outcome"] for o in outcomes if GATE_TEST in str(o.get("nodeid"))]
    if not found:
        return "not run"
    return "failed" if "failed" in found else found[0]


def runs(store, model: str = "", dataset: str = "", status: str = "", commit: str = "", limit: int = 200) -> dict:
    """The runs, newest first, filtered by model, dataset, status and commit (prefix)."""
    per_run: dict[str, dict] = defaultdict(lambda: {"models": set(), "datasets": set(), "grades": {}, "outcomes": []})
    for row in store.all_rows("models", "run_id", "name"):
        per_run[row["run_id"]]["models"].add(row["name"])
    for table in ("aggregates", "progress"):
        for row in store.all_rows(table, "run_id", "dataset"):
            per_run[row["run_id"]]["datasets"].add(row["dataset"])
    for row in store.all_rows("grades", "run_id", "model", "grade"):
        per_run[row["run_id"]]["grades"][row["model"]] = row["grade"]
    for row in store.all_rows("outcomes", "run_id", "nodeid", "outcome"):
        per_run[row["run_id"]]["outcomes"].append(row)
    named = _baseline_names(store)
    shown = []
    for run in store.runs():
        found = per_run[run["id"]]
        if (model and model not in found["models"]) or (dataset and dataset not in found["datasets"]) \
                or (status and run["status"] != status) or (commit and not str(run["git_commit"] or "").startswith(commit)):
            continue
        if len(shown) < limit:
            shown.append({**run, "commit": _short(run["git_commit"]), "models": sorted(found["models"]),
                          "datasets": sorted(found["datasets"]), "gate": _gate(found["outcomes"]),
                          "baselines": named.get(run["id"], []), "grades": found["grades"],
                          "failed": sum(o["outcome"] == "failed" for o in found["outcomes"])})
    return {"runs": shown, "models": sorted({m for f in per_run.values() for m in f["models"]}),
            "datasets": sorted({d for f in per_run.values() for d in f["datasets"]}),
            "filters": {"model": model, "dataset": dataset, "status": status, "commit": commit}}


def names(store) -> dict:
    """Every model and dataset recorded (the filters' choices), by DISTINCT queries: a few ms
    however many runs there are."""
    models = {r["name"] for r in store.all_rows("models", "name")}
    datasets = {r["dataset"] for table in ("aggregates", "progress") for r in store.all_rows(table, "dataset")}
    return {"models": sorted(m for m in models if isinstance(m, str)),
            "datasets": sorted(d for d in datasets if isinstance(d, str))}


def _baseline_names(store) -> dict[str, list[str]]:
    """Run id -> the baselines that name it."""
    named = defaultdict(list)
    for b in store.baselines():
        named[b["run_id"]].append(b["name"])
    return named


def run_choices(store, limit: int = 500) -> list[dict]:
    """The newest ``limit`` runs for a chooser: id, start, commit and the baselines naming each."""
    named = _baseline_names(store)
    return [{**r, "commit": _short(r["git_commit"]), "baselines": named.get(r["id"], [])} for r in store.runs(limit)]


def run(store, run_id: str) -> dict:
    """One run: metadata, the scorecard (ASR and TTS figures with intervals and grades), chat and
    spoken-pipeline results, grades with reasons, the tests that did not pass, and its progress."""
    data = store.run(run_id)
    grades = {g["model"]: g for g in data["grades"]}
    languages = defaultdict(list)
    for lang in data["languages"]:
        languages[(lang["model"], lang["dataset"])].append(lang)
    scorecard, chats = [], []
    for a in data["aggregates"]:
        x = a["metrics"] if isinstance(a["metrics"], dict) else {}
        if x.get("task") in ("chat", "spoken"):
            chats.append({"model": a["model"], "dataset": a["dataset"], "metrics": x})
            continue
        per_language = languages.get((a["model"], a["dataset"]), [])
        scorecard.append({"model": a["model"], "dataset": a["dataset"], "metrics": x,
                          "grade": (grades.get(a["model"]) or {}).get("grade"),
                          "gate": x.get("gate") if isinstance(x.get("gate"), dict) else None,
                          "slices": _slice_fields(x.get("slices")),
                          "languages": per_language if len(per_language) > 1 else []})
    tts = [{**row, "tts": row["metrics"]["tts"]} for row in scorecard if isinstance(row["metrics"].get("tts"), dict)]
    return {"run": data, "scorecard": scorecard, "models": [model_identity(m) for m in data["models"]],
            "chats": chats, "tts": tts, "grades": list(grades.values()),
            "notes": notes(data["aggregates"]),
            "failed": [o for o in data["outcomes"] if o["outcome"] not in ("passed", "skipped")],
            "skipped": [o for o in data["outcomes"] if o["outcome"] == "skipped"],
            "progress": live(store, run_id, data["status"])}


def _slice_fields(value) -> list[dict]:
    """An evaluation's recorded slice summaries of the shape this version writes (an imported run's
    may be anything)."""
    return [f for f in value if isinstance(f, dict) and isinstance(f.get("slices"), list)] if isinstance(value, list) else []


def model_identity(row: dict) -> dict:
    """What a run's model was: backend and version, weights and their digest, decode settings,
    threads and device (as the model reported them; every value shown as text, escaped)."""
    info = row.get("info") if isinstance(row.get("info"), dict) else {}
    decode = info.get("decode") if isinstance(info.get("decode"), dict) else row.get("params")
    digest = row.get("weights_sha256") or info.get("weights_sha256") or info.get("weights_digest")
    return {"name": row.get("name"), "backend": row.get("backend") or info.get("backend"),
            "version": row.get("backend_version") or info.get("backend_version"),
            "weights": row.get("weights") or info.get("weights"), "digest": str(digest)[:19] if digest else None,
            "decode": ", ".join(f"{k}={v}" for k, v in sorted(decode.items())) if isinstance(decode, dict) else None,
            "threads": info.get("threads"), "device": info.get("device"), "load_seconds": number(row.get("load_seconds"))}


def notes(aggregates: list[dict]) -> list[str]:
    """The report's notes on how far the verdicts hold (repeats, sampling, speed not judged), from
    the stored figures; an evaluation whose stored figures are not of the shape this version writes
    (an imported or older run) has none."""
    found = []
    for a in aggregates:
        try:
            found += verdict_notes([{"summary": a["metrics"], "environment": a.get("environment") or {}}])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            continue
    return found


def live(store, run_id: str, status: str | None = None) -> dict:
    """A run's progress: status, and per evaluation the utterances written of those planned and the
    WER over them so far (what the run page refreshes while the run goes on). ``status``: the run's,
    when the caller has read it already."""
    status = status or store.run(run_id)["status"]
    evaluations = []
    for p in store.progress(run_id):
        evaluations.append({**p, "wer": p["errors"] / p["words"] if p["words"] else None,
                            "rtf": p["processing_seconds"] / p["audio_seconds"] if p["audio_seconds"] else None,
                            "fraction": p["done"] / p["total"] if p["total"] else None})
    return {"run_id": run_id, "status": status, "evaluations": evaluations,
            "done": sum(e["done"] for e in evaluations),
            "total": sum(e["total"] or 0 for e in evaluations)}


def _counts(r: dict) -> tuple[int, int] | None:
    """(word errors, reference words) of a stored row, or None when it was not scored (or its
    counts are not integers: an imported row is not trusted for its types)."""
    values = [r.get(k) for k in ("hits", "substitutions", "deletions", "insertions")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    hits, subs, dels, ins = values
    return subs + dels + ins, hits + subs + dels


def evaluation(store, run_id: str, model: str, dataset: str, sort: str = "errors", page: int = 1,
               slice_field: str = "", slice_value: str = "") -> dict:
    """One evaluation's utterances in the chosen order, a page at a time (only one slice's, with
    ``slice_field`` and ``slice_value``: the utterances behind that slice's figure); the page's rows
    get their word alignment (recomputed from the stored normalized texts) and whether their audio
    can be served."""
    rows = store.utterances(run_id, model, dataset)
    if not rows:
        raise SpeechlabError(f"run {run_id[:8]} has no utterances of {model!r} on {dataset!r}")
    aggregate = next((a["metrics"] for a in store.run(run_id)["aggregates"]
                      if (a["model"], a["dataset"]) == (model, dataset)), None)
    aggregate = aggregate if isinstance(aggregate, dict) else None
    if slice_field:
        members = {uid for uid, value in stored_slices((aggregate or {}).get("slices")).get(slice_field, {}).items()
                   if value == slice_value}
        if not members:
            raise SpeechlabError(f"run {run_id[:8]} recorded no slice {slice_field} = {slice_value!r} of {model!r} on {dataset!r}")
        rows = [r for r in rows if str(r["utterance_id"]) in members]
    items = []
    for r in rows:
        counts = _counts(r)
        audio, seconds = number(r.get("audio_seconds")), number(r.get("processing_seconds"))
        items.append({**r, "utterance_id": str(r["utterance_id"]), "errors": counts[0] if counts else None,
                      "wer": counts[0] / counts[1] if counts and counts[1] else None, "audio_seconds": audio,
                      "rtf": seconds / audio if audio and seconds is not None else None, "scored": counts is not None})
    items.sort(key=SORTS.get(sort, SORTS["errors"]))
    pages = max(1, -(-len(items) // PAGE))
    page = min(max(1, page), pages)
    shown = items[(page - 1) * PAGE: page * PAGE]
    for u in shown:
        alignment = score_words(str(u.get("reference_normalized") or ""), str(u.get("hypothesis_normalized") or ""))[1] \
            if u["scored"] else ()
        u["alignment"] = [(op.op, " ".join(op.ref), " ".join(op.hyp)) for op in alignment]
        u["playable"] = playable(u.get("audio_path")) is not None
    return {"run_id": run_id, "model": model, "dataset": dataset, "sort": sort if sort in SORTS else "errors",
            "sorts": list(SORTS), "page": page, "pages": pages, "count": len(items),
            "utterances": shown, "metrics": aggregate,
            "slice": {"field": slice_field, "value": slice_value} if slice_field else None}


def playable(path: object) -> Path | None:
    """The audio file a stored row names, if it may be served: a string naming an existing regular
    file (symbolic links followed) with an audio extension from a fixed table, that soundfile can
    read as audio. Nothing else is ever opened: the database names the file, the request only the
    row."""
    if not isinstance(path, str) or not path or "\x00" in path or not os.path.isabs(path):
        return None
    target = Path(os.path.realpath(path))
    if target.suffix.lower().lstrip(".") not in AUDIO_TYPES or not target.is_file():
        return None
    import soundfile

    try:
        soundfile.info(str(target))
    except Exception:  # noqa: BLE001 - not audio: never served
        return None
    return target


def audio_file(store, run_id: str, model: str, dataset: str, utterance_id: str) -> Path | None:
    rows = [r for r in store.utterances(run_id, model, dataset) if r["utterance_id"] == utterance_id]
    return playable(rows[0].get("audio_path")) if rows else None


def comparison(store, ref_a: str, ref_b: str, policy) -> dict:
    """The gate's paired analysis of two runs: each model x dataset both have, its figures and
    verdicts, and the utterances that got worse."""
    ida, idb = store.resolve(ref_a), store.resolve(ref_b)
    grouped = []
    for run_id in (ida, idb):
        rows = defaultdict(list)
        for r in store.utterances(run_id):
            rows[(r["model"], r["dataset"])].append(r)
        grouped.append(rows)
    pairs = pair_sides(store.run(ida), grouped[0], store.run(idb), grouped[1])
    family = family_size(pairs, policy) if pairs else 0
    found = []
    for cmp in judge([compare(a, b, policy, family) for a, b in pairs], policy) if pairs else []:
        analysis = cmp.analysis()  # what the terminal, the reports and the JUnit properties show
        by_id = {r["utterance_id"]: r for r in grouped[1][(cmp.candidate.model, cmp.candidate.dataset)]}
        for w in analysis["worse"]:
            row = by_id.get(w["id"]) or {}
            w.update(reference=row.get("reference"), playable=playable(row.get("audio_path")) is not None)
        found.append({**analysis, "model": cmp.candidate.model, "dataset": cmp.candidate.dataset,
                      "rows": gate_report.rows(analysis)})
    return {"a": store.run(ida), "b": store.run(idb), "comparisons": found, "family": family, "policy": policy}


def trends(store, metric: str = "wer", model: str = "", dataset: str = "") -> dict:
    """Each model x dataset's figures across runs, one point per run that evaluated it, in commit
    order (the commit's time; runs of one commit, or without a commit, by when they started), with
    intervals where the figure has one and the runs named as baselines marked."""
    if metric not in TREND_METRICS:
        metric = "wer"
    label, ci_key = TREND_METRICS[metric]
    named = defaultdict(list)
    for b in store.baselines():
        named[b["run_id"]].append(b["name"])
    identities = store.identities()
    series: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in store.history():
        x = row["metrics"] if isinstance(row["metrics"], dict) else {}
        if x.get("task") in ("chat", "spoken") or (model and row["model"] != model) or (dataset and row["dataset"] != dataset):
            continue
        series[(row["model"], row["dataset"])].append({
            "run_id": row["run_id"], "commit": _short(row["git_commit"]), "dirty": bool(row["git_dirty"]),
            "commit_time": row["git_commit_time"], "started_at": row["started_at"], "status": row["status"],
            "baselines": named.get(row["run_id"], []), "cached": int(number(x.get("cached")) or 0),
            "identity": identities.get((row["run_id"], row["model"]), {}),
            "environment": row["environment"] if isinstance(row["environment"], dict) else {},
            "gate": x.get("gate") if isinstance(x.get("gate"), dict) else None,
            "figures": {key: {"value": number(x.get(key)), "ci": interval(x.get(ci)) if ci else None}
                        for key, (_, ci) in TREND_METRICS.items()}})
    out = []
    for (m, d), points in sorted(series.items()):
        points.sort(key=lambda p: (p["commit_time"] or p["started_at"] or "", p["started_at"] or ""))
        for before, point in zip([None, *points], points):  # what changed since the run plotted before it
            point["changes"] = [] if before is None else [
                *identity_changes(before["identity"], point["identity"]),
                *machine_changes(before["environment"], point["environment"], before["identity"], point["identity"])]
        for point in points:
            del point["identity"], point["environment"]
        out.append({"model": m, "dataset": d, "points": points})
    return {"metric": metric, "label": label, "metrics": {k: v[0] for k, v in TREND_METRICS.items()},
            "series": out, "filters": {"model": model, "dataset": dataset}}

