"""The same model on the same data gets the same verdict: repeats scored like the first run,
verdicts that depend on the run said as such, sampled decoding named, seeds per call."""
from __future__ import annotations

import random
import types
import warnings

import pytest

from helpers import SMALL_SAMPLES_TOML, write_audio, write_manifest
from pytest_speechlab import Segment, Transcript, check_below, evaluate_models, hookimpl
from pytest_speechlab._assertions import SpeechlabAssertionError, UnstableVerdictWarning
from pytest_speechlab._config import load_config
from pytest_speechlab._types import SpeechlabError
from pytest_speechlab.engine.runner import call_seed
from pytest_speechlab.grading import grade_model
from pytest_speechlab.sinks.terminal import summary_lines

SPEECH = {"1.00": "the cat sat on the mat", "1.50": "a quick brown fox", "2.00": "hello world"}


class Moody:
    """Speech right every time; on non-speech clip n (n = 3, 4, 5... seconds long) it invents text
    on its k-th call when k % n < 2: a hallucination count that varies from repeat to repeat."""

    sample_rate = 16000

    def __init__(self, params):
        self.calls: dict[str, int] = {}
        self.seeds: list[int] = []

    def transcribe(self, audio):
        key = f"{len(audio) / 16000:.2f}"
        if key in SPEECH:
            return Transcript(SPEECH[key], (Segment(0.0, 1.0, SPEECH[key], temperature=0.0),))
        count = self.calls[key] = self.calls.get(key, -1) + 1
        text = "thank you for watching" if count % int(float(key)) < 2 else ""
        return Transcript(text, (Segment(0.0, 1.0, text, temperature=0.4),) if text else ())

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "moody 1"}


class Sampler:
    """Picks its transcript with random.Random(seed): repeatable exactly when it is seeded."""

    sample_rate = 16000

    def __init__(self, params):
        self.rng = random.Random()
        self.seeds: list[int] = []

    def seed(self, value: int) -> None:
        self.seeds.append(value)
        self.rng = random.Random(value)

    def transcribe(self, audio):
        text = self.rng.choice(["hello world", "hello word", "yellow world", "hello"])
        return Transcript(text, (Segment(0.0, 1.0, text, temperature=0.6),))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "sampler 1"}


LOADED: dict[str, object] = {}


def _load(cls):
    def load(params):
        LOADED[cls.__name__] = model = cls(params)
        return model
    return load


@hookimpl
def speechlab_register_models(register):
    register("test/moody", task="asr", load=_load(Moody), backend="test")
    register("test/sampler", task="asr", load=_load(Sampler), backend="test")


PLUGIN = types.SimpleNamespace(speechlab_register_models=speechlab_register_models)


@pytest.fixture
def nonspeech(tmp_path):
    """Speech clips the models know and four silent clips of 3-6 s."""
    lines = []
    for seconds, text in (("1.00", "The cat sat on the mat."), ("2.00", "Hello, world!")):
        write_audio(tmp_path / f"s{seconds}.wav", float(seconds))
        lines.append({"id": f"speech-{seconds}", "audio": f"s{seconds}.wav", "text": text})
    for seconds in (3, 4, 5, 6):
        write_audio(tmp_path / f"n{seconds}.wav", seconds, level=0.0)
        lines.append({"id": f"quiet-{seconds}", "audio": f"n{seconds}.wav", "kind": "nonspeech"})
    return write_manifest(tmp_path / "manifest.jsonl", lines)


def _pyproject(tmp_path, body: str):
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.speechlab]\n{body}\n")
    return path


