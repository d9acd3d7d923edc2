"""The results store on SQLite and on a real PostgreSQL server (never a mock).

PostgreSQL runs when SPEECHLAB_TEST_POSTGRES_URL is set (.ci/run starts a server with
.ci/postgres.sh); otherwise those cases skip with that reason.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pytest_speechlab import SpeechlabError
from pytest_speechlab.sinks.store import SCHEMA_VERSION, Store

from helpers import PG_URL, fresh_postgres_url  # noqa: F401 - the db_url fixture is in conftest.py


def utt_rows(n: int, prefix: str = "u", errors: int = 0) -> list[dict]:
    return [{"utterance_id": f"{prefix}{i}", "kind": "speech", "reference": "a b c d", "hypothesis": "a b c d",
             "hits": 4 - errors, "substitutions": errors, "deletions": 0, "insertions": 0,
             "char_errors": errors, "char_length": 7, "audio_seconds": 1.0, "processing_seconds": 0.1,
             "findings": [{"kind": "repetition", "span": "x", "evidence": "e"}] if i == 0 else []}
            for i in range(n)]


def test_round_trip_of_a_run(db_url):
    store = Store(db_url)
    assert store.schema_version == SCHEMA_VERSION
    run = store.start_run({"git_commit": "abc", "git_dirty": True, "host": "h", "packages": {"x": "1"},
                           "config": {"models": ["m"]}})
    store.record_model(run, {"name": "m", "backend": "b", "weights_sha256": "sha256:1", "params": {"beam": 5}}, 0.4)
    store.record_utterances(run, "m", "d", utt_rows(3))
    store.record_aggregate(run, "m", "d", {"wer": 0.0, "wer_ci": [0.0, 0.0]}, {"threads": 2})
    store.record_grade(run, "m", "A+", "fine")
    store.record_outcomes(run, [{"nodeid": "t::x", "outcome": "passed", "duration": 0.1, "message": None}])
    assert store.run(run)["status"] == "incomplete"
    store.finish_run(run)
    data = store.run(run)
    assert data["status"] == "complete" and data["git_dirty"] is True and data["packages"] == {"x": "1"}
    assert data["models"][0]["params"] == {"beam": 5}
    assert data["aggregates"][0]["metrics"]["wer_ci"] == [0.0, 0.0]
    assert data["grades"][0]["grade"] == "A+"
    rows = {r["utterance_id"]: r for r in store.utterances(run, "m", "d")}
    assert len(rows) == 3 and rows["u0"]["findings"][0]["kind"] == "repetition" and rows["u1"]["findings"] == []


def test_reopening_keeps_data_and_refuses_a_newer_schema(db_url):
    run = Store(db_url).start_run({})
    store = Store(db_url)  # migrations are idempotent
    assert store.run(run)["id"] == run
    with store.engine.begin() as conn:
        conn.execute(store.t["schema_version"].update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(SpeechlabError, match="newer than this pytest-speechlab understands"):
        Store(db_url)


def test_baselines_resolve_export_import_and_prune(db_url, tmp_path):
    store = Store(db_url)
    runs = []
    for i in range(4):
        runs.append(store.start_run({"started_at": f"2026-01-0{i + 1}T00:00:00+00:00"}))
        store.record_utterances(runs[-1], "m", "d", utt_rows(2))
        store.finish_run(runs[-1])
    store.set_baseline("main", runs[0])
    assert store.resolve("main") == runs[0]
    assert store.resolve("latest") == runs[3]
    assert store.resolve(runs[2][:8]) == runs[2]
    with pytest.raises(SpeechlabError, match="no such run or baseline"):
        store.resolve("nope")

    exported = store.export_run(runs[1])
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    assert other.import_run(json.loads(json.dumps(exported)), source="r.json") == runs[1]
    assert len(other.utterances(runs[1])) == 2 and other.run(runs[1])["imported_from"] == "r.json"
    with pytest.raises(SpeechlabError, match="already in"):
        other.import_run(exported)
    with pytest.raises(SpeechlabError, match="not a pytest-speechlab run export"):
        other.import_run({"format": "something else"})

    deleted = store.prune(keep=1)
    assert set(deleted) == {runs[1], runs[2]}  # the baseline (runs[0]) and the newest stay
    assert {r["id"] for r in store.runs()} == {runs[0], runs[3]}
    assert store.utterances(runs[1]) == []


WRITER = textwrap.dedent("""
    import sys
    from pytest_speechlab.sinks.store import Store
    url, n_batches = sys.argv[1], int(sys.argv[2])
    store = Store(url)
    run = store.start_run({"host": "writer"})
    for b in range(n_batches):
        store.record_utterances(run, "m", "d", [
            {"utterance_id": f"b{b}-u{i}", "kind": "speech", "hits": 3, "substitutions": 1, "deletions": 0,
             "insertions": 0, "audio_seconds": 1.0, "processing_seconds": 0.1} for i in range(8)])
        print(b, flush=True)
        if len(sys.argv) > 3:
            import time; time.sleep(float(sys.argv[3]))
    store.finish_run(run)
