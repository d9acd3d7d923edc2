"""A service under concurrent load: 1, 2 and 4 requests in flight against one local
faster-whisper-server (packaged tiny.en weights, int8, 2 CPU threads, beam 5), the same fixtures
each time, side by side in one run.

    python benchmarks/service_concurrency.py [--dataset speechlab/speech] [--levels 1 2 4]
                                             [--base-url http://host:port --served-model NAME]

For each concurrency: p50/p95/p99 end-to-end seconds per request (with the 95% bootstrap
interval of p95), throughput on the wall clock (requests/s and audio s/s), failed requests and
faults, and which transcripts differ from the first level's (and how many were decoded with the
temperature fallback, which samples). Latency and throughput are separate figures: under concurrency a request waits for the
others, so its latency grows while throughput may not. With --base-url it measures your service
instead of starting one (the model field is then OpenAI's ``model``; give --model-field otherwise).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def measure(base_url: str, served: str, field: str, dataset: str, levels: list[int], folder: Path) -> list[dict]:
    from pytest_speechlab import evaluate_models

    variants = {f"c{n}": {"model": "openai-api/asr", "base_url": base_url, "served_model": served,
                          "model_field": field, "language": "en", "concurrency": n} for n in levels}
    pyproject = folder / "pyproject.toml"
    pyproject.write_text("".join(f'[tool.speechlab.models.{name}]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in t.items())
                                 for name, t in variants.items()))
    rows = []
    for name in variants:  # one after another: each level has the server to itself
        (result,) = evaluate_models([name], [dataset], pyproject=pyproject)
        lat = result.latency
        rows.append({"concurrency": lat["concurrency"], "requests": lat["requests"], "failed": lat["failed"],
                     **{q: lat["end_to_end_s"].get(q) for q in ("p50", "p95", "p99")},
                     "p95_ci": lat["end_to_end_s"].get("p95_ci"), "req_per_s": lat["throughput_requests_per_s"],
                     "audio_s_per_s": lat["throughput_audio_s_per_s"], "wall_s": result.wall_seconds,
                     "faults": lat["faults"], "wer": result.wer,
                     "texts": {u.utterance.id: u.hypothesis for u in result.utterances},
                     "fallbacks": sum(any((seg.temperature or 0) > 0 for seg in u.transcript.segments)
                                      for u in result.processed)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="speechlab/speech")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--base-url")
    parser.add_argument("--served-model", default="")
    parser.add_argument("--model-field", default="model")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if options.base_url:
            rows = measure(options.base_url, options.served_model, options.model_field, options.dataset,
                           options.levels, folder)
        else:
            from services import faster_whisper_server

            with faster_whisper_server(folder) as url:
                rows = measure(url, "tiny.en", "model_name", options.dataset, options.levels, folder)
    print(f"{'concurrency':>11} {'requests':>8} {'failed':>6} {'p50 s':>7} {'p95 s [95% CI]':>22} {'p99 s':>7} "
          f"{'req/s':>6} {'audio s/s':>9} {'wall s':>7} {'WER':>6}")
    for r in rows:
        ci = f"[{r['p95_ci'][0]:.3f}, {r['p95_ci'][1]:.3f}]" if r["p95_ci"] else ""
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['failed']:>6} {r['p50']:>7.3f} {r['p95']:>7.3f} {ci:>14} "
              f"{r['p99']:>7.3f} {r['req_per_s']:>6.2f} {r['audio_s_per_s']:>9.2f} {r['wall_s']:>7.1f} {r['wer']:>6.3f}"
              + (f"  faults {r['faults']}" if r["faults"] else ""))
    base = rows[0]
    for r in rows:
        differ = sorted(k for k, text in r["texts"].items() if text != base["texts"].get(k))
        print(f"concurrency {r['concurrency']}: {r['fallbacks']} transcripts decoded with temperature fallback "
              f"(sampled); {len(differ)} differ from concurrency {base['concurrency']}: {', '.join(differ) or '-'}")
    for r in rows[1:]:
        print(f"concurrency {r['concurrency']} vs {base['concurrency']}: throughput x{r['req_per_s'] / base['req_per_s']:.2f}, "
              f"p50 latency x{r['p50'] / base['p50']:.2f}, p95 latency x{r['p95'] / base['p95']:.2f}")


if __name__ == "__main__":
    main()
