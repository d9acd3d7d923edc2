"""The inference cache: what makes a key, what re-scoring and re-timing do, the cache modes,
concurrent sessions, and resuming a killed session."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

from helpers import REPO, write_audio, write_manifest

CACHE_CONFTEST = r'''
import os, time
from pytest_speechlab import hookimpl, Transcript, Segment, weights_digest

WORDS = "amber birch cedar delta ember fjord grove harbor island juniper".split()


class Counting:
    """Says the clip's length in words; logs every transcribe call; its identity comes from the
    environment, so that tests can change one part of it at a time."""
    sample_rate = 16000

    def __init__(self, params):
        self.params = params

    def transcribe(self, audio):
        with open(os.environ["CALLS_LOG"], "a") as fh:
            fh.write("call\n")
        time.sleep(float(os.environ.get("SLOW_S", "0")))
        n = int(round(len(audio) / self.sample_rate * 10)) - 10
        text = " ".join(WORDS[(n + k) % 10] for k in range(4))
        return Transcript(text, (Segment(0.0, len(audio) / self.sample_rate, text, -0.2, 0.01),))

    def info(self):
        info = {"threads": int(os.environ.get("FAKE_THREADS", "1")), "device": "cpu", "backend_version": os.environ.get("FAKE_BACKEND_VERSION", "1.0"),
                "decode": dict(self.params)}
        if os.environ.get("WEIGHTS_FILE"):
            info["weights_sha256"] = weights_digest(os.environ["WEIGHTS_FILE"])
        return info


@hookimpl
def speechlab_register_models(register):
    register("fake/counting", task="asr", load=Counting, backend="fake", params={"beam_size": 5})
'''

N = 12


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    for var in ("SLOW_S", "FAKE_BACKEND_VERSION", "WEIGHTS_FILE", "FAKE_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CALLS_LOG", str(pytester.path / "calls.log"))
    pytester.makeconftest(CACHE_CONFTEST)
    words = "amber birch cedar delta ember fjord grove harbor island juniper".split()
    lines = []
    for i in range(N):
        write_audio(pytester.path / "data" / f"{i}.wav", 1.0 + 0.1 * i)
        reference = " ".join(words[(i + k) % 10] for k in range(4)) if i % 3 else "amber amber amber amber"
        lines.append({"id": f"u{i:02d}", "audio": f"{i}.wav", "text": reference})
    write_manifest(pytester.path / "data" / "manifest.jsonl", lines)
    (pytester.path / "suites").mkdir()
    for suite in ("test_asr_accuracy.py", "test_asr_speed.py", "test_hallucination.py"):
        (pytester.path / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    pytester.makefile(".toml", pyproject="""
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/counting"]
speechlab_datasets = ["data/manifest.jsonl"]

[tool.speechlab]
retime = 3

