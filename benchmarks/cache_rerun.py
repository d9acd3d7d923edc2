"""The inference cache, measured: the README's main job run in fresh sessions sharing one results
database (where the cache lives), wall time of each, and whether every figure is the same.

    python benchmarks/cache_rerun.py                      # the main job: pytest suites/
    python benchmarks/cache_rerun.py --model faster-whisper/base \\
        --dataset ../shared/data/realspeech-dev/manifest.jsonl
    python benchmarks/cache_rerun.py --utterances 1000       # tiny.en on 1,000 distinct clips

``--utterances N`` evaluates a set of N distinct clips built from the speech fixtures
(benchmarks/_distinct.py: each through white noise 45 dB down, seeded by its own id, so that no two
share a cache key) instead of the main job's datasets, with faster-whisper/tiny.en unless
``--model`` says otherwise.

Three sessions, one after the other: the first computes every output; the second takes them from
the cache and, as by default, re-times a sample of each evaluation here (``retime`` 20) so that the
speed checks judge timings of this machine; the third takes them from the cache with
``--speechlab-retime 0``: nothing is decoded, and the speed checks are skipped as not judged (never
passed on cached timings). Printed: each session's wall time and test outcomes, the time of a
session that only starts Python and pytest and collects the suites (the floor any run pays), the
ratios, and the comparison of every utterance's output, scores and findings, the WER/CER per
evaluation, the grades, and the RTF as recorded (cached timings are the first run's) and as
re-timed. The sessions write bytecode caches as Python does by default (PYTHONDONTWRITEBYTECODE is
dropped from their environment). Run it on a quiet machine: the ratio is what it measures.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONDONTWRITEBYTECODE")} | {"HF_HUB_OFFLINE": "1"}


def pytest_session(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q", *args],
                         cwd=REPO, env=ENV, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout + out.stderr


def recorded(db: Path) -> list[tuple[dict, dict, dict]]:
    """(utterances, aggregates, grades) of each run, oldest first."""
    sys.path.insert(0, str(REPO))
    from pytest_speechlab.sinks.store import Store

    store = Store(f"sqlite:///{db}", read_only=True)
    per_run = []
    for run_id in [r["id"] for r in reversed(store.runs())]:
        run = store.run(run_id)
        utts = {(r["model"], r["dataset"], r["utterance_id"]): (r["hypothesis"], r["substitutions"], r["deletions"],
                r["insertions"], r["char_errors"], tuple(f["kind"] for f in r["findings"] or ()))
                for r in store.utterances(run_id)}
        aggregates = {(a["model"], a["dataset"]): a["metrics"] for a in run["aggregates"]}
        grades = {g["model"]: (g["grade"], g["reason"]) for g in run["grades"]}
        per_run.append((utts, aggregates, grades))
    return per_run


def outcome(output: str) -> str:
    return next((line.strip("= ") for line in reversed(output.splitlines()) if " in " in line and (
        "passed" in line or "failed" in line or "skipped" in line)), "(no outcome line)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--utterances", type=int, help="evaluate N distinct clips built from the fixtures")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if options.utterances:
            from _distinct import build_distinct

            options.dataset.append(str(build_distinct(Path(tmp) / "distinct", options.utterances)))
            options.model = options.model or ["faster-whisper/tiny.en"]
        args = [a for m in options.model for a in ("--speechlab-model", m)]
        args += [a for d in options.dataset for a in ("--speechlab-dataset", str(Path(d).resolve()))]
        db = Path(tmp) / "results.db"
        floor, _ = pytest_session(["--collect-only", "--speechlab-no-db", *args])
        sessions = [("first (computes)", []), ("second (cached, re-times 20)", []),
                    ("third (cached, --speechlab-retime 0)", ["--speechlab-retime", "0"])]
        timed = [(label, *pytest_session(["--speechlab-db", str(db), *args, *extra])) for label, extra in sessions]
        runs = recorded(db)
    first = timed[0][1]
    for label, seconds, output in timed:
        ratio = f"   ratio {first / seconds:.1f}x" if seconds != first else ""
        print(f"{label + ':':40s}{seconds:7.2f} s{ratio}   [{outcome(output)}]")
    print(f"start-up floor (python + pytest + collection, no evaluation): {floor:.2f} s")
    for label, _, output in timed[1:]:
        print(f"{label}:")
        lines = output.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("inference cache:")), None)
        for line in lines[start:start + 1 + len(runs[0][1])] if start is not None else ["  (no cache line)"]:
            print("  " + line)
    (u1, a1, g1) = runs[0]
    for label, (u, a, g) in zip([s[0] for s in sessions[1:]], runs[1:]):
        print(f"{label} against the first:")
        print(f"  utterance outputs, S/D/I, character errors and findings identical: {u == u1} ({len(u1)} utterances)")
        for key in sorted(a1):
            m1, m2 = a1[key], a.get(key, {})
            same = all(m1.get(k) == m2.get(k) for k in ("wer", "cer", "wer_ci", "cer_ci", "hallucinated", "rtf"))
            print(f"  {key[0]} on {key[1]}: WER {m1.get('wer')} / {m2.get('wer')}, CER {m1.get('cer')} / {m2.get('cer')}, "
                  f"RTF as recorded {m1.get('rtf')} / {m2.get('rtf')} (re-timed here {m2.get('speed_rtf')}); "
                  f"identical: {same}")
        print(f"  grades identical: {all(g1[m][0] == g.get(m, (None,))[0] for m in g1)} "
              f"{sorted((m, grade[0]) for m, grade in g.items())}; reasons identical: {g == g1}")
        for m in g1:
            if g.get(m) != g1[m]:
                print(f"    {m} reason here: {g.get(m, (None, None))[1]}")


if __name__ == "__main__":
    main()
