"""What the harness costs per utterance, apart from the model: an instant model (it returns one
fixed transcript without looking at the audio) over sets of distinct clips built from the fixtures
(benchmarks/_distinct.py), each size in a fresh process, through ``evaluate_models`` (reading and
checking the audio, the runner, scoring, detectors, the summary), without and with a results
database (SQLite: every utterance row recorded, the inference cache written).

    python benchmarks/harness_cost.py                          # 1,000 and 10,000 utterances
    python benchmarks/harness_cost.py --utterances 500 --utterances 5000

Per utterance = (the larger run - the smaller) / (the difference in utterances), for the wall time
and the peak resident set (VmHWM): what each utterance adds once the fixed costs (imports, start-up)
are paid. Goal (issue 32): at most 3 ms and 4 KB each.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _distinct import INSTANT, build_distinct

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
import instant
from pytest_speechlab import evaluate_models

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

manifest, db = sys.argv[1], sys.argv[2] or None
start = time.perf_counter()
(result,) = evaluate_models(["instant/asr"], [manifest], pyproject=None, plugins=[instant], db=db)
print(json.dumps({"utterances": len(result.utterances), "wall_s": time.perf_counter() - start,
                  "peak_mb": status("VmHWM") / 2**20, "wer": result.wer}))
"""


def run(manifest: Path, db: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(manifest), db, str(manifest.parent.parent)],
                         capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, cwd=Path(__file__).resolve().parent.parent)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, action="append")
    options = parser.parse_args()
    small, large = sorted(options.utterances or [1000, 10000])[:2]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "instant.py").write_text(INSTANT)
        sets = {n: build_distinct(Path(tmp) / f"set{n}", n) for n in (small, large)}
        for label, db in (("no database", ""), ("SQLite results database", "sqlite")):
            got = {n: run(m, f"sqlite:///{tmp}/results-{n}.db" if db else "") for n, m in sets.items()}
            extra = large - small
            per_ms = (got[large]["wall_s"] - got[small]["wall_s"]) / extra * 1000
            per_kb = (got[large]["peak_mb"] - got[small]["peak_mb"]) / extra * 1024
            print(f"{label}: {small:,} utterances {got[small]['wall_s']:.1f} s, peak {got[small]['peak_mb']:.0f} MB; "
                  f"{large:,} utterances {got[large]['wall_s']:.1f} s, peak {got[large]['peak_mb']:.0f} MB; "
                  f"per utterance {per_ms:.2f} ms and {per_kb:.1f} KB", flush=True)


if __name__ == "__main__":
    main()