[tool.speechlab.thresholds]
wer = 1.0
cer = 1.0
rtf = 1000.0
""")
    return pytester


def calls(project) -> int:
    log = project.path / "calls.log"
    n = len(log.read_text().split()) if log.exists() else 0
    log.unlink(missing_ok=True)
    return n


def summary_line(result) -> str:
    return next((line for line in result.outlines if line.startswith("inference cache:")), "")


def figures(project) -> list[tuple]:
    """(id, hypothesis, errors, findings) of the latest run, from the database."""
    from pytest_speechlab.sinks.store import Store

    store = Store(f"sqlite:///{project.path / '.speechlab' / 'results.db'}", read_only=True)
    rows = store.utterances(store.resolve("latest"))
    return sorted((r["utterance_id"], r["hypothesis"], r["substitutions"], r["deletions"], r["insertions"],
                   tuple(f["kind"] for f in r["findings"])) for r in rows)


def test_a_rerun_takes_every_output_from_the_cache_and_re_times_a_sample(project):
    first = project.runpytest("suites")
    first.assert_outcomes(passed=4)
    assert calls(project) == N + 1  # every utterance and one warm-up
    before = figures(project)
    second = project.runpytest("suites")
    second.assert_outcomes(passed=4)
    assert calls(project) == 3 + 1  # only the re-timed sample (retime = 3) and its warm-up
    assert summary_line(second).startswith(f"inference cache: {N} outputs from the cache, 0 computed")
    assert "re-timed here on 3 utterances" in second.stdout.str()
    assert figures(project) == before


def test_retime_0_decodes_nothing_and_judges_no_speed_on_cached_outputs(project):
    for suite in ("test_readiness.py", "test_regression.py"):
        (project.path / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    first = project.runpytest("suites", "--speechlab-retime", "0", "--speechlab-min-grade", "F")
    first.assert_outcomes(passed=5)  # nothing cached yet: speed is judged on this session's timings
    assert calls(project) == N + 1
    before = figures(project)
    second = project.runpytest("suites", "--speechlab-retime", "0", "--speechlab-min-grade", "F",
                               "--speechlab-baseline", "latest", "-rs", "--speechlab-benchmark-json", "bench.json")
    assert calls(project) == 0  # no re-timing and no warm-up: the model is never called
    second.assert_outcomes(passed=5, skipped=1)
    out = second.stdout.str()
    assert f"SKIPPED [1] suites/test_asr_speed.py:8: speed not judged for fake/counting on data/manifest.jsonl: " \
           f"{N} of {N} outputs came from the inference cache and none was re-timed here (retime 0)" in out
    assert "none re-timed here (retime 0): speed not judged" in summary_line(second) + out
    assert "RTF limits not judged on data/manifest.jsonl" in out  # the grade says it left them out
    assert "RTF not judged: speed not judged for fake/counting" in out  # so does the regression gate
    (bench,) = json.loads((project.path / "bench.json").read_text())["benchmarks"]
    assert "none re-timed in this run (retime 0): speed not judged" in bench["extra_info"]["timing"]
    assert bench["extra_info"]["speed_unjudged"].startswith("speed not judged for fake/counting")
    assert figures(project) == before
    negative = project.runpytest("suites", "--speechlab-retime", "-1")
    assert negative.ret == pytest.ExitCode.USAGE_ERROR
    assert "--speechlab-retime -1: give the number of utterances to time again" in negative.stderr.str()


def test_each_key_part_misses(project, monkeypatch, tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00" * 1000)
    monkeypatch.setenv("WEIGHTS_FILE", str(weights))
    project.runpytest("suites")
    calls(project)
    changes = {
        "a decode parameter": lambda: project.path.joinpath("pyproject.toml").write_text(
            project.path.joinpath("pyproject.toml").read_text().replace(
                'speechlab_models = ["fake/counting"]', 'speechlab_models = ["fake/greedy"]')
            + '\n[tool.speechlab.models."fake/greedy"]\nmodel = "fake/counting"\nbeam_size = 1\n'),
        "one byte of the weights": lambda: weights.write_bytes(b"\x00" * 999 + b"\x01"),
        "the backend version": lambda: monkeypatch.setenv("FAKE_BACKEND_VERSION", "1.0.1"),
        "the thread count": lambda: monkeypatch.setenv("FAKE_THREADS", "2"),  # it can change a transcript
    }
    for what, change in changes.items():
        change()
        project.runpytest("suites")
        assert calls(project) == N + 1, what  # everything computed again
    # one sample of one clip: only that utterance misses
    audio, rate = sf.read(project.path / "data" / "5.wav", dtype="float32")
    audio[100] += 0.01
    sf.write(project.path / "data" / "5.wav", audio, rate)
    result = project.runpytest("suites")
    assert calls(project) == 1 + 1 + 3  # the changed clip, a warm-up, then the re-timed sample
    assert summary_line(result).startswith(f"inference cache: {N - 1} outputs from the cache, 1 computed")


def test_a_changed_normalizer_hits_and_re_scores(project):
    project.runpytest("suites")
    calls(project)
    before = figures(project)
    text = project.path.joinpath("pyproject.toml").read_text()
    project.path.joinpath("pyproject.toml").write_text(text.replace("retime = 3", 'retime = 3\nnormalizer = "lowercase"'))
    result = project.runpytest("suites")
    assert calls(project) == 3 + 1  # outputs from the cache; only re-timing ran the model
    assert summary_line(result).startswith(f"inference cache: {N} outputs")
    assert "Normalizers: lowercase" in result.stdout.str()
    assert [f[1] for f in figures(project)] == [f[1] for f in before]  # the same outputs, scored again


def test_refresh_recomputes_and_read_only_never_writes(project):
    from pytest_speechlab.sinks.store import Store

    project.runpytest("suites", "--speechlab-cache", "read-only")
    assert calls(project) == N + 1
    store = Store(f"sqlite:///{project.path / '.speechlab' / 'results.db'}", read_only=True)
    assert store.outputs([]) == {} and not store._query(store.sa.select(store.t["outputs"]))
    project.runpytest("suites")  # fills the cache
    assert calls(project) == N + 1
    project.runpytest("suites", "--speechlab-cache", "refresh")
    assert calls(project) == N + 1  # recomputed although every output was there
    project.runpytest("suites", "--speechlab-cache", "off")
    assert calls(project) == N + 1
    result = project.runpytest("suites", "--speechlab-cache", "read-only")
    assert calls(project) == 3 + 1 and summary_line(result).startswith(f"inference cache: {N} outputs")


def _pytest(project, *args: str, slow: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "SLOW_S": str(slow), "HF_HUB_OFFLINE": "1"}
    env.pop("CI", None)
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites", *args],
                            cwd=project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_concurrent_sessions_fill_one_cache_without_corrupting_it(project):
    sessions = [_pytest(project, slow=0.05), _pytest(project, slow=0.05)]
    outs = [s.communicate(timeout=300)[0] for s in sessions]
    assert all(s.returncode == 0 for s in sessions), outs
    from pytest_speechlab.sinks.store import Store

    store = Store(f"sqlite:///{project.path / '.speechlab' / 'results.db'}", read_only=True)
    rows = store._query(store.sa.select(store.t["outputs"]))
    assert len(rows) == N and len({r["key"] for r in rows}) == N
    calls(project)
    result = project.runpytest("suites")
    assert summary_line(result).startswith(f"inference cache: {N} outputs from the cache, 0 computed")


def test_a_killed_session_resumes_with_only_the_missing_outputs(project, tmp_path):
    """SIGKILL after half the utterances; the rerun computes exactly the rest, and its figures
    equal those of an uninterrupted run."""
    from pytest_speechlab.sinks.store import Store

    db = project.path / ".speechlab" / "results.db"

    def cached_outputs() -> int:
        try:
            store = Store(f"sqlite:///{db}", read_only=True)
            return len(store._query(store.sa.select(store.t["outputs"].c.key)))
        except Exception:  # noqa: BLE001 - not created or not migrated yet
            return 0

    session = _pytest(project, slow=0.3)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and cached_outputs() < N // 2:
        time.sleep(0.05)
    session.send_signal(signal.SIGKILL)
    session.wait(timeout=30)
    cached = cached_outputs()
    assert N // 2 <= cached < N
    calls(project)
    result = project.runpytest("suites")
    result.assert_outcomes(passed=4)
    assert summary_line(result).startswith(f"inference cache: {cached} outputs from the cache, {N - cached} computed")
    assert calls(project) == (N - cached) + 1 + 3  # the missing ones, a warm-up, the re-timed sample
    resumed = figures(project)
    # an uninterrupted run in a fresh database
    clean = project.runpytest("suites", "--speechlab-db", str(tmp_path / "clean.db"))
    clean.assert_outcomes(passed=4)
    clean_store = Store(f"sqlite:///{tmp_path / 'clean.db'}", read_only=True)
    clean_rows = sorted((r["utterance_id"], r["hypothesis"], r["substitutions"], r["deletions"], r["insertions"],
                         tuple(f["kind"] for f in r["findings"])) for r in clean_store.utterances(clean_store.resolve("latest")))
    assert resumed == clean_rows
