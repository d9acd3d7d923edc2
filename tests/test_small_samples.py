"""Figures that say when they cannot judge, checked by simulation: percentile intervals that hold
(or none), a minimum detectable effect at which the test really has 80% power, and comparisons of
too few utterances said to be untestable."""
from __future__ import annotations

import numpy as np
import pytest

from pytest_speechlab.compare import Side, compare
from pytest_speechlab._types import Output, Transcript, Utterance
from pytest_speechlab.metrics.stats import (
    macro_ratio_ci,
    min_samples_for_quantile,
    paired_compare,
    percentile_ci,
    quantile_ranks,
    ratio_ci,
)
from pytest_speechlab.metrics.wer import evaluate

# clips of 5-25 words, each with its own error probability drawn from Beta(a, b): a corpus error
# rate whose truth is a / (a + b) (lengths and error probabilities independent)
POPULATIONS = {"typical": (1.2, 6.0), "accurate, most clips perfect": (0.5, 9.0)}


def _language(rng, n, a, b):
    lengths = rng.integers(5, 26, n)
    return rng.binomial(lengths, rng.beta(a, b, n)), lengths


@pytest.mark.parametrize("population", POPULATIONS)
def test_a_language_interval_at_30_utterances_covers_at_95_percent(population):
    a, b = POPULATIONS[population]
    rng, truth, trials = np.random.default_rng(30), a / (a + b), 600
    covered = 0
    for _ in range(trials):
        low, high = ratio_ci(*_language(rng, 30, a, b), resamples=1000)
        covered += low <= truth <= high
    margin = 3 * (0.95 * 0.05 / trials) ** 0.5
    assert abs(covered / trials - 0.95) <= margin, covered / trials


@pytest.mark.parametrize("population", POPULATIONS)
def test_the_macro_interval_over_11_languages_of_30_covers_at_95_percent(population):
    a, b = POPULATIONS[population]
    rng, truth, trials = np.random.default_rng(11), a / (a + b), 250
    covered = 0
    for _ in range(trials):
        low, high = macro_ratio_ci([_language(rng, 30, a, b) for _ in range(11)], resamples=1000)
        covered += low <= truth <= high
    margin = 3 * (0.95 * 0.05 / trials) ** 0.5
    assert abs(covered / trials - 0.95) <= margin, covered / trials


def test_at_3_utterances_per_language_no_interval_is_printed_and_no_macro_averaged():
    rng = np.random.default_rng(3)
    outputs = []
    for lang in ("de", "es", "fr", "it", "nl", "pt", "ru", "sv", "vi", "ja", "zh"):
        for i in range(3):
            words = ["wort"] * int(rng.integers(5, 26))
            hyp = [w if rng.random() > 0.2 else "x" for w in words]
            outputs.append(Output(Utterance(f"{lang}{i}", "x.wav", " ".join(words), language=lang),
                                  Transcript(" ".join(hyp)), 0.1, 2.0))
    result = evaluate("m", "multi", outputs)
    assert all(lang.ci is None and lang.too_few == "too few to judge (n = 3 < 10)" for lang in result.languages.values())
    assert result.headline == ("macro", None, None)
    assert result.summary()["too_few"]["wer"].startswith("too few to judge in every language")
    # one clip: never a zero-width "95%" interval, whatever the configured minimum
    assert ratio_ci([3], [10]) is None and ratio_ci([3, 1], [10, 8]) is None


def test_the_smallest_samples_for_a_distribution_free_percentile_interval():
    assert [min_samples_for_quantile(q) for q in (0.5, 0.95, 0.99)] == [6, 59, 299]
    assert quantile_ranks(58, 0.95) is None and quantile_ranks(59, 0.95) is not None
    assert percentile_ci(list(range(34)), 95) is None  # 34 requests: no p95 interval, not a false one


@pytest.mark.parametrize("n, q", [(60, 95), (300, 95), (60, 99), (300, 99)])
def test_percentile_intervals_cover_at_95_percent_or_are_not_given(n, q):
    rng = np.random.default_rng(n * 100 + q)
    true = float(np.exp(__import__("statistics").NormalDist().inv_cdf(q / 100)))  # lognormal(0, 1) quantile
    trials, covered, given = 1500, 0, 0
    for _ in range(trials):
        ci = percentile_ci(rng.lognormal(0.0, 1.0, n), q)
        if ci is not None:
            given += 1
            covered += ci[0] <= true <= ci[1]
    if n < min_samples_for_quantile(q / 100):
        assert given == 0
        return
    assert given == trials
    margin = 3 * (0.95 * 0.05 / trials) ** 0.5  # three Monte Carlo standard errors
    assert 0.95 - margin <= covered / trials <= 0.95 + margin + 0.01  # exact ranks may cover a little more


def _population(rng, n, effect=0.0):
    """Paired error counts: clips of 5-25 words, a baseline error rate varying by clip, run-to-run
    noise (one run has one error more than the other on 40% of the clips, either way), and the
    candidate's extra errors, Binomial(words, effect)."""
    lengths = rng.integers(5, 26, n)
    base = rng.binomial(lengths - 1, rng.beta(1.2, 6.0, n))
    noise = rng.choice([-1, 0, 0, 0, 1], n)
    a = base + (noise == 1)
    b = base + (noise == -1) + rng.binomial(lengths, effect)
    return ({f"u{i}": (int(a[i]), int(lengths[i])) for i in range(n)},
            {f"u{i}": (int(b[i]), int(lengths[i])) for i in range(n)})


