"""The ``speechlab`` command: browse, compare, export and prune the runs pytest-speechlab recorded."""
from __future__ import annotations

import json
import os
import stat
import sys
from collections import defaultdict
from pathlib import Path

import click

from ._config import load_config
from ._text import format_table, redact, terminal, terminal_width
from ._types import SpeechlabError
from .compare import compare, family_size, judge, pair_sides, unpaired
from .metrics.listening import figures as listening_figures
from .metrics.stats import format_rate
from .sinks.listening import create_test
from .sinks.store import IN_PROGRESS_HOURS, Store, default_url, normalize_url
from .view.app import serve


class Problem(click.ClickException):
    """A usage problem (bad reference, missing database, malformed file): exit 2, as click's own
    usage errors; exit 1 is kept for a regression found by `speechlab compare`."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(terminal(redact(message)))


def echo(text: str = "", **kwargs) -> None:
    """Everything printed passes here: outside text cannot drive the terminal or leak a password."""
    click.echo(terminal(redact(text)), **kwargs)


def _default_db() -> str:
    root = Path.cwd()
    configured = load_config(root / "pyproject.toml").db
    return normalize_url(configured, root) if configured else default_url(root)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SpeechlabError as exc:  # a store or configuration problem anywhere below
            raise Problem(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="SPEECHLAB_DB", metavar="URL_OR_PATH",
              help="results database: a SQLAlchemy URL or a SQLite file. Default: [tool.speechlab] db in "
                   "./pyproject.toml, else ./.speechlab/results.db (what `pytest suites/` writes).")
@click.pass_context
def main(ctx: click.Context, db: str | None) -> None:
    """Results of pytest-speechlab runs: list, show, compare, view, baselines, export/import, prune.

    \b
    Typical use:
      speechlab runs                          # newest first
      speechlab show latest
      speechlab compare main latest           # a baseline name, a run id (prefix) or 'latest'
      speechlab baseline set main latest      # then: pytest suites/ --speechlab-baseline main
      speechlab view                          # the same in a browser (prints its address and token)
    """
    try:
        url = normalize_url(db, Path.cwd()) if db else _default_db()
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None
    ctx.obj = lambda read_only: Store(url, read_only=read_only)


def _store(ctx, read_only: bool = True):
    """The store; the read-only commands (runs, show, compare, export, baseline list) never create,
    migrate or write a database."""
    try:
        return ctx.obj(read_only)
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None


def _resolve(store, ref: str) -> str:
    try:
        return store.resolve(ref)
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None


def _metric(value) -> str:
    """A stored figure (an imported run's may be anything)."""
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _interval(ci) -> str:
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_metric(v) != "-" for v in ci)
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ok else "-"


@main.command("runs")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="how many runs to list")
@click.pass_context
def runs_cmd(ctx, limit: int) -> None:
    """List runs, newest first: id, time, status, commit, models."""
    store = _store(ctx)
    baselines = defaultdict(list)
    for b in store.baselines():
        baselines[b["run_id"]].append(b["name"])
    rows = []
    for run in store.runs(limit=limit):
        models = sorted({m["name"] for m in store.run(run["id"])["models"]})
        commit = (run["git_commit"] or "-")[:10] + ("+dirty" if run["git_dirty"] else "")
        rows.append([run["id"][:8], str(run["started_at"])[:19], run["status"], commit, ", ".join(models) or "-",
                     ", ".join(baselines.get(run["id"], []))])
    if not rows:
        echo(f"no runs in {store.shown_url}")
        return
    echo("\n".join(format_table(["run", "started (UTC)", "status", "commit", "models", "baseline"], rows, 6)))


