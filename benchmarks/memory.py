"""Memory per utterance: an instant model (a 20-word transcript in two segments, one word
wrong) over N short clips, in a fresh process for each N; the
resident set size before and after the evaluation, and the bytes per utterance that remain.

    python benchmarks/memory.py                  # N = 2,000 and 20,000, recorded in a SQLite database
    python benchmarks/memory.py --sizes 200 2000 --no-db

What stays in memory is what the summary, the grades and the reports need of each utterance; with
a results database the per-utterance rows are also written to it as they are scored.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import gc, json, sys, types
from pathlib import Path
import numpy as np, soundfile as sf

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

from pytest_speechlab import Segment, Transcript, evaluate_models, hookimpl

SAID = ("every saturday the market square is crowded with stalls selling cheese honey vegetables and warm "
        "pastries while children play by the fountain")  # 20 words; the reference differs in one

class Instant:
    sample_rate = 16000
    def transcribe(self, audio):
        half = len(SAID) // 2
        return Transcript(SAID, (Segment(0.0, 0.25, SAID[:half], -0.2, 0.01, 1.2, 0.0),
                                 Segment(0.25, 0.5, SAID[half:], -0.3, 0.02, 1.3, 0.0)))
    def info(self):
        return {"threads": 1, "backend_version": "instant 1"}

@hookimpl
def speechlab_register_models(register):
    register("instant/asr", task="asr", load=lambda params: Instant(), backend="instant")

n, folder, db = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
clip = folder / "clip.wav"
sf.write(clip, np.zeros(8000, dtype=np.float32), 16000)
for name, count in (("warm.jsonl", 10), ("manifest.jsonl", n)):
    with open(folder / name, "w") as fh:
        for i in range(count):
            fh.write(json.dumps({"id": f"u{i:06d}", "audio": "clip.wav", "text": SAID.replace("honey", "jam")}) + "\n")
plugin = types.SimpleNamespace(speechlab_register_models=speechlab_register_models)
evaluate_models(["instant/asr"], [str(folder / "warm.jsonl")], pyproject=None, plugins=[plugin],
                db=db or None, cache="off")  # warm: imports, the first model, the normalizer, the database
gc.collect()
before = rss()
(result,) = evaluate_models(["instant/asr"], [str(folder / "manifest.jsonl")], pyproject=None,
                            plugins=[plugin], db=db or None, cache="off")
gc.collect()
after = rss()
assert len(result.utterances) == n and result.wer is not None
print(json.dumps({"n": n, "before": before, "after": after, "wer": result.wer}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--no-db", action="store_true")
    options = parser.parse_args()
    for n in options.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = "" if options.no_db else f"sqlite:///{Path(tmp) / 'results.db'}"
            out = subprocess.run([sys.executable, "-c", CHILD, str(n), tmp, db], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            grown = r["after"] - r["before"]
            print(f"{n:>7,} utterances: RSS {r['before'] / 2**20:7.1f} MB before, {r['after'] / 2**20:7.1f} MB after "
                  f"the evaluation; {grown / n:8.0f} bytes per utterance kept "
                  f"({'no database' if options.no_db else 'SQLite database'})")


if __name__ == "__main__":
    main()
