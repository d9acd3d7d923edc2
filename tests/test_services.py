"""Models behind a service: the OpenAI-compatible HTTP API and Wyoming, against real servers from
the package index (faster-whisper-server, wyoming-faster-whisper) and the stand-in service of
tests/stand_ins (which really streams, and misbehaves on purpose), all started here on 127.0.0.1
on the packaged tiny.en weights and stopped afterwards."""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, write_manifest
from services import faster_whisper_server, stand_in, wyoming_server, wyoming_stand_in

from pytest_speechlab import SpeedNotJudged, check_latency, evaluate_models
from pytest_speechlab.metrics.normalize import get_normalizer

pytest.importorskip("speechlab_openai_api", reason="speechlab-openai-api is not installed (README: services)")
pytest.importorskip("speechlab_faster_whisper", reason="the stand-in service runs faster-whisper tiny.en")

FIXTURES = REPO / "fixtures" / "speech"


def project(folder: Path, variants: dict) -> Path:
    """A pyproject declaring ``variants`` ({name: {param: value}}), as a user's would."""
    lines = []
    for name, table in variants.items():
        lines.append(f'[tool.speechlab.models."{name}"]')
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = folder / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def small_set(folder: Path, count: int = 3) -> str:
    """The first ``count`` speech fixtures, copied beside their own manifest."""
    lines = [json.loads(line) for line in (FIXTURES / "manifest.jsonl").read_text().splitlines()][:count]
    for line in lines:
        shutil.copy(FIXTURES / line["audio"], folder / line["audio"])
    return str(write_manifest(folder / "manifest.jsonl", lines))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One stand-in process for every behaviour (the first path segment picks it)."""
    folder = tmp_path_factory.mktemp("stand-in")
    with stand_in(folder) as (url, _):
        yield url


def evaluate(folder: Path, variants: dict, dataset: str, db: str | None = None, cache: str | None = None) -> dict:
    pyproject = project(folder, variants)
    results = evaluate_models(list(variants), [dataset], pyproject=pyproject, db=db, cache=cache)
    return {r.model: r for r in results}


# -- the same fixtures in-process and through each real service ---------------------------------------


@pytest.mark.skipif(not shutil.which("faster-whisper-server"), reason="faster-whisper-server is not installed")
def test_in_process_and_both_real_services_agree_at_equal_settings(tmp_path):
    pytest.importorskip("speechlab_wyoming", reason="speechlab-wyoming is not installed")
    pytest.importorskip("wyoming_faster_whisper", reason="wyoming-faster-whisper is not installed")
    with faster_whisper_server(tmp_path) as http_url, wyoming_server(tmp_path) as wyoming_uri:
        results = evaluate(tmp_path, {
            "fws": {"model": "openai-api/asr", "base_url": http_url, "served_model": "tiny.en",
                    "model_field": "model_name", "language": "en"},
            "wyo": {"model": "wyoming/asr", "uri": wyoming_uri, "language": "en", "pacing": "fast"},
        }, "speechlab/speech")
    (local,) = evaluate_models(["faster-whisper/tiny.en"], ["speechlab/speech"], pyproject=None)
    norm = get_normalizer("speechlab-english")
    here = {u.utterance.id: u for u in local.utterances}
    local_p = {q: float(np.percentile([u.processing_seconds for u in local.processed], q)) for q in (50, 95)}
    report = {}
    for name, result in results.items():
        assert not result.errors, result.errors
        lat = result.latency
        assert lat["requests"] == 34 and lat["failed"] == 0 and lat["warmup_requests_excluded"] == 1
        assert 0 < lat["end_to_end_s"]["p50"] <= lat["end_to_end_s"]["p95"] <= lat["end_to_end_s"]["p99"]
        assert result.model_info["service"]["url"] in (http_url, wyoming_uri)
        differ = [u.utterance.id for u in result.utterances
                  if norm(u.hypothesis) != norm(here[u.utterance.id].hypothesis)]
        report[name] = {"differ": differ, "wer": result.wer, "in_process_wer": local.wer,
                        "p50": lat["end_to_end_s"]["p50"], "p95": lat["end_to_end_s"]["p95"],
                        "in_process_p50": local_p[50], "in_process_p95": local_p[95],
                        "added_p50": lat["end_to_end_s"]["p50"] - local_p[50],
                        "added_p95": lat["end_to_end_s"]["p95"] - local_p[95]}
        # the same weights and decode settings: a few near-tie flips at most (16-bit PCM input, the
        # server's own decoding of the file)
        assert len(differ) <= 4, (name, differ)
    assert results["fws"].model_info["service"]["reported"]["openapi"].startswith("faster-whisper-server")
    assert results["wyo"].model_info["service"]["reported"]["asr"][0]["name"] == "faster-whisper"
    print(json.dumps(report, indent=1))


# -- streaming, format fallback, identity -------------------------------------------------------------


def test_streaming_times_the_first_partial_and_matches_the_whole_response(service, tmp_path):
    dataset = small_set(tmp_path)
    results = evaluate(tmp_path, {
        "whole": {"model": "openai-api/asr", "base_url": f"{service}/ok", "language": "en"},
        "streamed": {"model": "openai-api/asr", "base_url": f"{service}/ok", "language": "en", "stream": True},
    }, dataset)
    whole, streamed = results["whole"], results["streamed"]
    assert [u.hypothesis for u in whole.utterances] == [u.hypothesis for u in streamed.utterances]
    assert all(u.transcript.segments for u in whole.utterances)  # verbose_json: segments reach the detectors
    for u in streamed.utterances:
        assert u.latency["partials"] >= 1
        assert 0 < u.latency["first_partial_s"] <= u.processing_seconds
    assert streamed.latency["first_partial_s"]["n"] == 3 and whole.latency["first_partial_s"]["n"] == 0
    assert whole.model_info["service"]["reported"]["headers"]["x-service-version"] == "stand-in 1.0"


def test_a_service_that_refuses_verbose_json_is_asked_for_json(service, tmp_path):
    result = evaluate(tmp_path, {"fallback": {"model": "openai-api/asr", "base_url": f"{service}/noverbose"}},
                      small_set(tmp_path))["fallback"]
    assert not result.errors and result.wer is not None
    assert all(u.transcript.extra["response_format"] == "json" for u in result.utterances)
    # refused once, on the (untimed) warm-up request, and remembered: no timed request pays for it
    assert result.latency["faults"] == {}


def test_a_changed_service_misses_the_cache(service, tmp_path):
    dataset, db = small_set(tmp_path), str(tmp_path / "results.db")
    first = {"svc": {"model": "openai-api/asr", "base_url": f"{service}/ok", "language": "en"}}
    assert evaluate(tmp_path, first, dataset, db)["svc"].cached_count == 0
    again = evaluate(tmp_path, first, dataset, db)["svc"]
    assert again.cached_count == 3 and again.latency["cached"] == 3  # timings kept, and said to be cached
    with pytest.raises(SpeedNotJudged, match="3 of 3 request timings came from the inference cache"):
        check_latency(again, {"latency_p95_s": 1000.0})  # never judged on them
    assert check_latency(evaluate(tmp_path, first, dataset, db, cache="refresh")["svc"], {"latency_p95_s": 1000.0})
    for change in ({"served_model": "other"}, {"base_url": f"{service}/ratelimit"}):
        changed = {"svc": {**first["svc"], **change}}
        assert evaluate(tmp_path, changed, dataset, db)["svc"].cached_count == 0, change


# -- faults --------------------------------------------------------------------------------------------


def test_a_server_stopped_mid_run_fails_the_rest_and_keeps_what_was_measured(tmp_path):
    dataset = small_set(tmp_path, 6)
    # the warm-up is the first request: the server answers it and two utterances, then exits
    with stand_in(tmp_path, "--stop-after", "3", name="stopping") as (url, process):
        result = evaluate(tmp_path, {"svc": {"model": "openai-api/asr", "base_url": f"{url}/ok", "retries": 1}},
                          dataset)["svc"]
        process.wait(10)
    done = [u for u in result.utterances if u.transcript is not None]
    failed = [u for u in result.utterances if u.error is not None]
    assert len(done) == 2 and len(failed) == 4, [str(u.error) for u in failed]
    assert all("connection to" in u.error.message and "failed 2 time(s)" in u.error.message for u in failed)
    assert result.latency["errors_by_cause"] == {"connection": 4}
    assert result.latency["faults"] == {"connection": 4}  # one retry each, counted, not in a latency
    assert result.latency["end_to_end_s"]["n"] == 2


def test_a_slow_server_hits_the_timeout(service, tmp_path):
    result = evaluate(tmp_path, {"svc": {"model": "openai-api/asr", "base_url": f"{service}/slow", "timeout": 1.0}},
                      small_set(tmp_path, 2))["svc"]
    assert len(result.errors) == 2
    assert all("timed out after 1 s" in e.message for e in result.errors)
    assert result.latency["errors_by_cause"] == {"timeout": 2}


def test_http_429_is_retried_with_back_off_within_a_bound(service, tmp_path):
    results = evaluate(tmp_path, {
        "limited": {"model": "openai-api/asr", "base_url": f"{service}/ratelimit", "language": "en"},
        "always": {"model": "openai-api/asr", "base_url": f"{service}/always429", "retries": 2},
    }, small_set(tmp_path))
    limited, always = results["limited"], results["always"]
    assert not limited.errors and limited.wer is not None
    assert limited.latency["faults"]["http_429"] >= 3 and limited.latency["requests_with_faults"] >= 2
    assert len(always.errors) == 3
    assert all(re.search(r"HTTP 429 from POST .* after 3 attempts", e.message) for e in always.errors)
    assert always.latency["faults"] == {"http_429": 6}  # two retries per utterance, then given up


@pytest.mark.parametrize("mode, message", [
    ("html", "is not JSON (it starts '<!DOCTYPE html>"),
    ("huge", "response too large"),
    ("badutf8", "is not valid UTF-8"),
    ("unavailable", "HTTP 503 from POST"),
])
def test_a_malformed_or_hostile_response_is_a_clear_error_per_utterance(service, tmp_path, mode, message):
    result = evaluate(tmp_path, {"svc": {"model": "openai-api/asr", "base_url": f"{service}/{mode}", "retries": 1}},
                      small_set(tmp_path, 2))["svc"]
    assert len(result.errors) == 2 and all(message in e.message for e in result.errors), result.errors
    assert all(u.transcript is None for u in result.utterances)


def test_configuration_problems_are_load_errors_that_say_what_to_do(tmp_path):
    from pytest_speechlab.engine.runner import ModelLoadError

    for table, expected in [
        ({}, "needs base_url"),
        ({"base_url": "http://user:secret@127.0.0.1:1"}, "must not carry credentials"),
        ({"base_url": "http://127.0.0.1:1", "api_key_env": "SPEECHLAB_NOT_SET_ANYWHERE"}, "is not set"),
        ({"base_url": "http://127.0.0.1:1", "temprature": 0}, "unknown parameter(s) temprature"),
        ({"base_url": "http://127.0.0.1:1"}, "does not answer"),
    ]:
        with pytest.raises(ModelLoadError, match=re.escape(expected)) as info:
            evaluate(tmp_path, {"svc": {"model": "openai-api/asr", **table}}, small_set(tmp_path, 1))
        assert "secret" not in str(info.value)


# -- the API key is sent, and written nowhere ---------------------------------------------------------


def test_the_api_key_reaches_the_service_and_no_output(tmp_path, pytester, monkeypatch):
    secret = "sk-speechlab-test-0123456789abcdef"
    monkeypatch.setenv("SPEECHLAB_TEST_API_KEY", secret)
    with stand_in(tmp_path, "--require-key-env", "SPEECHLAB_TEST_API_KEY", name="keyed") as (url, _):
        small_set(pytester.path)
        pytester.makefile(".toml", pyproject=f"""
