"""The engine's side of services, without a server: concurrent requests, the event stream the
runner times (partials, the end of the audio, faults), and the latency table in every renderer."""
from __future__ import annotations

import threading
import time
import types

import pytest

from helpers import make_fake_dataset
from pytest_speechlab import AudioSent, Fault, Partial, Transcript, evaluate_models, hookimpl

TEXTS = {"1.00": "the cat sat on the mat", "1.50": "a quick brown fox", "2.00": "hello world"}


class FakeService:
    """Streams each word as a partial after a short wait; remembers how many requests overlapped."""

    sample_rate = 16000
    lock = threading.Lock()
    in_flight = peak = 0

    def __init__(self, params):
        self.fail_on = params.get("fail_on")

    def transcribe(self, audio):
        *_, final = self.transcribe_events(audio)
        return final

    def transcribe_events(self, audio, language=None):
        key = f"{len(audio) / 16000:.2f}"
        with FakeService.lock:
            FakeService.in_flight += 1
            FakeService.peak = max(FakeService.peak, FakeService.in_flight)
        try:
            yield Fault("http_429", "retried")
            time.sleep(0.05)
            yield AudioSent()
            if key == self.fail_on:
                raise ConnectionError("the service went away")
            for word in TEXTS.get(key, "").split():
                time.sleep(0.01)
                yield Partial(word + " ")
            yield Transcript(TEXTS.get(key, ""))
        finally:
            with FakeService.lock:
                FakeService.in_flight -= 1

    def info(self):
        return {"service": {"url": "fake://"}, "device": "service"}


@hookimpl
def speechlab_register_models(register):
    register("fake/service", task="asr", load=FakeService, service=True, params={"concurrency": 3})
    register("fake/failing", task="asr", load=FakeService, service=True, params={"fail_on": "1.50"})


PLUGIN = types.SimpleNamespace(speechlab_register_models=speechlab_register_models)


def test_concurrent_requests_are_timed_one_by_one_and_their_events_measured(tmp_path):
    FakeService.peak = 0
    (result,) = evaluate_models(["fake/service"], [str(make_fake_dataset(tmp_path / "data"))], pyproject=None,
                                plugins=[PLUGIN])
    assert result.wer == 0.0 and result.workers == 3 and result.environment["executor"] == "threads"
    assert FakeService.peak == 3  # three requests really were in flight at once
    speech = [u for u in result.utterances if u.transcript.text]
    for u in speech:
        assert u.latency["faults"] == ["http_429"] and u.latency["partials"] == len(u.transcript.text.split())
        assert u.latency["sending_s"] < u.latency["first_partial_s"] <= u.processing_seconds
        assert u.latency["sending_s"] + u.latency["after_audio_s"] == pytest.approx(u.processing_seconds, abs=0.02)
    lat = result.latency
    assert lat["concurrency"] == 3 and lat["requests"] == 4 and lat["failed"] == 0
    assert lat["faults"] == {"http_429": 4} and lat["requests_with_faults"] == 4
    assert lat["first_partial_s"]["n"] == len(speech) and lat["throughput_requests_per_s"] > 0


def test_a_request_that_fails_keeps_its_faults_and_names_its_cause(tmp_path):
    from pytest_speechlab import check_latency
    from pytest_speechlab._assertions import SpeechlabAssertionError

    (result,) = evaluate_models(["fake/failing"], [str(make_fake_dataset(tmp_path / "data"))], pyproject=None,
                                plugins=[PLUGIN])
    (failed,) = [u for u in result.utterances if u.error is not None]
    assert "ConnectionError: the service went away" in failed.error.message
    assert failed.latency["faults"] == ["http_429"] and "sending_s" in failed.latency
    assert result.latency["errors_by_cause"] == {"connection": 1} and result.latency["faults"] == {"http_429": 4}
    from pytest_speechlab.sinks.report import fault_lines, latency_html

    lines = fault_lines(result.serialized())
    assert len(lines) == 4 and any("http_429 x1; failed: " in line and "went away" in line for line in lines)
    assert "Faults and failures" in latency_html([result.serialized()])
    with pytest.raises(SpeechlabAssertionError, match=r"1/4 .* requests failed > service_error_rate 0"):
        check_latency(result, {"service_error_rate": 0.0, "latency_p95_s": 5.0})
    judged = check_latency(result, {"service_error_rate": 0.5, "service_fault_rate": 1.0, "latency_p95_s": 5.0})
    assert set(judged) == {"latency_p95_s", "service_error_rate", "service_fault_rate"}


def test_the_latency_table_escapes_what_the_service_and_the_user_named(tmp_path):
    from pytest_speechlab.sinks.report import latency_html, latency_markdown

    (result,) = evaluate_models(["fake/service"], [str(make_fake_dataset(tmp_path / "data"))], pyproject=None,
                                plugins=[PLUGIN])
    record = result.serialized()
    record["summary"]["model"] = "<img src=x onerror=alert(1)>|\x1b[31m"
    html, markdown = latency_html([record]), latency_markdown([record])
    assert "<img" not in html and "&lt;img" in html and "\x1b" not in html
    row = next(line for line in markdown.splitlines() if "img" in line)
    assert "<img" not in row and "\\|" in row and "\x1b" not in row  # the | cannot end the cell


def test_speechlab_show_prints_the_recorded_latency(tmp_path):
    from click.testing import CliRunner

    from pytest_speechlab.cli import main as speechlab

    db = str(tmp_path / "results.db")
    evaluate_models(["fake/service"], [str(make_fake_dataset(tmp_path / "data"))], pyproject=None, plugins=[PLUGIN], db=db)
    result = CliRunner().invoke(speechlab, ["--db", db, "show", "latest"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("latency fake/service"))
    assert "concurrency 3, 4 requests" in line and '"http_429": 4' in line and "failed 0" in line
