"""A year of nightly history: how long the viewer's pages, `speechlab show`, `speechlab compare` and
`speechlab prune` take on a results database of 2,000 runs and a million utterance rows.

    python benchmarks/history_scale.py                                   # SQLite, 2,000 runs x 500 rows
    python benchmarks/history_scale.py --db postgresql+psycopg://USER@127.0.0.1:PORT/DB
    python benchmarks/history_scale.py --runs 200 --utterances 125       # a quick look
    python benchmarks/history_scale.py --db sqlite:////tmp/year.db --reuse   # time a database filled before

The database is filled through the Store API as sessions write it (benchmarks/view_pages.py: each
run 2 models x 2 datasets x N utterances, figures, grades, 20 test outcomes; a baseline on the
first run). Each page is asked 5 times with Flask's test client (the first time, and the median of the other
4: the viewer keeps the analyses of complete runs it has compared); each command runs 4 times as a
fresh process, as a user types it (the first, and the median of the other 3, Python's start
included). Prune keeps the
newest 100 runs and the baseline. Prints one line per figure and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from view_pages import fill

from pytest_speechlab.sinks.store import Store


def median_ms(call, times: int) -> tuple[float, float]:
    """(the first call, the median of the calls after it) in milliseconds."""
    took = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        took.append(time.perf_counter() - start)
    return round(took[0] * 1000, 1), round(statistics.median(took[1:]) * 1000, 1)


def command(url: str, *args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "pytest_speechlab.cli", "--db", url, *args], capture_output=True,
                         text=True, env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 0, (args, out.stdout[-500:], out.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--utterances", type=int, default=125, help="per evaluation (4 evaluations a run)")
    parser.add_argument("--db", help="a database URL to fill (emptied first); default: a temporary SQLite file")
    parser.add_argument("--reuse", action="store_true", help="time --db as it is (filled by an earlier run; "
                        "prune is skipped so that it can be timed again)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = options.db or f"sqlite:///{folder}/results.db"
        if options.reuse:
            store = Store(url, read_only=True)
            ids = [r["id"] for r in reversed(store.runs())]
            figures = {"runs": len(ids), "utterance_rows": "as filled", "db": url.split(":", 1)[0]}
            time_it(url, ids, figures, prune=False)
            return
        if options.db:  # start from nothing
            store = Store(url)
            with store.engine.begin() as conn:
                for name in ("ratings", "listening_tests", "outputs", "baselines", "utterances", "languages",
                             "aggregates", "grades", "outcomes", "models", "progress", "runs"):
                    conn.execute(store.t[name].delete())
            store.engine.dispose()
        started = time.perf_counter()
        ids = fill(url, options.runs, options.utterances)
        figures = {"runs": options.runs, "utterance_rows": options.runs * 4 * options.utterances,
                   "fill_s": round(time.perf_counter() - started, 1), "db": url.split(":", 1)[0]}
        print(f"filled {figures['runs']} runs, {figures['utterance_rows']:,} utterance rows in {figures['fill_s']} s", flush=True)
        time_it(url, ids, figures, prune=True)


def time_it(url: str, ids: list[str], figures: dict, prune: bool) -> None:
    from pytest_speechlab.view.app import create_app

    app = create_app(lambda: Store(url, read_only=True), "t")
    client = app.test_client()
    pages = {"runs list": "/", "run page": f"/runs/{ids[-1]}",
             "evaluation page": f"/runs/{ids[-1]}/evaluation?model=m%2Fa&dataset=d%2Fone",
             "compare page": f"/compare?a={ids[0]}&b={ids[-1]}", "trends page": "/trends"}
    for name, path in pages.items():
        def get(path=path):
            response = client.get(path, headers={"Authorization": "Bearer t"})
            assert response.status_code == 200, (path, response.status_code)
        first, again = figures[name + " ms"] = median_ms(get, 5)
        print(f"{name}: {first} ms the first time, {again} ms after (median of 4)", flush=True)
    for name, args in {"speechlab show": ("show", "latest"), "speechlab compare": ("compare", ids[0][:8], "latest")}.items():
        first, again = figures[name + " ms"] = median_ms(lambda args=args: command(url, *args), 4)
        print(f"{name}: {first} ms the first time, {again} ms after (median of 3; each a fresh process)", flush=True)
    if prune:
        start = time.perf_counter()
        command(url, "prune", "--keep", "100", "--yes")
        figures["prune to 100 ms"] = round((time.perf_counter() - start) * 1000, 1)
        left = Store(url, read_only=True)
        figures["runs left"] = len(left.runs())
        figures["baseline kept"] = left.resolve("main") == ids[0]
        print(f"speechlab prune --keep 100: {figures['prune to 100 ms']} ms, {figures['runs left']} runs left, "
              f"baseline kept: {figures['baseline kept']}", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