def test_every_repeat_is_scored_and_the_spread_is_reported(tmp_path, nonspeech):
    (result,) = evaluate_models(["test/moody"], [str(nonspeech)], pyproject=None, plugins=[PLUGIN], repeats=6)
    # clip n is flagged on calls k with k % n < 2 (the warm-up call is the first of quiet-3's)
    per_repeat = result.across_repeats("nonspeech_hallucination_rate")["flagged"]
    assert len(per_repeat) == 6 and min(per_repeat) < max(per_repeat)
    assert result.runs[0].nonspeech_counts[0] == per_repeat[0]
    variability = result.variability
    assert variability["repeats"] == 6
    assert variability["varied"] == 4 and variability["repeated"] == 6  # every silent clip, neither speech clip
    assert {v["utterance_id"] for v in variability["varied_utterances"]} == {f"quiet-{n}" for n in (3, 4, 5, 6)}
    assert all(v["sampled"] for v in variability["varied_utterances"])
    assert all(1 <= n < 6 for n in variability["flagged"].values())
    spread = variability["figures"]["nonspeech_hallucination_rate"]
    assert spread["min"] <= spread["mean"] <= spread["max"]
    low, high = spread["ci"]
    assert low <= spread["mean"] <= high
    assert variability["figures"]["error_rate"]["min"] == variability["figures"]["error_rate"]["max"] == 0.0
    summary = result.summary()
    assert summary["repeats"] == 6 and summary["variability"]["varied"] == 4
    text = "\n".join(summary_lines([result.serialized()], {}))
    assert "transcripts varied on 4/6" in text and "flagged across repeats" in text and "varied quiet-3" in text


def test_a_verdict_that_depends_on_the_run_fails_or_warns_as_configured(tmp_path, nonspeech):
    (result,) = evaluate_models(["test/moody"], [str(nonspeech)], pyproject=None, plugins=[PLUGIN], repeats=6)
    counts = result.across_repeats("nonspeech_hallucination_rate")["flagged"]
    limit = (min(counts) + 0.5) / 4  # between the best and the worst repeat
    with pytest.raises(SpeechlabAssertionError) as failed:
        check_below(result, "nonspeech_hallucination_rate", limit)
    message = str(failed.value)
    assert f"verdict depends on the run: {min(counts)}-{max(counts)} of 4 flagged over 6 repeats, limit {limit:g}" in message
    assert "quiet-3" in message and 'unstable = "fail"' in message
    result.unstable = "warn"
    with pytest.warns(UnstableVerdictWarning, match="verdict depends on the run"):
        value = check_below(result, "nonspeech_hallucination_rate", limit)
    assert value == pytest.approx(sum(counts) / len(counts) / 4)
    # a limit above every repeat passes; below every repeat fails on the mean, not as unstable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_below(result, "nonspeech_hallucination_rate", 1.0)
    with pytest.raises(SpeechlabAssertionError, match="in every repeat"):
        check_below(result, "nonspeech_hallucination_rate", min(counts) / 4 - 0.01)


def test_the_grade_is_the_worst_repeat_and_says_it_depends_on_the_run(tmp_path, nonspeech):
    # one silent clip of 3 s (the warm-up decodes the speech clip): flagged on its calls 0, 1, 3, 4
    manifest = write_manifest(tmp_path / "one.jsonl", [
        {"id": "speech", "audio": "s1.00.wav", "text": "The cat sat on the mat."},
        {"id": "quiet", "audio": "n3.wav", "kind": "nonspeech"}])
    small = tmp_path / "pyproject.toml"  # one clip of each kind: judged here to test the grading of repeats
    small.write_text(SMALL_SAMPLES_TOML)
    (result,) = evaluate_models(["test/moody"], [str(manifest)], pyproject=small, plugins=[PLUGIN], repeats=6)
    assert result.across_repeats("nonspeech_hallucination_rate")["flagged"] == [1, 1, 0, 1, 1, 0]
    assert [grade_model("test/moody", [run]).grade for run in result.runs] == ["C", "C", "A+", "C", "C", "A+"]
    grade = grade_model("test/moody", [result])
    assert grade.grade == "C" and not grade.production_ready
    assert grade.reason.startswith("the grade depends on the run (A+ in 2 of 6, C in 4 of 6 repeats; the worst is given)")
    (steady,) = evaluate_models(["test/moody"], [str(manifest)], pyproject=small, plugins=[PLUGIN], repeats=1)
    assert "depends on the run" not in grade_model("test/moody", [steady]).reason


def test_without_repeats_a_figure_resting_on_sampling_says_so(tmp_path, nonspeech):
    (result,) = evaluate_models(["test/moody"], [str(nonspeech)], pyproject=None, plugins=[PLUGIN])
    assert result.repeat_count == 1 and result.variability is None
    sampling = result.sampling
    flagged = result.nonspeech_counts[0]
    assert flagged and sampling["flagged"] == flagged == sampling["flagged_of"]
    assert sampling["note"] == (f"{flagged} of the {flagged} flagged clips were decoded with temperature fallback "
                                "(sampling): this figure varies from run to run; measure the spread with repeats = 5")
    with pytest.raises(SpeechlabAssertionError) as failed:
        check_below(result, "nonspeech_hallucination_rate", 0.0)
    assert "measure the spread with repeats = 5" in str(failed.value)
    assert sampling["note"] in "\n".join(summary_lines([result.serialized()], {}))