[tool.pytest.ini_options]
speechlab_models = ["keyed"]
speechlab_datasets = ["manifest.jsonl"]

[tool.speechlab.models.keyed]
model = "openai-api/asr"
base_url = "{url}/ok"
api_key_env = "SPEECHLAB_TEST_API_KEY"
""")
        suites = pytester.mkdir("suites")
        for suite in ("test_asr_accuracy.py", "test_service_latency.py"):
            (suites / suite).write_text((REPO / "suites" / suite).read_text())
        outputs = ["report.html", "results.json", "bench.json", "junit.xml", "summary.md", "results.db"]
        result = pytester.runpytest_subprocess(
            "suites", "--speechlab-db", "results.db", "--html", "report.html", "--speechlab-json", "results.json",
            "--speechlab-benchmark-json", "bench.json", "--junitxml", "junit.xml", "--speechlab-markdown", "summary.md",
            "-p", "no:cacheprovider", "-rA")
        # without the key, the service answers 401: every utterance would be an error
        assert result.ret == 0, result.stdout.str()
        written = {name: (pytester.path / name).read_bytes() for name in outputs}
    rows = sqlite3.connect(pytester.path / "results.db").execute("select count(*) from utterances where error is null")
    assert rows.fetchone()[0] == 3
    assert "SPEECHLAB_TEST_API_KEY" in written["results.json"].decode()  # the variable's name is recorded
    for name, data in [*written.items(), ("terminal", (result.stdout.str() + result.stderr.str()).encode())]:
        assert secret.encode() not in data, name


# -- TTS over HTTP, through the round-trip suite ------------------------------------------------------


def test_tts_over_http_is_judged_by_the_round_trip_suite(service, pytester):
    pytest.importorskip("speechlab_espeak", reason="the stand-in's speech endpoint uses speechlab-espeak")
    write_manifest(pytester.path / "texts.jsonl", [
        {"id": "t1", "text": "The garden gate was left open all afternoon."},
        {"id": "t2", "text": "Have you seen my keys anywhere in the kitchen?"}])
    pytester.makefile(".toml", pyproject=f"""
