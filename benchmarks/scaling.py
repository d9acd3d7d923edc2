"""Throughput, measured side by side in one run: the same utterances through tiny.en serial (1 x 2
threads, 1 x 1), in 2 worker processes x 1 thread and on 2 Ray actors x 1 thread, then batch 8
against batch 1 (serial, 2 threads).

    python benchmarks/scaling.py                    # the fixture speech set, repeated to >= 200 utterances
    python benchmarks/scaling.py --repeat 3 --model faster-whisper/tiny.en

Each configuration runs in a fresh process (nothing cached: no results database), so every figure is
computed. For each: the evaluation's wall-clock time and throughput (audio seconds per wall second:
never a sum of per-utterance times), the per-utterance RTF, and whether its transcripts equal the
serial 1 x 2 ones. Ratios are throughput over 1 x 1; scaling efficiency is ratio / workers. Ray runs
inside a network namespace of its own when this runs as root (its local cluster listens on every
interface otherwise). Run it on a quiet machine: the ratios are what it measures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
from pytest_speechlab import evaluate_models
from pytest_speechlab.batching import BatchComparison
model, manifest, workers, threads, executor, batch, out = sys.argv[1:8]
name = model
pyproject = None
if int(batch) > 1:
    import pathlib, tempfile
    pyproject = pathlib.Path(tempfile.mkdtemp()) / "pyproject.toml"
    pyproject.write_text(f'[tool.speechlab.models."{model}[batch{batch}]"]\\nmodel = "{model}"\\nbatch_size = {batch}\\n')
    name = f"{model}[batch{batch}]"
(r,) = evaluate_models([name], [manifest], pyproject=pyproject, workers=int(workers), threads=int(threads),
                       executor=executor)
json.dump({"texts": {u.utterance.id: u.hypothesis for u in r.utterances},
           "errors": {u.utterance.id: u.words.errors for u in r.scored},
           "lengths": {u.utterance.id: u.words.reference_length for u in r.scored},
           "wall": r.wall_seconds, "throughput": r.throughput, "rtf": r.rtf, "wer": r.wer,
           "audio": r.audio_seconds, "utterances": len(r.processed),
           "workers": sorted({u.worker for u in r.utterances}), "threads": sorted({str(u.threads) for u in r.utterances})},
          open(out, "w"))
"""


def run(model: str, manifest: Path, workers: int, threads: int, executor: str, batch: int, out: Path) -> dict:
    command = [sys.executable, "-c", CHILD, model, str(manifest), str(workers), str(threads), executor, str(batch),
               str(out)]
    if executor == "ray" and os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{executor} {workers}x{threads} batch {batch} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def repeated_manifest(folder: Path, repeat: int) -> Path:
    """The fixture speech set, each clip listed ``repeat`` times under new ids (same audio files)."""
    source = REPO / "fixtures" / "speech" / "manifest.jsonl"
    lines = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    out = folder / "manifest.jsonl"
    with open(out, "w") as fh:
        for i in range(repeat):
            for entry in lines:
                fh.write(json.dumps({**entry, "id": f"{entry['id']}-{i}",
                                     "audio": str(source.parent / entry["audio"])}) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="faster-whisper/tiny.en")
    parser.add_argument("--repeat", type=int, default=6, help="copies of the 34-clip fixture set (6: 204 utterances)")
    parser.add_argument("--skip-ray", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = repeated_manifest(Path(tmp), options.repeat)
        configs = [("serial 1 x 2 threads", 1, 2, "local", 1), ("serial 1 x 1", 1, 1, "local", 1),
                   ("workers 2 x 1", 2, 1, "local", 1)]
        if not options.skip_ray:
            configs.append(("Ray 2 actors x 1", 2, 1, "ray", 1))
        configs.append(("serial 1 x 2, batch 8", 1, 2, "local", 8))
        results = {}
        for label, workers, threads, executor, batch in configs:
            results[label] = run(options.model, manifest, workers, threads, executor, batch,
                                 Path(tmp) / f"{len(results)}.json")
            r = results[label]
            print(f"{label:24s} wall {r['wall']:7.1f} s  throughput {r['throughput']:6.2f} audio s/s  "
                  f"per-utterance RTF {r['rtf']:.3f}  WER {r['wer']:.4f}  ({r['utterances']} utterances, "
                  f"{r['audio']:.0f} audio s; workers {','.join(w or 'session' for w in r['workers'])}; "
                  f"threads {','.join(r['threads'])})", flush=True)
    reference = results["serial 1 x 2 threads"]
    one = results["serial 1 x 1"]["throughput"]
    print()
    for label, r in results.items():
        workers = 2 if label.startswith(("workers", "Ray")) else 1
        ratio = r["throughput"] / one
        same = r["texts"] == reference["texts"]
        differing = sum(1 for k, v in r["texts"].items() if reference["texts"].get(k) != v)
        print(f"{label:24s} {ratio:5.2f}x of 1 x 1, scaling efficiency {ratio / workers:.2f}; transcripts identical "
              f"to serial 1 x 2: {same}" + ("" if same else f" ({differing} differ)"))
    if "Ray 2 actors x 1" in results:
        ray, local = results["Ray 2 actors x 1"]["throughput"], results["workers 2 x 1"]["throughput"]
        print(f"Ray / local workers throughput: {ray / local:.2f}")
    sys.path.insert(0, str(REPO))
    from pytest_speechlab.metrics.stats import paired_compare

    batched = results["serial 1 x 2, batch 8"]
    cmp = paired_compare({k: (reference["errors"][k], reference["lengths"][k]) for k in reference["errors"]},
                         {k: (batched["errors"][k], batched["lengths"][k]) for k in batched["errors"]})
    print(f"batch 8 / batch 1 throughput (serial, 2 threads): {batched['throughput'] / reference['throughput']:.2f}x; "
          f"paired WER difference {cmp.delta:+.4f} [{cmp.ci[0]:+.4f}, {cmp.ci[1]:+.4f}], one-sided p {cmp.p_value:.3f}")


if __name__ == "__main__":
    main()