@main.command("show")
@click.argument("run")
@click.pass_context
def show_cmd(ctx, run: str) -> None:
    """Show a run: metadata, figures per model x dataset with intervals, grades, failed tests."""
    store = _store(ctx)
    data = store.run(_resolve(store, run))
    echo(f"run {data['id']}  {data['status']}  started {data['started_at']}  finished {data['finished_at'] or '-'}")
    echo(f"commit {data['git_commit'] or '-'}{' (dirty)' if data['git_dirty'] else ''}  host {data['host']}  "
               f"cpu {data['cpu']}  python {data['python']}  normalizer {data['normalizer']}")
    if data["imported_from"]:
        echo(f"imported from {data['imported_from']}")
    for m in data["models"]:
        echo(f"model {m['name']}: {m['backend']} {m['backend_version'] or ''}, weights {m['weights']} "
                   f"{m['weights_sha256'] or ''}, params {json.dumps(m['params'])}")
    rows, chats = [], []
    for a in data["aggregates"]:
        x = a["metrics"]
        if x.get("task") in ("chat", "spoken"):
            chats.append(a)
            continue
        metric = str(x.get("error_metric") or "wer")
        rows.append([a["model"], a["dataset"], "all", str(x.get("utterances")),
                     f"{metric} {_metric(x.get('error_rate', x.get('wer')))}", _interval(x.get("error_ci", x.get("wer_ci"))),
                     _metric(x.get("cer")), _metric(x.get("rtf")),
                     format_rate(x.get("hallucinated") or 0, x.get("processed") or 0)])
        languages = [lang for lang in data.get("languages", ()) if (lang["model"], lang["dataset"]) == (a["model"], a["dataset"])]
        for lang in languages if len(languages) > 1 else ():
            rows.append(["", a["dataset"], lang["language"], str(lang["scored"]), f"{lang['metric']} {_metric(lang['error_rate'])}",
                         _interval((lang["ci_low"], lang["ci_high"])), "", "", ""])
    if rows:
        echo("\n".join(format_table(["model", "dataset", "lang", "utts", "error", "95% CI", "CER", "RTF", "halluc [95% CI]"],
                                  rows, width=terminal_width())))
    for a in data["aggregates"]:  # a service's latency, as recorded (an old run's aggregate has none)
        lat = a["metrics"].get("latency")
        if isinstance(lat, dict) and isinstance(lat.get("end_to_end_s"), dict):
            e2e = lat["end_to_end_s"]
            echo(f"latency {a['model']} on {a['dataset']}: concurrency {lat.get('concurrency')}, {lat.get('requests')} "
                 f"requests, p50 {_metric(e2e.get('p50'))} s, p95 {_metric(e2e.get('p95'))} s, p99 {_metric(e2e.get('p99'))} s, "
                 f"{_metric(lat.get('throughput_requests_per_s'))} req/s, failed {lat.get('failed')}, "
                 f"faults {json.dumps(lat.get('faults') or {})}")
    for a in chats:
        x = a["metrics"]
        if x["task"] == "chat":
            echo(f"chat {a['model']} on {a['dataset']}: answered {x.get('processed')}/{x.get('utterances')}, "
                 f"pass {format_rate(x.get('passed') or 0, x.get('checked') or 0)}, relevance "
                 f"{_metric(x.get('mean_relevance'))}, TTFT {_metric(x.get('median_first_token_s'))} s, "
                 f"{_metric(x.get('tokens_per_second'))} tok/s, flagged {x.get('flagged')}")
        else:
            stages = ", ".join(f"{k} {v}" for k, v in sorted((x.get("by_stage") or {}).items()))
            echo(f"spoken {a['model']} on {a['dataset']}: {x.get('utterances')} prompts; {stages}")
    for g in data["grades"]:
        echo(f"grade {g['model']}: {g['grade']}: {g['reason']}")
    failed = [o for o in data["outcomes"] if o["outcome"] != "passed"]
    echo(f"tests: {len(data['outcomes'])} recorded, {len(failed)} not passed")
    for o in failed:
        echo(f"  {o['outcome']}: {o['nodeid']}")
    if data["status"] != "complete":
        echo("this run did not finish: its figures cover the utterances written before it stopped")


