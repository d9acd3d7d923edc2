"""Whisper on three runtimes: the shared decode vocabulary, the comparison, and the suite on real weights."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pytest_speechlab import EvalResult, Transcript, UtteranceResult, Utterance
from pytest_speechlab._builtin import fixtures_dir
from pytest_speechlab.crossruntime import RuntimeComparison, runtime_groups

from helpers import FAKE_MODEL_CONFTEST, REPO


def result(model: str, texts: dict[str, str]) -> EvalResult:
    utterances = [UtteranceResult(Utterance(i, f"{i}.flac", "ref"), hypothesis=t, transcript=Transcript(t),
                                  hypothesis_normalized=t.lower().strip(".")) for i, t in texts.items()]
    return EvalResult(model, "set", "norm", utterances)


def test_comparison_lists_utterances_whose_normalized_transcripts_differ():
    a = result("fw[greedy]", {"u1": "Hello there.", "u2": "Good morning", "u3": "a b c"})
    b = result("ow[greedy]", {"u1": "hello there", "u2": "Good mourning", "u3": "a b c"})
    comparison = RuntimeComparison.of("sha256:x", [a, b])
    assert comparison.compared == 3
    assert comparison.differing == [("u2", {"fw[greedy]": "Good morning", "ow[greedy]": "Good mourning"})]
    assert comparison.disagreement_rate == pytest.approx(1 / 3)
    text = "\n".join(comparison.report())
    assert "identical on 2/3 utterances" in text and "differs: u2" in text and "'Good mourning'" in text


def test_runtime_groups_need_two_backends_of_the_same_weights():
    def loaded(name, backend, weights):
        return SimpleNamespace(name=name, spec=SimpleNamespace(backend=backend), info={"source_weights_sha256": weights})

    fw, vad = loaded("fw/tiny", "faster-whisper", "A"), loaded("tiny-vad", "faster-whisper", "A")
    ow, hf_base = loaded("ow/tiny", "openai-whisper", "A"), loaded("hf/base", "transformers", "B")
    sphinx = SimpleNamespace(name="pocketsphinx", spec=SimpleNamespace(backend="pocketsphinx"), info={})
    assert runtime_groups([fw, vad, ow, hf_base, sphinx]) == {"A": [fw, ow]}  # one per backend
    assert runtime_groups([fw, hf_base]) == {}


def test_the_three_backends_map_the_shared_decode_vocabulary():
    pytest.importorskip("speechlab_transformers_whisper", reason="the transformers plugin is not installed")
    from speechlab_transformers_whisper import DEFAULTS, generate_kwargs

    default = generate_kwargs(DEFAULTS, multilingual=False)
    assert default["num_beams"] == 5 and default["temperature"] == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert (default["logprob_threshold"], default["no_speech_threshold"], default["compression_ratio_threshold"]) \
        == (-1.0, 0.6, 2.4)
    greedy = generate_kwargs({"beam_size": 1, "temperature": 0.0, "without_timestamps": True}, multilingual=True)
    assert greedy == {"num_beams": 1, "return_timestamps": False}
    sampled = generate_kwargs({"temperature": 0.4, "language": "fr", "condition_on_previous_text": False}, True)
    assert sampled["do_sample"] and sampled["language"] == "fr" and sampled["condition_on_prev_tokens"] is False


def test_suite_runs_the_three_runtimes_on_real_weights(pytester: pytest.Pytester):
    """The acceptance command, on three fixture utterances: every runtime loads the packaged tiny.en
    weights (converted offline), the greedy transcripts agree, and the summary shows them side by side."""
    pytest.importorskip("whisper", reason="openai-whisper is not installed (README: the torch backends)")
    pytest.importorskip("speechlab_transformers_whisper", reason="the transformers plugin is not installed")
    speech = fixtures_dir() / "speech"
    keep = ("s03_turn_left", "s09_bridge", "s20_letter")
    lines = [json.loads(line) for line in (speech / "manifest.jsonl").read_text().splitlines()]
    with open(pytester.path / "three.jsonl", "w") as fh:
        for line in lines:
            if line["id"] in keep:
                fh.write(json.dumps({**line, "audio": str(speech / line["audio"])}) + "\n")
    suites = pytester.mkdir("suites")
    (suites / "test_cross_runtime.py").write_text((REPO / "suites" / "test_cross_runtime.py").read_text())
    models = ["faster-whisper/tiny.en", "openai-whisper/tiny.en", "transformers/tiny.en"]
    result = pytester.runpytest_subprocess(
        "suites", "--speechlab-no-db", "--speechlab-dataset", "three.jsonl", "-p", "no:cacheprovider",
        *(arg for m in models for arg in ("--speechlab-model", m)))
    out = result.stdout.str()
    assert result.ret == 0, out
    result.assert_outcomes(passed=1)
    assert "transcripts (normalized) identical on 3/3 utterances" in out
    for model in models:
        assert any(line.startswith(f"  {model}[greedy]") for line in out.splitlines()), out
    # the derived variants are recorded with their decoding, so the comparison says what it compared
    assert "decoding beam_size=1, temperature=0.0, without_timestamps=True, dtype=float32" in out


def test_the_suite_is_deselected_with_one_model(speechlab_project):
    result = speechlab_project.runpytest("suites/test_cross_runtime.py", "--speechlab-no-db")
    result.assert_outcomes()
    assert "1 deselected" in result.stdout.str()


RUNTIMES = '''

def load_runtime(params):
    model = load(params)
    model.info = lambda: {"threads": 1, "backend_version": params["label"], "languages": ["en"],
                          "source_weights_sha256": "sha256:same-weights"}
    return model

@hookimpl(specname="speechlab_register_models")
def register_runtimes(register):
    register("rt-a/model", task="asr", load=load_runtime, backend="rt-a", params={"label": "a"})
    register("rt-b/model", task="asr", load=load_runtime, backend="rt-b", params={"label": "b"})
    register("rt-c/model", task="asr", load=load_runtime, backend="rt-c",
             params={"label": "c", "errors": {"2.00": "hello word"}})
'''


@pytest.mark.parametrize("second, outcome", [("rt-b/model", "passed"), ("rt-c/model", "failed")])
def test_the_suite_fails_when_runtimes_of_the_same_weights_disagree(speechlab_project, second, outcome):
    speechlab_project.makeconftest(FAKE_MODEL_CONFTEST + RUNTIMES)
    result = speechlab_project.runpytest("suites/test_cross_runtime.py", "--speechlab-no-db",
                                         "--speechlab-model", "rt-a/model", "--speechlab-model", second)
    result.assert_outcomes(**{outcome: 1})
    out = result.stdout.str()
    assert "rt-a/model[greedy]" in out and f"{second}[greedy]" in out
    if outcome == "failed":
        assert "runtimes disagree on 1/4 utterances (0.250 > 0.1)" in out
        assert "differs: c" in out and "'hello word'" in out


def test_models_of_different_weights_are_not_compared(speechlab_project):
    result = speechlab_project.runpytest("suites/test_cross_runtime.py", "--speechlab-no-db", "-rs",
                                         "--speechlab-model", "fake/perfect", "--speechlab-model", "fake/sloppy")
    result.assert_outcomes(skipped=1)
    assert "no two selected models share weights" in result.stdout.str()