""")


def test_concurrent_writers_lose_nothing(db_url):
    Store(db_url)  # created once, as the first pytest-xdist worker would
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = Store(db_url)
    runs = store.runs()
    assert len(runs) == 6 and all(r["status"] == "complete" for r in runs)
    assert sum(len(store.utterances(r["id"])) for r in runs) == 6 * 10 * 8


def test_sigkill_mid_run_keeps_finished_batches(db_url):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url, "1000", "0.02"], stdout=subprocess.PIPE, text=True)
    done = -1
    while done < 5:
        done = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(db_url)  # still readable
    (run,) = store.runs()
    assert run["status"] == "incomplete"
    count = len(store.utterances(run["id"]))
    assert count >= (done + 1) * 8 and count % 8 == 0  # whole batches only
    if db_url.startswith("sqlite"):
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_sigkill_during_a_pytest_run_keeps_recorded_utterances(speechlab_project, tmp_path):
    """End to end: pytest is killed while evaluating; the database has the batches written before."""
    from helpers import write_audio, write_manifest

    data = speechlab_project.path / "slow"
    lines = []
    for i in range(48):
        write_audio(data / f"{i}.wav", 1.0)
        lines.append({"id": f"s{i}", "audio": f"{i}.wav", "text": "the cat sat on the mat"})
    write_manifest(data / "manifest.jsonl", lines)
    speechlab_project.makeconftest(
        (speechlab_project.path / "conftest.py").read_text()
        + "\nimport time\n_orig = LengthModel.transcribe\n"
          "def _slow(self, audio):\n    time.sleep(0.1)\n    return _orig(self, audio)\n"
          "LengthModel.transcribe = _slow\n"
    )
    db = tmp_path / "kill.db"
    env = {**os.environ, "FAKE_LOAD_LOG": str(speechlab_project.path / "loads.log")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites/test_asr_speed.py", "--speechlab-db", str(db),
         "--speechlab-dataset", str(data / "manifest.jsonl"), "--speechlab-progress", "off"],
        cwd=speechlab_project.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    store = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            store = Store(f"sqlite:///{db}")
            runs = store.runs()
            if runs and len(store.utterances(runs[0]["id"])) >= 16:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(f"sqlite:///{db}")
    (run,) = store.runs()
    rows = store.utterances(run["id"])
    assert run["status"] == "incomplete"
    assert 16 <= len(rows) < 48  # written in batches of Store.BATCH, or after FLUSH_SECONDS
    assert {r["utterance_id"] for r in rows} <= {f"s{i}" for i in range(48)}
    assert all(r["hits"] == 6 for r in rows)


def test_a_version_3_database_is_read_as_it_is_and_migrated_when_written(tmp_path):
    """Version 4 added where each output was computed (worker, threads, batch size)."""
    import sqlalchemy as sa

    db = tmp_path / "v3.db"
    store = Store(f"sqlite:///{db}")
    run_id = store.start_run({})
    store.record_utterances(run_id, "m", "d", [{"utterance_id": "u1", "hypothesis": "hello", "kind": "speech"}])
    store.finish_run(run_id)
    with store.engine.begin() as conn:  # what pytest-speechlab 0.x with schema 3 left behind
        for column in ("worker", "threads", "batch_size"):
            conn.execute(sa.text(f"ALTER TABLE utterances DROP COLUMN {column}"))
        conn.execute(sa.text("UPDATE schema_version SET version = 3"))
    store.engine.dispose()
    old = Store(f"sqlite:///{db}", read_only=True)
    assert [r["hypothesis"] for r in old.utterances(run_id)] == ["hello"]
    assert old.schema_version == 3
    new = Store(f"sqlite:///{db}")
    assert new.schema_version == SCHEMA_VERSION
    row = new.utterances(run_id)[0]
    assert row["hypothesis"] == "hello" and row["worker"] is None and row["batch_size"] is None