def _grouped(store, run_id: str) -> dict:
    rows = defaultdict(list)
    for r in store.utterances(run_id):
        rows[(r["model"], r["dataset"])].append(r)
    return rows


@main.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@click.option("--model-a", help="model in BASELINE to compare (default: pair by model name)")
@click.option("--model-b", help="model in CANDIDATE to compare")
@click.option("--dataset", help="only this dataset")
@click.pass_context
def compare_cmd(ctx, baseline: str, candidate: str, model_a, model_b, dataset) -> None:
    """Compare two runs on the utterances both have: difference with its interval, a paired
    permutation p-value (family-adjusted), an exact test on utterances that flip and on
    hallucinations, RTF ratio, identity changes, changed utterances.

    Exit status: 0 no regression, 1 a regression, 2 a usage problem (unknown run, no database)."""
    store = _store(ctx)
    ida, idb = _resolve(store, baseline), _resolve(store, candidate)
    rows_a, rows_b = _grouped(store, ida), _grouped(store, idb)
    if dataset:
        rows_a = {k: v for k, v in rows_a.items() if k[1] == dataset}
        rows_b = {k: v for k, v in rows_b.items() if k[1] == dataset}
    if bool(model_a) != bool(model_b):
        raise Problem("give both --model-a and --model-b (the baseline's model and the candidate's), or neither "
                      "(pair by model name)")
    pairs = pair_sides(store.run(ida), rows_a, store.run(idb), rows_b, model_a, model_b)
    if not pairs:
        could = unpaired(rows_a, rows_b)
        hint = (f"; the runs have {'; '.join(could)}: to compare different models say so, e.g. --model-a "
                f"{could[0].split(',')[0].split(' in ')[0]} --model-b ...") if could and not model_a else ""
        raise Problem(f"nothing to compare: no model x dataset in common{hint}" if not model_a else
                      f"nothing to compare: no dataset has {model_a} in the baseline and {model_b} in the candidate")
    for a, b in pairs:
        echo(f"paired: {a.model} (baseline, {a.label}) with {b.model} (candidate, {b.label}) on {b.dataset}"
             + ("" if a.model == b.model else "  [different names, as asked]"))
    policy = load_config(Path.cwd() / "pyproject.toml").regression
    family = family_size(pairs, policy)
    comparisons = judge([compare(a, b, policy, family) for a, b in pairs], policy)
    for cmp in comparisons:
        echo(cmp.report())
    regressed = [c for c in comparisons if c.regressions]
    if len(comparisons) > 1:
        echo(f"{len(regressed)} of {len(comparisons)} model x dataset pairs regressed "
             f"({family} tests, correction {policy.correction}, alpha {policy.alpha})")
    sys.exit(1 if regressed else 0)


@main.group("baseline")
def baseline_group() -> None:
    """Name runs as baselines (e.g. 'main') for `pytest --speechlab-baseline NAME`."""


def _check_baseline_name(name: str) -> None:
    if not name.strip() or len(name) > 200 or name != name.strip() or not name.isprintable():
        raise Problem(f"baseline name {name[:60]!r}{'...' if len(name) > 60 else ''}: give 1-200 printable "
                      "characters without leading or trailing spaces")


@baseline_group.command("set")
@click.argument("name")
@click.argument("run")
@click.pass_context
def baseline_set(ctx, name: str, run: str) -> None:
    """Point baseline NAME at RUN (an id, an id prefix, another baseline or 'latest')."""
    _check_baseline_name(name)
    store = _store(ctx.parent, read_only=False)
    try:
        run_id = store.set_baseline(name, run)
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None
    echo(f"baseline {name} -> run {run_id}")


@baseline_group.command("list")
@click.pass_context
def baseline_list(ctx) -> None:
    """List baselines."""
    for b in _store(ctx.parent).baselines():
        echo(f"{b['name']}  run {b['run_id']}  set {b['set_at']}")


