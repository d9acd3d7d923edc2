"""Statistics: intervals, paired tests, and the gate's calibration by simulation."""
from __future__ import annotations

import numpy as np
import pytest

from pytest_speechlab.metrics.stats import GatePolicy, bootstrap_ci, mcnemar_exact, paired_compare


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


def _side(name: str, errors, lengths):
    from pytest_speechlab.compare import Side

    ids = [f"u{i}" for i in range(len(lengths))]
    return Side(name, "m", "d", words=dict(zip(ids, zip(errors.tolist(), lengths.tolist()))))


def simulate_gate(trials: int, family: int, shift: float = 0.0, shifted: int = 0, n_utts: int = 300,
                  seed: int = 0, correction: str = "holm") -> tuple[float, float]:
    """A whole gate over ``family`` model x dataset comparisons (WER only), run ``trials`` times,
    through the gate's own code (compare + judge + regressions). The first ``shifted`` comparisons
    get a candidate whose per-word error probability is the baseline's plus ``shift``; the others
    are the same model re-scored with fresh noise. Returns (share of gates with a false alarm,
    share of truly shifted comparisons flagged)."""
    from pytest_speechlab.compare import compare, judge

    rng = np.random.default_rng(seed)
    policy = GatePolicy(correction=correction, hallucination=False)
    false_alarm_gates, detected = 0, 0
    for _ in range(trials):
        comparisons = []
        for k in range(family):
            lengths = rng.integers(6, 25, size=n_utts)
            p = rng.beta(1.2, 10, size=n_utts)  # utterances differ in difficulty; mean WER ~0.11
            ea = rng.binomial(lengths, p)
            eb = rng.binomial(lengths, np.clip(p + (shift if k < shifted else 0.0), 0, 1))
            comparisons.append(compare(_side("a", ea, lengths), _side("b", eb, lengths), policy, family=family,
                                       detectable=False))  # the verdicts are what is simulated
        judge(comparisons, policy)
        alarms = [bool(c.regressions) for c in comparisons]
        false_alarm_gates += any(alarms[shifted:])
        detected += sum(alarms[:shifted])
    return false_alarm_gates / trials, detected / (trials * shifted) if shifted else 0.0


# alpha 0.05; with 300 trials the 99% binomial upper limit for a true 0.05 is ~0.084.
@pytest.mark.parametrize("family", [1, 4, 10])
def test_whole_gate_false_alarm_rate_is_at_most_alpha(family):
    rate, _ = simulate_gate(trials=300, family=family, seed=family)
    assert rate <= 0.084, (family, rate)


def test_without_correction_false_alarms_grow_with_the_family():
    """The reason for the correction: ten uncorrected comparisons false-alarm far above alpha."""
    rate, _ = simulate_gate(trials=200, family=10, seed=3, correction="none")
    assert rate > 0.2, rate


def test_gate_power_for_a_two_point_regression_in_a_family_of_ten():
    """One model x dataset regressed by 2 WER points on 300 utterances, nine unchanged."""
    false_alarms, power = simulate_gate(trials=150, family=10, shift=0.02, shifted=1, seed=7)
    assert power >= 0.6, power
    assert false_alarms <= 0.1, false_alarms


def test_interval_p_value_and_verdict_agree():
    """One inference method: the interval's lower bound is above zero exactly when the one-sided
    p-value is below (1 - confidence) / 2, on every simulated comparison."""
    rng = np.random.default_rng(11)
    for trial in range(200):
        lengths = rng.integers(6, 25, size=120)
        p = rng.beta(1.2, 10, size=120)
        a = dict(zip(map(str, range(120)), zip(rng.binomial(lengths, p), lengths)))
        b = dict(zip(map(str, range(120)), zip(rng.binomial(lengths, np.clip(p + rng.uniform(0, 0.03), 0, 1)), lengths)))
        cmp = paired_compare(a, b, confidence=0.9, resamples=400, seed=trial, detectable=trial % 20 == 0)
        assert (cmp.ci[0] > 0) == (cmp.p_value < 0.05), (cmp.ci, cmp.p_value)
        assert cmp.ci[0] <= cmp.delta <= cmp.ci[1]
        assert cmp.mde is not None and cmp.mde > 0 if trial % 20 == 0 else cmp.mde is None


def test_holm_and_bh_adjustments():
    from pytest_speechlab.metrics.stats import adjust

    assert adjust([0.01, 0.04, 0.03, 0.5], "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert adjust([0.01, 0.04, 0.03, 0.5], "bh") == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert adjust([0.2], "holm") == [0.2]


def test_wilson_interval():
    from pytest_speechlab.metrics.stats import format_rate, wilson

    low, high = wilson(0, 13)
    assert low == 0.0 and 0.2 < high < 0.25
    low, high = wilson(4, 13)
    assert low < 4 / 13 < high
    assert wilson(0, 0) is None
    assert format_rate(4, 13) == "4/13 [0.13-0.58]"
