"""The inference cache, measured: the README's main job run twice in fresh sessions sharing one
results database (where the cache lives), wall time of each, and whether every figure is the same.

    python benchmarks/cache_rerun.py                      # the main job: pytest suites/
    python benchmarks/cache_rerun.py --model faster-whisper/base \\
        --dataset ../shared/data/realspeech-dev/manifest.jsonl

Prints the wall time of the first (computing) and second (cached) session, the time of a session
that only starts Python and pytest and collects the suites (the floor any run pays), the ratio, and
the comparison of every utterance's output, scores and findings, the WER/CER per evaluation, the
grades, and the RTF as recorded (cached timings are the first run's) and as re-timed here.
Run it on a quiet machine: the ratio is what it measures.
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


def session(args: list[str], db: Path) -> tuple[float, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("CI", None)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q",
                          "--speechlab-db", str(db), *args], cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout + out.stderr


def recorded(db: Path) -> tuple[dict, dict, dict]:
    sys.path.insert(0, str(REPO))
    from pytest_speechlab.sinks.store import Store

    store = Store(f"sqlite:///{db}", read_only=True)
    runs = [r["id"] for r in reversed(store.runs())]  # oldest first
    per_run = []
    for run_id in runs:
        run = store.run(run_id)
        utts = {(r["model"], r["dataset"], r["utterance_id"]): (r["hypothesis"], r["substitutions"], r["deletions"],
                r["insertions"], r["char_errors"], tuple(f["kind"] for f in r["findings"] or ()))
                for r in store.utterances(run_id)}
        aggregates = {(a["model"], a["dataset"]): a["metrics"] for a in run["aggregates"]}
        grades = {g["model"]: (g["grade"], g["reason"]) for g in run["grades"]}
        per_run.append((utts, aggregates, grades))
    return per_run[0], per_run[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--retime", type=int, default=None, help="--speechlab-retime for the second session")
    options = parser.parse_args()
    args = [a for m in options.model for a in ("--speechlab-model", m)]
    args += [a for d in options.dataset for a in ("--speechlab-dataset", str(Path(d).resolve()))]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "results.db"
        floor = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "suites/", "--collect-only", "-q", "-p", "no:cacheprovider",
                        "--speechlab-no-db", *args], cwd=REPO, capture_output=True, text=True)
        floor = time.perf_counter() - floor
        first, out1 = session(args, db)
        second, out2 = session(args + (["--speechlab-retime", str(options.retime)] if options.retime else []), db)
        (u1, a1, g1), (u2, a2, g2) = recorded(db)
    cache_line = next((line for line in out2.splitlines() if line.startswith("inference cache:")), "(no cache line)")
    print(f"first session (computes):  {first:7.2f} s")
    print(f"second session (cached):   {second:7.2f} s   ratio {first / second:.1f}x")
    print(f"start-up floor (python + pytest + collection, no evaluation): {floor:.2f} s")
    print(cache_line)
    for line in out2.splitlines():
        if "re-timed here on" in line:
            print(line)
    same_utts = u1 == u2
    print(f"utterance outputs, S/D/I, character errors and findings identical: {same_utts} ({len(u1)} utterances)")
    for key in sorted(a1):
        m1, m2 = a1[key], a2.get(key, {})
        same = all(m1.get(k) == m2.get(k) for k in ("wer", "cer", "wer_ci", "cer_ci", "hallucinated", "rtf"))
        print(f"  {key[0]} on {key[1]}: WER {m1.get('wer')} / {m2.get('wer')}, CER {m1.get('cer')} / {m2.get('cer')}, "
              f"RTF as recorded {m1.get('rtf')} / {m2.get('rtf')} (re-timed here {m2.get('speed_rtf')}); "
              f"identical: {same}")
    print(f"grades identical: {g1 == g2} {sorted((m, g[0]) for m, g in g2.items())}")


if __name__ == "__main__":
    main()
