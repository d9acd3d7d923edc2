"""Peak memory for a one-hour recording: the long-form fixture built at 60 minutes (16 kHz mono
FLAC), evaluated whole by a model in a fresh process; the resident set size after the model is
built, and the peak (VmHWM) over the evaluation. The signal itself is 230 MB as float32.

    python benchmarks/longform_memory.py                           # faster-whisper/tiny.en, 60 min
    python benchmarks/longform_memory.py --model tiny-vad --minutes 30

Prints one JSON line per model: peak and load RSS, their difference, the signal's size, the WER
and the wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

from pytest_speechlab import ModelPool, Runner, build_registry, evaluate, load_dataset, make_plugin_manager
from pytest_speechlab._config import load_config

model, manifest, pyproject = sys.argv[1], sys.argv[2], sys.argv[3]
registry = build_registry(make_plugin_manager())
registry.add_variants(load_config(Path(pyproject)).variants, pyproject)
pool = ModelPool()
loaded = pool.get(registry.model(model))
after_load = status("VmRSS")
dataset = load_dataset(manifest)
started = time.perf_counter()
outputs = Runner().run(loaded, dataset.utterances)
wall = time.perf_counter() - started
result = evaluate(model, "longform", outputs)
(u,) = result.utterances
print(json.dumps({"model": model, "audio_s": round(u.audio_seconds, 1), "signal_mb": round(u.audio_seconds * 16000 * 4 / 2**20, 1),
                  "rss_after_load_mb": round(after_load / 2**20, 1), "peak_rss_mb": round(status("VmHWM") / 2**20, 1),
                  "peak_minus_load_mb": round((status("VmHWM") - after_load) / 2**20, 1),
                  "wer": result.wer, "rtf": result.rtf, "wall_s": round(wall, 1), "long_form": loaded.info.get("long_form"),
                  "findings": sorted({f.kind for f in u.findings}), "error": str(u.error) if u.error else None}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model name (repeatable; default faster-whisper/tiny.en)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, help="build the recording here (kept) instead of a temporary folder")
    args = parser.parse_args()
    from pytest_speechlab._builtin import fixtures_dir
    from pytest_speechlab._longform import build_longform

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        manifest = build_longform(folder, fixtures_dir(), minutes=args.minutes, name=f"longform_{args.minutes:g}min")
        for model in args.model or ["faster-whisper/tiny.en"]:
            out = subprocess.run([sys.executable, "-c", CHILD, model, str(manifest), str(root / "pyproject.toml")],
                                 capture_output=True, text=True)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            print(lines[-1] if lines else json.dumps({"model": model, "failed": out.stderr[-2000:]}), flush=True)


if __name__ == "__main__":
    main()
