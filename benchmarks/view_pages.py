"""How long `speechlab view` takes to answer each page as the history grows.

    python benchmarks/view_pages.py                 # 50 and 500 runs
    python benchmarks/view_pages.py --runs 1000 --utterances 200

Fills a SQLite results store through the Store API (each run: 2 models x 2 datasets, N utterances
each, figures with intervals, grades, test outcomes; one commit per run) and times each page with
Flask's test client (no network, no browser): the runs list, a run, an evaluation, a comparison and
the trends. Prints the median of 5 requests per page, in milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_speechlab.sinks.store import Store  # noqa: E402
from pytest_speechlab.view.app import create_app  # noqa: E402

WORDS = "the quick brown fox jumps over a lazy dog".split()


def fill(url: str, runs: int, utterances: int) -> list[str]:
    store = Store(url)
    ids = []
    for r in range(runs):
        run_id = store.start_run({"git_commit": f"{r:040x}", "git_commit_time": f"2026-01-01T00:{r // 60:02d}:{r % 60:02d}+00:00",
                                  "host": "bench", "cpu": "cpu", "python": "3.11", "normalizer": "n"})
        for model in ("m/a", "m/b"):
            store.record_model(run_id, {"name": model, "backend": "fake"}, 0.1)
            for dataset in ("d/one", "d/two"):
                store.record_progress(run_id, model, dataset, utterances)
                rows = [{"utterance_id": f"u{i}", "kind": "speech", "source": "m.jsonl", "reference": " ".join(WORDS),
                         "hypothesis": " ".join(WORDS[: 9 - (i + r) % 3]), "reference_normalized": " ".join(WORDS),
                         "hypothesis_normalized": " ".join(WORDS[: 9 - (i + r) % 3]), "hits": 9 - (i + r) % 3,
                         "substitutions": 0, "deletions": (i + r) % 3, "insertions": 0, "char_errors": 2 * ((i + r) % 3),
                         "char_length": 35, "audio_seconds": 3.0, "processing_seconds": 0.3, "findings": []}
                        for i in range(utterances)]
                for start in range(0, len(rows), Store.BATCH):
                    store.record_utterances(run_id, model, dataset, rows[start:start + Store.BATCH])
                wer = sum(x["deletions"] for x in rows) / (9 * utterances)
                store.record_aggregate(run_id, model, dataset, {"wer": wer, "wer_ci": [wer * 0.8, wer * 1.2], "cer": wer / 2,
                                                                "rtf": 0.1, "hallucination_rate": 0.0, "utterances": utterances,
                                                                "processed": utterances, "hallucinated": 0}, {})
            store.record_grade(run_id, model, "B", "bench")
        store.record_outcomes(run_id, [{"nodeid": f"suites/test_x.py::test_{i}", "outcome": "passed", "duration": 0.1}
                                       for i in range(20)])
        store.finish_run(run_id)
        ids.append(run_id)
    store.set_baseline("main", ids[0])
    store.engine.dispose()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, action="append")
    parser.add_argument("--utterances", type=int, default=100)
    options = parser.parse_args()
    for runs in options.runs or [50, 500]:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/results.db"
            started = time.perf_counter()
            ids = fill(url, runs, options.utterances)
            filled = time.perf_counter() - started
            app = create_app(lambda: Store(url, read_only=True), "t")
            client = app.test_client()
            pages = {"runs": "/", "run": f"/runs/{ids[-1]}",
                     "evaluation": f"/runs/{ids[-1]}/evaluation?model=m%2Fa&dataset=d%2Fone",
                     "compare": f"/compare?a={ids[0]}&b={ids[-1]}", "trends": "/trends"}
            timings = {}
            for name, path in pages.items():
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    response = client.get(path, headers={"Authorization": "Bearer t"})
                    times.append(time.perf_counter() - start)
                    assert response.status_code == 200, (path, response.status_code)
                timings[name] = statistics.median(times) * 1000
            print(f"{runs} runs x 4 evaluations x {options.utterances} utterances (filled in {filled:.1f} s): "
                  + ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()))


if __name__ == "__main__":
    main()
