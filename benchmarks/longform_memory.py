"""Peak memory for an hour of audio: the long-form fixture built at 60 minutes (16 kHz mono FLAC),
evaluated whole by a model in a fresh process; the resident set size after the model is built, and
the peak (VmHWM) over the evaluation. The signal itself is 220 MB as float32.

Each model runs with its log-Mel computed in 30 s blocks (pytest_speechlab.longmel, the default)
and, side by side, with ``--whole`` as the backend computes it at once (the old way), so that both
peaks and both WERs (with their intervals) come from the same machine and run.

    python benchmarks/longform_memory.py                           # faster-whisper/tiny.en, 60 min
    python benchmarks/longform_memory.py --model openai-whisper/tiny.en --minutes 60 --minutes 180 --whole

Prints one JSON line per model, length and mode: peak and load RSS, their difference, the signal's
size, the WER with its interval and the wall time.
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

model, manifest, pyproject, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if mode == "whole":  # the backend's own log-Mel of the whole recording at once
    from pytest_speechlab import longmel
    longmel.LONG_S = float("inf")
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
print(json.dumps({"model": model, "features": mode, "audio_s": round(u.audio_seconds, 1), "signal_mb": round(u.audio_seconds * 16000 * 4 / 2**20, 1),
                  "rss_after_load_mb": round(after_load / 2**20, 1), "peak_rss_mb": round(status("VmHWM") / 2**20, 1),
                  "peak_minus_load_mb": round((status("VmHWM") - after_load) / 2**20, 1),
                  "wer": result.wer, "wer_ci": result.wer_ci, "rtf": result.rtf, "wall_s": round(wall, 1), "long_form": loaded.info.get("long_form"),
                  "findings": sorted({f.kind for f in u.findings}), "error": str(u.error) if u.error else None}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model name (repeatable; default faster-whisper/tiny.en)")
    parser.add_argument("--minutes", type=float, action="append", help="recording length (repeatable; default 60)")
    parser.add_argument("--whole", action="store_true", help="also run each with the whole recording's log-Mel at once")
    parser.add_argument("--keep", type=Path, help="build the recordings here (kept) instead of a temporary folder")
    args = parser.parse_args()
    from pytest_speechlab._builtin import fixtures_dir
    from pytest_speechlab._longform import build_longform

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        for minutes in args.minutes or [60.0]:
            manifest = build_longform(folder, fixtures_dir(), minutes=minutes, name=f"longform_{minutes:g}min")
            for model in args.model or ["faster-whisper/tiny.en"]:
                for mode in ("blocks", "whole") if args.whole else ("blocks",):
                    out = subprocess.run([sys.executable, "-c", CHILD, model, str(manifest), str(root / "pyproject.toml"),
                                          mode], capture_output=True, text=True)
                    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                    print(lines[-1] if lines else json.dumps({"model": model, "features": mode, "minutes": minutes,
                                                              "failed": out.stderr[-2000:]}), flush=True)


if __name__ == "__main__":
    main()