@main.command("export")
@click.argument("run")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="file (default: stdout)")
@click.pass_context
def export_cmd(ctx, run: str, output: str | None) -> None:
    """Write a run as one self-contained JSON file (to keep a baseline in git, or to move it)."""
    store = _store(ctx)
    try:  # standard JSON only: a NaN or an infinity is refused, not written as a bare token
        text = json.dumps(store.export_run(_resolve(store, run)), indent=1, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise Problem(f"run {run}: cannot be written as standard JSON ({exc})") from None
    if output:
        try:
            Path(output).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise Problem(f"-o {output}: not written ({type(exc).__name__}: {exc.strerror or exc})") from None
        echo(f"wrote {output}", err=True)
    else:
        echo(text)


MAX_IMPORT_BYTES = 1 << 30  # speechlab import reads at most this much


def _no_constant(token: str):
    raise ValueError(f"{token} is not a number standard JSON allows")


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", "baseline_name", help="also name the imported run as this baseline")
@click.pass_context
def import_cmd(ctx, path: str, baseline_name: str | None) -> None:
    """Read a run exported with `speechlab export` (or a --speechlab-json run file) into this database."""
    if baseline_name is not None:
        _check_baseline_name(baseline_name)
    store = _store(ctx, read_only=False)
    info = os.stat(path)  # bounded: /dev/zero, a FIFO or a runaway file is an error, not a hang
    if not stat.S_ISREG(info.st_mode):
        raise Problem(f"{path}: not a regular file (a device, a pipe or a socket); give an exported run's file")
    if info.st_size > MAX_IMPORT_BYTES:
        raise Problem(f"{path}: {info.st_size >> 20} MiB, larger than the {MAX_IMPORT_BYTES >> 20} MiB a run export may be")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_no_constant)
        run_id = store.import_run(data, source=os.path.basename(path))
        if baseline_name:
            store.set_baseline(baseline_name, run_id)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Problem(f"{path}: not a JSON run export ({type(exc).__name__}: {str(exc)[:200]})") from None
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None
    echo(f"imported run {run_id}" + (f" as baseline {baseline_name}" if baseline_name else ""))


@main.command("prune")
@click.option("--keep", type=int, required=True, help="keep the newest N runs (baselines and the runs of listening tests are always kept)")
@click.option("--yes", is_flag=True, help="do not ask")
@click.pass_context
def prune_cmd(ctx, keep: int, yes: bool) -> None:
    """Delete old runs."""
    if keep < 0:
        raise Problem(f"--keep {keep}: give the number of newest runs to keep (0 or more)")
    store = _store(ctx, read_only=False)
    if not yes:
        click.confirm(f"delete all but the newest {keep} runs (baselines, listening tests' runs and runs in progress kept) from "
                      f"{store.shown_url}?", abort=True)
    doomed = store.prune(keep)
    echo(f"deleted {len(doomed)} run(s); baselines, listening tests' runs and runs that may be in progress (incomplete, started "
         f"in the last {IN_PROGRESS_HOURS} hours) are kept")