@pytest.mark.parametrize("n", [20, 50, 300])
def test_the_test_has_80_percent_power_at_the_printed_minimum_detectable_effect(n):
    rng = np.random.default_rng(n)
    powers = []
    for _ in range(8 if n < 300 else 5):  # pilot runs, each printing its own figure (which varies with it)
        mde = paired_compare(*_population(rng, n), alpha=0.05).mde
        assert mde is not None and 0 < mde < 0.5
        hits = [paired_compare(*_population(rng, n, mde), alpha=0.05, resamples=500, detectable=False).p_value <= 0.05
                for _ in range(100)]
        powers.append(sum(hits) / len(hits))
    assert 0.75 <= sum(powers) / len(powers) <= 0.85, powers


def test_the_minimum_detectable_effect_is_stable_when_one_utterance_changes():
    a = {f"u{i}": (0, 10) for i in range(34)}
    one_more = {**a, "u0": (1, 10)}
    same, moved = paired_compare(a, dict(a), family=3).mde, paired_compare(a, one_more, family=3).mde
    assert same and moved and 0.67 < moved / same < 1.5  # the normal approximation jumped 26-fold here


def _languages(per_language: int, collapse: bool) -> tuple[Side, Side]:
    base, cand = Side("a", "m", "d"), Side("b", "m", "d")
    for lang in ("de", "es", "fr", "it", "nl", "pt", "ru", "sv", "vi", "ja", "zh"):
        for i in range(per_language):
            uid, words = f"{lang}{i}", 8 + i % 5
            for side, errors in ((base, 1), (cand, words if collapse else 1)):
                side.words[uid], side.hypotheses[uid], side.languages[uid] = (errors, words), "x", lang
    return base, cand


@pytest.mark.parametrize("clips", [1, 2, 3, 4])
def test_a_collapse_on_too_few_clips_per_language_is_not_testable_never_within_noise(clips):
    comparison = compare(*_languages(clips, collapse=True))
    verdicts = {name: comparison.verdict(cmp) for name, cmp in comparison.figures}
    assert set(verdicts.values()) == {f"not testable with n = {clips}"}
    report = comparison.report()
    assert "within noise" not in report.split("hallucinations")[0]
    assert f"the smallest p the test can give, 2^-{clips}" in report


def test_the_same_collapse_on_30_clips_per_language_is_flagged():
    comparison = compare(*_languages(30, collapse=True))
    assert all(comparison.verdict(cmp) == "REGRESSION" for _, cmp in comparison.figures)
    assert len(comparison.regressions) == 11


def test_a_comparison_below_the_minimum_sample_is_too_few_to_judge_not_within_noise():
    comparison = compare(*_languages(6, collapse=True))  # testable alone (2^-6 < 0.05), below the minimum
    assert {comparison.verdict(c) for _, c in comparison.figures} == {"too few to judge (n = 6 < 10)"}
    base, cand = Side("a", "m", "d"), Side("b", "m", "d")
    for i in range(7):
        base.words[f"u{i}"], base.hypotheses[f"u{i}"] = (0, 10), "x"
        cand.words[f"u{i}"], cand.hypotheses[f"u{i}"] = (10, 10), "y"
    comparison = compare(base, cand)
    assert comparison.verdict(comparison.wer) == "too few to judge (n = 7 < 10)" and not comparison.regressions
    assert "too few to judge (n = 7 < 10)" in comparison.report()
    from pytest_speechlab.metrics.stats import GatePolicy

    lowered = compare(base, cand, GatePolicy(min_samples=5))
    assert lowered.verdict(lowered.wer) == "REGRESSION" and lowered.regressions


def test_min_samples_come_from_pyproject_and_are_checked(tmp_path):
    from pytest_speechlab import SpeechlabError
    from pytest_speechlab._config import load_config

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.speechlab.min_samples]\nwer = 30\nrtf = 5\n")
    config = load_config(pyproject)
    assert config.min_samples["wer"] == 30 and config.min_samples["rtf"] == 5
    assert config.min_samples["nonspeech_hallucination_rate"] == 10
    assert config.regression.min_samples == 30  # the gate follows wer's unless set there
    for text, says in [("wer = 0", "must be 1 or more"), ("wre = 3", "unknown key 'wre'"), ('wer = "ten"', "integer")]:
        pyproject.write_text(f"[tool.speechlab.min_samples]\n{text}\n")
        with pytest.raises(SpeechlabError, match=says):
            load_config(pyproject)


def test_a_threshold_on_too_few_utterances_is_skipped_with_the_reason(speechlab_project):
    (speechlab_project.path / "pyproject.toml").write_text("""
[tool.pytest.ini_options]
addopts = "--import-mode=importlib"
speechlab_models = ["fake/perfect"]
speechlab_datasets = ["data/manifest.jsonl"]
""")
    result = speechlab_project.runpytest("suites/test_asr_accuracy.py", "-rs", "--speechlab-no-db",
                                         "--speechlab-markdown", "r.md")
    result.assert_outcomes(skipped=2)
    out = result.stdout.str()
    assert "corpus WER 0.0000 of fake/perfect on data/manifest.jsonl not judged: too few to judge (n = 3 < 10)" in out
    assert "not judged, fake/perfect on data/manifest.jsonl: wer too few to judge (n = 3 < 10)" in out
    assert "not judged, fake/perfect" in (speechlab_project.path / "r.md").read_text()


def test_a_long_recording_counts_one_sample_per_30_second_window():
    def recording(seconds):
        words = "the cat sat on the mat " * 40
        return Output(Utterance("long", "x.wav", words), Transcript(words), 1.0, seconds)

    ten = evaluate("m", "d", [recording(602.0)])
    assert ten.too_few("wer") is None  # 21 windows: judged
    three = evaluate("m", "d", [recording(181.3)])
    assert three.too_few("wer") == "too few to judge (n = 7 < 10)"
    assert evaluate("m", "d", [recording(59.0)] * 3).too_few("wer") == "too few to judge (n = 3 < 10)"
