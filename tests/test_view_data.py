"""The viewer without a browser: Flask's test client over a store filled by a real run, on SQLite
and on PostgreSQL (read-only there: the server refuses any write in the viewer's transactions)."""
from __future__ import annotations

import re
import sys
from urllib.parse import quote

from pytest_speechlab.sinks.store import Store
from pytest_speechlab.view import data
from pytest_speechlab.view.app import create_app


def test_pages_over_sqlite_and_postgresql(speechlab_project, db_url):
    conftest = speechlab_project.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace('"hello world"', '"hello word"'))
    result = speechlab_project.runpytest("suites", "--speechlab-db", db_url)
    run_id = re.search(r"recorded as run ([0-9a-f-]{36})", result.stdout.str()).group(1)
    app = create_app(lambda: Store(db_url, read_only=True), "tok")
    client = app.test_client()
    auth = {"Authorization": "Bearer tok"}
    listing = client.get("/", headers=auth)
    assert listing.status_code == 200 and run_id[:8] in listing.text
    page = client.get(f"/runs/{run_id}", headers=auth).text
    assert "fake/perfect" in page and "Scorecard" in page
    dataset = next(d for m, d in Store(db_url, read_only=True).evaluations(run_id))
    evaluation = client.get(f"/runs/{run_id}/evaluation?model=fake%2Fperfect&dataset={quote(dataset, safe='')}", headers=auth)
    assert evaluation.status_code == 200 and 'class="sub"' in evaluation.text  # "word" for "world", aligned
    assert client.get(f"/compare?a={run_id}&b=latest", headers=auth).status_code == 200
    assert client.get("/trends", headers=auth).status_code == 200
    progress = client.get(f"/api/runs/{run_id}/progress", headers=auth).get_json()
    assert progress["status"] == "complete" and progress["done"] == progress["total"] == 4
    assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/runs/no-such-run", headers=auth).status_code == 404
    traded = client.get("/", query_string={"token": "tok"}, environ_overrides={"PATH_INFO": "//evil.example/"})
    # the token is traded for a cookie by a redirect to this viewer, never to another host
    assert traded.status_code == 303 and traded.headers["Location"] == "/evil.example/"


def test_an_evaluation_page_sorts_by_errors_and_pages(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    run_id = store.start_run({})
    rows = [{"utterance_id": f"u{i:03d}", "reference_normalized": "a b c", "hypothesis_normalized": "a b c"[: 5 - 2 * (i % 3)],
             "hits": 3 - i % 3, "substitutions": 0, "deletions": i % 3, "insertions": 0, "audio_seconds": 1.0,
             "processing_seconds": 0.1} for i in range(250)]
    store.record_utterances(run_id, "m", "d", rows)
    store.record_utterances(run_id, "m", "d", [{"utterance_id": "typed-wrong", "hits": "lots", "substitutions": 1,
                                                "deletions": 0, "insertions": 0}])
    first = data.evaluation(store, run_id, "m", "d")
    assert first["pages"] == 3 and len(first["utterances"]) == data.PAGE and first["count"] == 251
    wrong = next(u for u in data.evaluation(store, run_id, "m", "d", sort="id")["utterances"]
                 if u["utterance_id"] == "typed-wrong")
    assert wrong["errors"] is None and wrong["alignment"] == []  # its counts not trusted for their type: unscored, no crash
    assert [u["errors"] for u in first["utterances"][:3]] == [2, 2, 2]
    last = data.evaluation(store, run_id, "m", "d", sort="id", page=99)  # clamped to the last page
    assert last["page"] == 3 and last["utterances"][-1]["utterance_id"] == "u249"
    assert data.evaluation(store, run_id, "m", "d", sort="bogus")["sort"] == "errors"


def test_without_the_view_extra_the_command_says_what_to_install(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pytest_speechlab.cli import main as speechlab

    db = tmp_path / "r.db"
    Store(f"sqlite:///{db}").start_run({})
    monkeypatch.setitem(sys.modules, "flask", None)  # as if Flask were not installed
    out = CliRunner().invoke(speechlab, ["--db", str(db), "view", "--port", "0"])
    assert out.exit_code == 2 and "pip install 'pytest-speechlab[view]'" in out.output
    missing = CliRunner().invoke(speechlab, ["--db", str(tmp_path / "none.db"), "view"])
    assert missing.exit_code == 2 and "no results database" in missing.output


def test_cached_timings_are_labelled_as_such(speechlab_project):
    db = speechlab_project.path / "r.db"
    for _ in range(2):  # the second session takes every output from the inference cache
        speechlab_project.runpytest("suites", "--speechlab-db", str(db))
    client = create_app(lambda: Store(f"sqlite:///{db}", read_only=True), "t").test_client()
    auth = {"Authorization": "Bearer t"}
    page = client.get("/runs/latest", headers=auth).text
    assert "4 of 4 outputs cached: their timings are the first run's; re-timed here on 4" in page
    assert "(4 cached timings)" in client.get("/trends?metric=rtf", headers=auth).text
    speechlab_project.runpytest("suites", "--speechlab-db", str(db), "--speechlab-retime", "0")
    page = client.get("/runs/latest", headers=auth).text
    assert "4 of 4 outputs cached: their timings are the first run's; none re-timed (retime 0): speed not judged" in page