def test_seeds_derive_from_seed_utterance_and_repeat_and_make_a_seeded_sampler_repeatable(tmp_path, nonspeech):
    def session(pyproject):
        (result,) = evaluate_models(["test/sampler"], [str(nonspeech)], pyproject=pyproject, plugins=[PLUGIN], repeats=3)
        return result, LOADED["Sampler"]

    first, model = session(None)
    again, model_again = session(None)
    texts = [[x.hypothesis for x in (u, *u.repeat_scores)] for u in first.processed]
    assert texts == [[x.hypothesis for x in (u, *u.repeat_scores)] for u in again.processed]
    assert model.seeds == model_again.seeds
    expected = [call_seed(0, u.utterance.id, k) for u in first.processed for k in range(3)]
    assert model.seeds[1:] == expected  # after the warm-up's seed
    assert len(set(expected)) == len(expected)
    assert first.environment["seed"] == 0 and "seed(0, utterance id, repeat)" in first.environment["seeding"]
    other, _ = session(_pyproject(tmp_path, "seed = 7"))
    assert [[x.hypothesis for x in (u, *u.repeat_scores)] for u in other.processed] != texts
    unseeded, model_unseeded = session(_pyproject(tmp_path, "seed = false"))
    assert model_unseeded.seeds == [] and unseeded.environment["seed"] is None
    assert unseeded.environment["seeding"] == "seeding off (seed = false)"
    (moody,) = evaluate_models(["test/moody"], [str(nonspeech)], pyproject=None, plugins=[PLUGIN])
    assert moody.environment["seeding"] == "not seeded: the model has no seed()"


@pytest.mark.parametrize("body, problem", [
    ("repeats = 0", "repeats must be 1 to 100"), ("repeats = -5", "repeats must be 1 to 100"),
    ('repeats = "3"', "repeats"), ("unstable = \"maybe\"", "choose fail or warn"),
    ("seed = -1", "seed must be 0 or more"), ("busy_tolerance = 0", "busy_tolerance is a share"),
    ("busy_tolerance = nan", "busy_tolerance is a share"),
])
def test_repeat_seed_and_tolerance_settings_are_checked(tmp_path, body, problem):
    with pytest.raises(SpeechlabError, match=problem):
        load_config(_pyproject(tmp_path, body))


def test_a_repeat_count_given_as_an_argument_is_checked(tmp_path, nonspeech):
    for bad in (0, -5):
        with pytest.raises(SpeechlabError, match="--speechlab-repeat must be 1 to 100"):
            evaluate_models(["test/moody"], [str(nonspeech)], pyproject=None, plugins=[PLUGIN], repeats=bad)


def test_the_reports_and_the_viewer_show_what_varied(tmp_path, nonspeech):
    from pytest_speechlab.sinks.report import scorecard_html, scorecard_markdown
    from pytest_speechlab.sinks.store import Store
    from pytest_speechlab.view import data

    db = tmp_path / "results.db"
    (result,) = evaluate_models(["test/moody"], [str(nonspeech)], pyproject=None, plugins=[PLUGIN], repeats=6, db=str(db))
    record = result.serialized()
    markdown = scorecard_markdown([record], {})
    assert "How far the verdicts hold:" in markdown and "transcripts varied on 4/6" in markdown
    html = scorecard_html([record], {})
    assert "How far the verdicts hold" in html and "varied quiet-3" in html and "&#x27;thank you for watching&#x27;" in html
    store = Store(f"sqlite:///{db}", read_only=True)
    stored = store.run(store.resolve("latest"))["aggregates"][0]["metrics"]
    assert stored["variability"]["varied"] == 4 and stored["repeats"] == 6
    notes = data.run(store, store.resolve("latest"))["notes"]
    assert any("transcripts varied on 4/6" in n for n in notes)
    assert data.notes([{"metrics": {"variability": "hostile"}, "environment": []}]) == []
