"""The engine without pytest: evaluate_models() on a fake model, recorded and cached like a pytest run."""
from __future__ import annotations

import types
import warnings

import pytest

from helpers import make_fake_dataset
from pytest_speechlab import SpeedNotJudged, Transcript, check_below, evaluate_models, hookimpl


class Echo:
    sample_rate = 16000
    calls = 0

    def transcribe(self, audio):
        Echo.calls += 1
        return Transcript({"1.00": "the cat sat on the mat", "1.50": "a quick brown fox",
                           "2.00": "hello world"}.get(f"{len(audio) / 16000:.2f}", ""))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "echo 1"}


@hookimpl
def speechlab_register_models(register):
    register("echo/asr", task="asr", load=lambda params: Echo(), backend="echo")


PLUGIN = types.SimpleNamespace(speechlab_register_models=speechlab_register_models)


def test_evaluate_models_outside_pytest_records_and_caches(tmp_path):
    from pytest_speechlab.sinks.store import Store

    manifest = make_fake_dataset(tmp_path / "data")
    db = tmp_path / "results.db"
    (result,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])
    assert result.wer == 0.0 and len(result.utterances) == 4 and result.cached_count == 0
    assert Echo.calls == 4 + 1  # four clips and one warm-up
    store = Store(f"sqlite:///{db}", read_only=True)
    run = store.run(store.resolve("latest"))
    assert run["status"] == "complete" and run["grades"][0]["model"] == "echo/asr"
    (again,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])
    assert again.cached_count == 4 and again.wer == result.wer and again.retimed["utterances"] == 4
    assert check_below(again, "rtf", 1000.0) == again.retimed["rtf"]  # judged on the re-timed sample
    calls = Echo.calls
    (untimed,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN], retime=0)
    assert Echo.calls == calls and untimed.retimed is None and untimed.speed_rtf is None
    assert untimed.rtf == result.rtf  # the timing recorded with the cached outputs, not re-measured
    with pytest.raises(SpeedNotJudged, match="4 of 4 outputs came from the inference cache and none was re-timed"):
        check_below(untimed, "rtf", 1000.0)
    (unrecorded,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, plugins=[PLUGIN])
    assert unrecorded.cached_count == 0 and len(store.runs()) == 3


def test_a_failing_inference_cache_degrades_to_computing_and_loses_no_figure(tmp_path, monkeypatch):
    """The cache is an optimization: a write that fails (a full disk) or a read that fails (a
    malformed row) turns it off for the session, said once; every output is computed and recorded."""
    from pytest_speechlab.sinks.store import Store

    manifest = make_fake_dataset(tmp_path / "data")
    db = tmp_path / "results.db"

    def full_disk(self, rows, replace=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "put_outputs", full_disk)
    with pytest.warns(UserWarning, match="inference cache off for the rest of the session: writing an output failed"):
        (result,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])
    assert result.wer == 0.0 and len(result.processed) == 4 and result.cached_count == 0
    store = Store(f"sqlite:///{db}", read_only=True)
    assert len(store.utterances(store.resolve("latest"))) == 4  # the measured rows were recorded
    monkeypatch.undo()

    evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])  # fills the cache

    def malformed(self, keys):
        raise ValueError("Expecting value: line 1 column 1 (char 0)")

    monkeypatch.setattr(Store, "outputs", malformed)
    with pytest.warns(UserWarning, match="reading cached outputs failed .ValueError"):
        (again,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])
    assert again.cached_count == 0 and again.wer == result.wer and len(again.processed) == 4


def test_a_damaged_cached_output_is_computed_again_and_the_others_still_come_from_the_cache(tmp_path):
    """A row of the outputs table whose JSON cannot be decoded (SQLite stores it as text, so it can
    be damaged; PostgreSQL's json type refuses such a value) is a miss, said once; the rest are hits."""
    import sqlite3

    manifest = make_fake_dataset(tmp_path / "data")
    db = tmp_path / "results.db"
    evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])
    with sqlite3.connect(db) as conn:
        (key,) = conn.execute("SELECT key FROM outputs LIMIT 1").fetchone()
        conn.execute("UPDATE outputs SET transcript = '{\"text\": ' WHERE key = ?", (key,))
    with pytest.warns(UserWarning, match=r"inference cache: 1 cached output\(s\) could not be decoded"):
        (again,) = evaluate_models(["echo/asr"], [str(manifest)], pyproject=None, db=str(db), plugins=[PLUGIN])
    assert again.cached_count == len(again.processed) - 1 and again.wer == 0.0


class Dropper(Echo):
    """Echo that, on its second clip, has PostgreSQL drop every other connection to the database:
    the session's pooled connections die under it, as when a server restarts or a proxy times out."""

    url = ""
    dropped = 0

    def transcribe(self, audio):
        if Echo.calls == 2 and Dropper.url:
            import psycopg

            with psycopg.connect(Dropper.url) as conn:
                Dropper.dropped = len(conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())
        return super().transcribe(audio)


@hookimpl
def speechlab_register_dropper(register):
    register("drop/asr", task="asr", load=lambda params: Dropper(), backend="echo")


def test_a_dropped_postgresql_connection_loses_no_figure_and_no_row(tmp_path, db_url):
    """The server drops the session's connections mid-run: the cache and the recorder reconnect, and
    every output is computed, recorded and cached (SQLite runs the same flow without the drop)."""
    from sqlalchemy.engine import make_url

    from pytest_speechlab.sinks.store import Store

    plugin = types.SimpleNamespace(speechlab_register_models=speechlab_register_dropper)
    postgres = db_url.startswith("postgresql")
    Dropper.url = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False) if postgres else ""
    Dropper.dropped = 0
    manifest = make_fake_dataset(tmp_path / "data")
    Echo.calls = 0
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        (result,) = evaluate_models(["drop/asr"], [str(manifest)], pyproject=None, db=db_url, plugins=[plugin])
    assert not [w for w in said if "inference cache off" in str(w.message)]  # reconnected, not degraded
    assert Dropper.dropped >= (1 if postgres else 0)  # the session's connections were dropped
    assert result.wer == 0.0 and len(result.processed) == 4 and not result.errors
    store = Store(db_url, read_only=True)
    run = store.run(store.resolve("latest"))
    assert run["status"] == "complete" and len(store.utterances(run["id"])) == 4
    (again,) = evaluate_models(["drop/asr"], [str(manifest)], pyproject=None, db=db_url, plugins=[plugin])
    assert again.cached_count == 4  # the outputs written after the drop are in the cache
