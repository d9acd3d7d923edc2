"""Does the same model on the same data get the same verdict? Measured two ways.

    python benchmarks/repeatability.py mainjob [--runs 5]
    python benchmarks/repeatability.py seeds [--repeats 5] [--models faster-whisper/tiny.en ...]

``mainjob``: the README's main job (``pytest suites/``) run ``--runs`` times one after the other,
the inference cache off, each run recorded in one fresh results database. Printed: each run's
wall time and outcome line, whether every test's outcome and every grade letter is the same in
every run, and every transcript that varied between runs (model, dataset, utterance: each distinct
transcript with the runs it came out in). Exit 1 when an outcome or a grade differed.

``seeds``: each model on the non-speech fixtures (where Whisper's temperature fallback samples; or
``--dataset``) with ``repeats`` per utterance, in two separate sessions seeded alike (``seed = 0``), and in two
unseeded (``seed = false``). Printed per model: the utterances whose transcripts varied between
the repeats of one session, and the (utterance, repeat) outputs that differ between the two
sessions: with seeding that works, 0. This is the README's table of repeatability with seeds.

Each run states its environment (CPU, threads, Python, backend versions). Timings vary with the
machine's load; the transcripts are what this measures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k not in ("CI",)} | {"HF_HUB_OFFLINE": "1"}
sys.path.insert(0, str(REPO))


def environment() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from pytest_speechlab._machine import machine

    here = machine()
    versions = []
    for package in ("ctranslate2", "faster-whisper", "torch", "openai-whisper", "transformers", "pocketsphinx"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return f"{here['cpu']} ({here['cpu_count']} CPUs), Python {platform.python_version()}; " + ", ".join(versions)


def main_job(runs: int) -> int:
    from pytest_speechlab.sinks.store import Store

    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "results.db"
        for i in range(runs):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q",
                                  "--speechlab-cache", "off", "--speechlab-db", str(db)],
                                 cwd=REPO, env=ENV, capture_output=True, text=True)
            lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
            closing = next((line.strip("= ") for line in reversed(lines) if " in " in line), "(no outcome line)")
            print(f"run {i + 1}: exit {out.returncode}, {time.perf_counter() - start:.1f} s: {closing}", flush=True)
        store = Store(f"sqlite:///{db}", read_only=True)
        per_run = [store.run(r["id"]) for r in reversed(store.runs())]
        outcomes = [{o["nodeid"]: o["outcome"] for o in run["outcomes"]} for run in per_run]
        grades = [{g["model"]: g["grade"] for g in run["grades"]} for run in per_run]
        texts: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, run in enumerate(per_run):
            for row in store.utterances(run["id"]):
                texts[(row["model"], row["dataset"], row["utterance_id"])][row["hypothesis"] or ""].append(i + 1)
    same_outcomes = all(o == outcomes[0] for o in outcomes)
    same_grades = all(g == grades[0] for g in grades)
    print(f"environment: {environment()}")
    print(f"test outcomes identical in all {len(per_run)} runs: {same_outcomes}")
    if not same_outcomes:
        for nodeid in sorted(set().union(*outcomes)):
            seen = [o.get(nodeid, "-") for o in outcomes]
            if len(set(seen)) > 1:
                print(f"  {nodeid}: {' '.join(seen)}")
    print(f"grade letters identical in all {len(per_run)} runs: {same_grades} ({grades[0] if grades else {}})")
    if not same_grades:
        for i, g in enumerate(grades):
            print(f"  run {i + 1}: {g}")
    varied = {key: seen for key, seen in texts.items() if len(seen) > 1}
    print(f"transcripts that varied between runs: {len(varied)} of {len(texts)}")
    for (model, dataset, uid), seen in sorted(varied.items()):
        print(f"  {model} {dataset} {uid}:")
        for text, in_runs in seen.items():
            print(f"      runs {','.join(map(str, in_runs))}: {text[:80]!r}")
    return 0 if same_outcomes and same_grades else 1


SESSION = """
import json, sys
from pytest_speechlab import evaluate_models
(result,) = evaluate_models([sys.argv[1]], [sys.argv[4]], pyproject=sys.argv[2], repeats=int(sys.argv[3]))
print(json.dumps({"outputs": {u.utterance.id: [x.hypothesis for x in (u, *u.repeat_scores)] for u in result.processed},
                  "varied": (result.variability or {}).get("varied"), "of": (result.variability or {}).get("repeated"),
                  "flagged": (result.variability or {}).get("figures", {}).get("nonspeech_hallucination_rate", {}).get("flagged"),
                  "seeding": result.environment.get("seeding"), "threads": result.environment.get("threads")}))
"""


def seeds(models: list[str], repeats: int, dataset: str = "speechlab/nonspeech") -> int:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seeded in (True, False):
            pyproject = Path(scratch) / f"seed-{seeded}" / "pyproject.toml"
            pyproject.parent.mkdir()
            pyproject.write_text(f"[tool.speechlab]\nseed = {'0' if seeded else 'false'}\n")
            for model in models:
                sessions = []
                for _ in range(2):
                    out = subprocess.run([sys.executable, "-c", SESSION, model, str(pyproject), str(repeats), dataset],
                                         cwd=REPO, env=ENV, capture_output=True, text=True)
                    if out.returncode:
                        print(f"{model}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
                        break
                    sessions.append(json.loads(out.stdout.strip().splitlines()[-1]))
                if len(sessions) < 2:
                    continue
                a, b = sessions
                pairs = [(uid, k) for uid in a["outputs"] for k in range(len(a["outputs"][uid]))]
                differ = [(uid, k) for uid, k in pairs if a["outputs"][uid][k] != b["outputs"].get(uid, [None] * repeats)[k]]
                rows.append((model, a["seeding"], a["threads"], f"{a['varied']}/{a['of']} , {b['varied']}/{b['of']}",
                             f"{a['flagged']} , {b['flagged']}", f"{len(differ)}/{len(pairs)}"))
                print(f"{model} ({a['seeding']}): done", flush=True)
    print(f"environment: {environment()}; {repeats} repeats on {dataset}, two sessions each")
    header = ("model", "seeding", "threads", "varied within each session", "flagged per repeat", "outputs differing between sessions")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(v) for v in row))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    job = sub.add_parser("mainjob")
    job.add_argument("--runs", type=int, default=5)
    seeded = sub.add_parser("seeds")
    seeded.add_argument("--repeats", type=int, default=5)
    seeded.add_argument("--dataset", default="speechlab/nonspeech", help="a registered dataset or a manifest")
    seeded.add_argument("--models", nargs="+", default=["faster-whisper/tiny.en", "openai-whisper/tiny.en",
                                                         "transformers/tiny.en", "pocketsphinx"])
    args = parser.parse_args()
    return main_job(args.runs) if args.what == "mainjob" else seeds(args.models, args.repeats, args.dataset)


if __name__ == "__main__":
    sys.exit(main())