CONFIG_BLOCK = """
# pytest-speechlab (written by `speechlab init`; every key is optional, the values shown are the defaults)
[tool.pytest.ini_options]
# speechlab_models = ["faster-whisper/tiny.en"]        # or --speechlab-model NAME (repeatable)
# speechlab_datasets = ["speechlab/speech", "speechlab/nonspeech"]   # or a manifest path

[tool.speechlab]
normalizer = "speechlab-english"
# db = ".speechlab/results.db"     # or a SQLAlchemy URL; keep passwords in $SPEECHLAB_DB instead
# utterance_timeout = 60           # seconds one model call may take (off by default)

[tool.speechlab.thresholds]
wer = 0.20
cer = 0.10
rtf = 1.0
hallucination_rate = 0.05          # share of speech utterances with a hallucination finding
nonspeech_hallucination_rate = 0.0 # share of non-speech clips with one

# [tool.speechlab.thresholds.models."faster-whisper/tiny.en"]   # per-model overrides
# nonspeech_hallucination_rate = 0.5

# [tool.speechlab.models.tiny-vad]  # a variant: decode settings are part of the identity
# model = "faster-whisper/tiny.en"
# vad_filter = true

# [tool.speechlab.grades]
# min_grade = "B"                   # readiness tests fail below this grade

# [tool.speechlab.perturbations]    # named chains: --speechlab-dataset speechlab/speech+phone
# phone = "telephone+noise:color=pink,snr=20"

# [tool.speechlab.robustness]       # pytest suites/ --speechlab-robustness
# perturbations = ["noise", "babble", "ambient", "reverb", "speed", "clip", "telephone", "mp3", "dropout"]
# seeds = 1                         # more: the spread of WER across seeds per severity
# gate_severity = 2                 # the werd threshold holds at severities 1..2 of 4
# reference = "faster-whisper/tiny.en"   # NWERD's reference; default the first selected model

# [tool.speechlab.tts]
# reference_speaker = "my-voice/manifest.jsonl"   # speaker similarity to it (default: the voice's other clips)

# [tool.speechlab.regression]       # the gate: pytest --speechlab-baseline main --speechlab-fail-on-regression
# alpha = 0.05
# min_effect = 0.005
# correction = "holm"               # over every model x dataset x metric: holm, bh or none
"""


@main.group("cache", invoke_without_command=True)
@click.pass_context
def cache_group(ctx) -> None:
    """The inference cache (in the results database): its size and entries per model; `clear`
    and `prune` delete outputs. Without a subcommand: the listing."""
    if ctx.invoked_subcommand is None:
        rows = _store(ctx.parent).cache_summary()
        if not rows:
            echo("the inference cache is empty")
            return
        table = [[r["model"], str(r["entries"]), _size(r["bytes"]), str(r["runs"]), str(r["oldest"])[:19],
                  str(r["newest"])[:19]] for r in rows]
        for line in format_table(["model", "outputs", "size", "runs", "oldest", "newest"], table, width=terminal_width()):
            echo(line)
        echo(f"{sum(r['entries'] for r in rows)} outputs, {_size(sum(r['bytes'] for r in rows))} of transcripts")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


@cache_group.command("clear")
@click.option("--model", help="only this model's outputs (default: every model's)")
@click.option("--yes", is_flag=True, help="do not ask")
@click.pass_context
def cache_clear(ctx, model: str | None, yes: bool) -> None:
    """Delete cached outputs (the runs and their figures are kept)."""
    if not yes and not click.confirm(f"delete the cached outputs of {model or 'every model'}?", default=False):
        raise Problem("nothing deleted")
    echo(f"deleted {_store(ctx.parent.parent, read_only=False).clear_cache(model)} cached outputs")


@cache_group.command("prune")
@click.option("--older-than", "days", type=click.FloatRange(min=0, min_open=True), required=True, metavar="DAYS",
              help="delete outputs computed more than DAYS days ago")
@click.option("--model", help="only this model's outputs")
@click.option("--yes", is_flag=True, help="do not ask")
@click.pass_context
def cache_prune(ctx, days: float, model: str | None, yes: bool) -> None:
    """Delete cached outputs older than DAYS days."""
    from datetime import datetime, timedelta, timezone

    cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="microseconds")
    if not yes and not click.confirm(f"delete cached outputs computed before {cutoff}?", default=False):
        raise Problem("nothing deleted")
    deleted = _store(ctx.parent.parent, read_only=False).clear_cache(model, cutoff)
    echo(f"deleted {deleted} cached outputs computed before {cutoff}")


@main.command("view")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; anything but loopback is said on start, with what it exposes")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="port (0: any free one)")
@click.option("--listening", is_flag=True, help="also serve the listening tests' rating pages (/listen): the one "
              "thing the viewer writes, ratings, each form with a CSRF token")
