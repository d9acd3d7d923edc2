"""The engine without pytest: evaluate_models() on a fake model, recorded and cached like a pytest run."""
from __future__ import annotations

import types

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
