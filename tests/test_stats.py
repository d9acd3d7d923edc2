"""Statistics: intervals, paired tests, and the gate's calibration by simulation."""
from __future__ import annotations

import numpy as np
import pytest

from pytest_speechlab._stats import GatePolicy, bootstrap_ci, is_regression, mcnemar_exact, paired_compare


def test_bootstrap_ci_brackets_the_ratio_of_sums_and_narrows_with_data():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 30, size=400)
    errors = rng.binomial(lengths, 0.1)
    low, high = bootstrap_ci(errors, lengths)
    rate = errors.sum() / lengths.sum()
    assert low < rate < high and high - low < 0.03
    small = bootstrap_ci(errors[:40], lengths[:40])
    assert small[1] - small[0] > high - low
    assert bootstrap_ci([], []) is None


def test_mcnemar_exact():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_exact(3, 3) > 0.5


def test_paired_compare_uses_the_intersection_and_says_so():
    a = {"u1": (1, 10), "u2": (0, 10), "u3": (2, 10)}
    b = {"u1": (1, 10), "u2": (3, 10), "u4": (0, 10)}
    cmp = paired_compare(a, b)
    assert cmp.n == 2 and cmp.only_a == 1 and cmp.only_b == 1
    assert cmp.delta == pytest.approx(3 / 20)
    assert cmp.flipped_worse == ["u2"] and cmp.flipped_better == []
    assert "1 only in the baseline, 1 only in the candidate" in cmp.note


def simulate(trials: int, shift: float, n_utts: int = 300, seed: int = 0) -> float:
    """Share of trials flagged as a regression when the candidate's per-word error probability is
    the baseline's plus ``shift`` (0: the same model re-scored with fresh noise)."""
    rng = np.random.default_rng(seed)
    policy = GatePolicy()
    flagged = 0
    for trial in range(trials):
        lengths = rng.integers(6, 25, size=n_utts)
        p = rng.beta(1.2, 10, size=n_utts)  # utterances differ in difficulty; mean WER ~0.11
        ea = rng.binomial(lengths, p)
        eb = rng.binomial(lengths, np.clip(p + shift, 0, 1))
        ids = [f"u{i}" for i in range(n_utts)]
        cmp = paired_compare(dict(zip(ids, zip(ea, lengths))), dict(zip(ids, zip(eb, lengths))),
                             resamples=500, seed=trial)
        flagged += is_regression(cmp, policy)
    return flagged / trials


def test_gate_false_positive_rate_is_at_most_alpha_on_noise():
    rate = simulate(trials=300, shift=0.0)
    # alpha 0.05, one-sided; 300 trials: the 99% binomial upper limit for a true 0.05 is ~0.084
    assert rate <= 0.084, rate


def test_gate_has_power_for_a_two_point_wer_regression_on_300_utterances():
    power = simulate(trials=200, shift=0.02, seed=1)
    assert power >= 0.8, power