[tool.speechlab.tts]
texts = ["texts.jsonl"]
quality = false

[tool.speechlab.models.http-tts]
model = "openai-api/tts"
base_url = "{service}/ok"
""")
    suites = pytester.mkdir("suites")
    (suites / "test_tts.py").write_text((REPO / "suites" / "test_tts.py").read_text())
    result = pytester.runpytest_subprocess("suites", "--speechlab-no-db", "--speechlab-model", "http-tts",
                                           "-p", "no:cacheprovider")
    out = result.stdout.str()
    row = next(line for line in out.splitlines() if line.startswith("http-tts"))
    assert float(row.split()[4]) <= 0.25, out  # the WER of the judge's transcripts
    assert "tts: http-tts on texts.jsonl: intelligibility judged by faster-whisper/tiny.en" in out
    assert result.ret == 0, out


# -- Wyoming: real-time pacing, and a server that is not there ----------------------------------------


def test_wyoming_in_real_time_measures_the_pacing_and_the_time_after_the_audio(tmp_path):
    pytest.importorskip("speechlab_wyoming", reason="speechlab-wyoming is not installed")
    pytest.importorskip("wyoming_faster_whisper", reason="wyoming-faster-whisper is not installed")
    dataset = small_set(tmp_path)
    with wyoming_server(tmp_path) as uri:
        result = evaluate(tmp_path, {"paced": {"model": "wyoming/asr", "uri": uri, "language": "en",
                                               "pacing": "realtime"}}, dataset)["paced"]
    assert not result.errors and result.wer is not None
    pacing = result.latency["pacing_ratio"]
    assert 0.95 <= pacing["min"] and pacing["max"] <= 1.3, pacing  # really sent in real time
    for u in result.utterances:  # end to end = sending + the wait after the audio
        assert u.latency["sending_s"] + u.latency["after_audio_s"] == pytest.approx(u.processing_seconds, abs=0.05)
    assert result.latency["after_audio_s"]["n"] == 3
    assert result.model_info["decode"]["pacing"] == "realtime"


def test_wyoming_transcript_chunks_are_partials_timed_from_the_first(tmp_path):
    pytest.importorskip("speechlab_wyoming", reason="speechlab-wyoming is not installed")
    dataset = small_set(tmp_path)
    with wyoming_stand_in(tmp_path) as uri:
        result = evaluate(tmp_path, {"w": {"model": "wyoming/asr", "uri": uri, "language": "en"}}, dataset)["w"]
    assert not result.errors and result.wer is not None
    assert result.model_info["service"]["reported"]["asr"][0]["streaming"] is True
    for u in result.utterances:
        assert u.latency["partials"] >= 1
        assert u.latency["sending_s"] < u.latency["first_partial_s"] <= u.processing_seconds
    assert result.latency["first_partial_s"]["n"] == 3


def test_a_wyoming_server_that_is_not_there_is_a_load_error(tmp_path):
    pytest.importorskip("speechlab_wyoming", reason="speechlab-wyoming is not installed")
    from services import free_port

    from pytest_speechlab.engine.runner import ModelLoadError

    with pytest.raises(ModelLoadError, match="does not answer"):
        evaluate(tmp_path, {"w": {"model": "wyoming/asr", "uri": f"tcp://127.0.0.1:{free_port()}"}}, small_set(tmp_path, 1))
    with pytest.raises(ModelLoadError, match=re.escape('needs uri = "tcp://host:port"')):
        evaluate(tmp_path, {"w": {"model": "wyoming/asr", "uri": "http://127.0.0.1:1"}}, small_set(tmp_path, 1))