@click.pass_context
def view_cmd(ctx, host: str, port: int, listening: bool) -> None:
    """A read-only web viewer over the results database: runs (with the gate's outcome), a run's
    scorecard and tests, an evaluation's utterances with alignment and audio, two runs compared as
    the gate compares them, and trends across commits; a run in progress refreshes by itself.

    Every request needs a token: printed on start, or the one in $SPEECHLAB_VIEW_TOKEN. Needs the [view]
    extra (Flask, plotly): pip install 'pytest-speechlab[view]'."""
    policy = load_config(Path.cwd() / "pyproject.toml").regression
    try:
        serve(lambda: ctx.obj(True), host, port, echo, policy=policy,
              reveal=lambda text: click.echo(terminal(text)),  # the token is shown on purpose, once
              listening=(lambda: ctx.obj(False)) if listening else None)
    except OSError as exc:
        raise Problem(f"speechlab view: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


@main.group("listen")
def listen_group() -> None:
    """Listening tests of TTS models: ACR mean opinion scores, A/B preference and MUSHRA, rated in
    `speechlab view --listening`."""


@listen_group.command("create")
@click.argument("name")
@click.argument("systems", nargs=-1, required=True, metavar="RUN:MODEL[:TEXT_SET]...")
@click.option("--kind", type=click.Choice(["acr", "ab", "mushra"]), default="acr", show_default=True,
              help="acr: rate each clip 1-5; ab: which of two systems' clips of a text is better; mushra: rate "
              "each 0-100 against an open reference, with a hidden reference and a low-pass anchor among them")
@click.option("--reference", metavar="RUN:MODEL[:TEXT_SET]", default=None,
              help="mushra: the system whose clips are the reference (recordings, or the best system)")
@click.option("--folder", default=".speechlab/listening", show_default=True,
              help="where the test's clips are copied (they outlive pytest's temporary folder)")
@click.pass_context
def listen_create(ctx, name: str, systems: tuple[str, ...], kind: str, folder: str, reference: str | None) -> None:
    """Make listening test NAME from recorded TTS evaluations (e.g. `latest:piper/joe` and
    `main:espeak-ng/en-us`): every text all the systems have a clip of."""
    store = _store(ctx, read_only=False)
    try:
        spec = create_test(store, name, kind, list(systems), Path(folder), reference)
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None
    echo(f"listening test {name!r} ({kind}): {len(spec['items'])} texts x {len(spec['systems'])} systems, clips in "
         f"{spec['folder']}; rate them in `speechlab view --listening`")


@listen_group.command("results")
@click.argument("name")
@click.pass_context
def listen_results(ctx, name: str) -> None:
    """The figures of listening test NAME: MOS with its interval per system (ACR), the preference
    with its exact sign test (A/B), or mean scores over the raters kept after screening (MUSHRA); how
    far the raters agree, and the listeners beside DNSMOS on the same clips."""
    store = _store(ctx)
    try:
        test = store.listening_test(name)
    except SpeechlabError as exc:
        raise Problem(str(exc)) from None
    for line in listening_lines(test, listening_figures(test, store.ratings(name))):
        echo(line)


def listening_lines(test: dict, found: dict) -> list[str]:
    names = {s["label"]: (f"{s['model']} (run {s['run'][:8]})" + {"reference": ", hidden reference",
                                                                  "anchor": ", low-pass anchor"}.get(s.get("role"), ""))
             for s in test["spec"]["systems"]}
    lines = [f"{test['name']} ({test['kind']}): {found['ratings']} ratings by {len(found['raters'])} raters"]
    if found["kind"] == "ab":
        (a, ka), (b, kb) = found["systems"].items()
        ci = f" [95% CI {found['share_ci'][0]:.2f}-{found['share_ci'][1]:.2f}]" if found["share_ci"] else ""
        lines.append(f"  {names[a]} preferred {ka} times, {names[b]} {kb} times; share preferring the second "
                     f"{found['share_second'] if found['share_second'] is None else round(found['share_second'], 3)}{ci}; "
                     f"exact sign test p = {found['p']:.4f}")
    else:
        what, fmt = ("MOS", ".2f") if found["kind"] == "acr" else ("mean score", ".1f")
        for label, m in found["systems"].items():
            ci = f" [95% CI {m['ci'][0]:{fmt}}-{m['ci'][1]:{fmt}}]" if m["ci"] else ""
            lines.append(f"  {names[label]}: {what} {m['mos']:{fmt}}{ci} over {m['n']} ratings" if m["mos"] is not None
                         else f"  {names[label]}: no rating yet")
    for s in found.get("screening", ()):
        lines.append(f"  rater {s['rater']}: hidden reference below 90 on {s['reference_below_90']} of {s['items']} "
                     "items" + (" (more than 15%: screened out, BS.1534-3)" if s["screened_out"] else ""))
    for pair in found["agreement"]:
        if found["kind"] == "ab":
            what = f"agreed on {pair['agreed']:.0%}"
        else:
            what = (f"Pearson r {pair['pearson']:.2f}, " if pair["pearson"] is not None else "") + \
                f"within {pair['within']:g} point{'s' if pair['within'] != 1 else ''} {pair['close']:.0%}"
        lines.append(f"  raters {pair['raters'][0]} and {pair['raters'][1]}: {what} of "
                     f"{pair.get('clips', pair.get('items'))} in common")
    lines += beside_dnsmos_lines(found.get("beside_dnsmos"), names)
    return lines


def beside_dnsmos_lines(beside: dict | None, names: dict) -> list[str]:
    if not beside:
        return []
    lines = [f"  {names[label]}: listeners {s['listeners']:.2f}, DNSMOS OVRL {s['dnsmos']:.2f} on the same "
             f"{s['clips']} clips" for label, s in beside["systems"].items()]
    r, ci = beside["pearson"], beside["ci"]
    lines.append(f"  listeners and DNSMOS over {beside['n']} clips: " + (
        f"Pearson r {r:.2f}" + (f" [95% CI {ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") if r is not None
        else "no correlation (fewer than 3 clips, or one side constant)"))
    return lines


@main.command("init")
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="overwrite suite files that already exist")
def init_cmd(folder: str, force: bool) -> None:
    """Set up a project: copy the standard suites into FOLDER/suites and add a commented
    [tool.speechlab] block to FOLDER/pyproject.toml (left alone when it has one).

    Without copying anything, the same suites run from the installed package:
    pytest --pyargs pytest_speechlab.suites"""
    from importlib.resources import files

    root = Path(folder)
    suites = root / "suites"
    suites.mkdir(parents=True, exist_ok=True)
    shipped = files("pytest_speechlab.suites")
    written, kept = [], []
    for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
        if not (entry.name.startswith("test_") and entry.name.endswith(".py")):
            continue
        target = suites / entry.name
        if target.exists() and not force:
            kept.append(entry.name)
            continue
        target.write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
        written.append(entry.name)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8") if pyproject.exists() else ""
    if "[tool.speechlab" in text:
        config = f"{pyproject} already has a [tool.speechlab] table: left as it is"
    else:
        pyproject.write_text(text + ("\n" if text and not text.endswith("\n") else "") + CONFIG_BLOCK, encoding="utf-8")
        config = f"added a commented [tool.speechlab] block to {pyproject}"
    echo(f"wrote {len(written)} suite(s) to {suites}" + (f"; kept {len(kept)} existing (--force overwrites)" if kept else ""))
    echo(config)
    echo(f"next: cd {root} && pytest suites/   (a model plugin must be installed: pytest --speechlab-list-models)")


if __name__ == "__main__":  # pragma: no cover
    main()
