"""Statistics for corpus error rates: bootstrap intervals and paired tests between two runs.

Corpus WER is a ratio of sums (errors / reference words), so intervals resample utterances and
recompute the ratio; they never average utterance rates. Two runs are compared on the same
utterances (paired): a sign-flip permutation test on per-utterance error differences for the
p-value, a paired bootstrap for the interval of the difference, and an exact binomial (McNemar)
test for utterances that flip between correct and wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20261125


def number(value) -> float | None:
    """A figure read back from outside (a stored aggregate, an import): a real number, or None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def interval(value) -> tuple[float, float] | None:
    """An interval read back from outside: two real numbers, or None."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and None not in (number(value[0]), number(value[1])):
        return float(value[0]), float(value[1])
    return None


def _np():
    import numpy as np

    return np


def bootstrap_ci(errors: Sequence[int], lengths: Sequence[int], *, confidence: float = 0.95,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of sum(errors)/sum(lengths), resampling utterances."""
    np = _np()
    errors, lengths = np.asarray(errors, float), np.asarray(lengths, float)
    if len(errors) == 0 or lengths.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(resamples, len(errors)))
    denom = lengths[idx].sum(axis=1)
    rates = np.divide(errors[idx].sum(axis=1), denom, out=np.zeros(resamples), where=denom > 0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(rates, [tail, 100 - tail])
    return float(low), float(high)


def percentile_ci(values: Sequence[float], q: float, *, confidence: float = 0.95,
                  resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the ``q``-th percentile of ``values`` (resampling values).
    A high percentile of few values is close to their maximum, and so is its interval: the caller
    says how many values there were."""
    np = _np()
    values = np.asarray(values, float)
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    estimates = np.percentile(values[idx], q, axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def macro_bootstrap_ci(groups: Sequence[tuple[Sequence[int], Sequence[int]]], *, confidence: float = 0.95,
                       resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean over groups (languages) of each group's
    sum(errors)/sum(lengths): utterances are resampled within their group (stratified), so every
    resample keeps every language, as the macro average does."""
    np = _np()
    groups = [(np.asarray(e, float), np.asarray(n, float)) for e, n in groups if len(e) and sum(n)]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for errors, lengths in groups:
        idx = rng.integers(0, len(errors), size=(resamples, len(errors)))
        denom = lengths[idx].sum(axis=1)
        total += np.divide(errors[idx].sum(axis=1), denom, out=np.zeros(resamples), where=denom > 0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(total / len(groups), [tail, 100 - tail])
    return float(low), float(high)


def mcnemar_exact(worse: int, better: int) -> float:
    """One-sided exact p-value that utterances flipping correct->wrong outnumber wrong->correct
    by chance alone (binomial with p = 1/2 on the discordant pairs)."""
    n = worse + better
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(worse, n + 1)) / 2**n


@dataclass
class PairedComparison:
    """Candidate (b) against baseline (a) on the utterances both have.

    One inference method gives the p-value, the interval and the verdict: a sign-flip permutation
    test of the paired per-utterance differences. ``p_value`` is its one-sided p (is b worse?);
    ``ci`` inverts the same test with the same sign flips (the set of true differences it does not
    reject at ``1 - confidence`` split over both tails), so ``ci[0] > 0`` exactly when the
    one-sided p is below ``(1 - confidence) / 2``. ``p_adjusted`` is filled by :func:`adjust` for a
    family of comparisons; the verdict uses it.
    """

    n: int
    rate_a: float
    rate_b: float
    delta: float  # b - a; positive means the candidate makes more errors
    ci: tuple[float, float]
    p_value: float  # one-sided: is b worse than a?
    confidence: float = 0.95
    mde: float | None = None  # the difference detectable with 80% power at the first Holm level
    mde_basis: str = ""
    p_adjusted: float | None = None
    family: int = 1
    correction: str = "none"
    flipped_worse: list[str] = field(default_factory=list)  # correct in a, wrong in b
    flipped_better: list[str] = field(default_factory=list)
    mcnemar_p: float = 1.0
    only_a: int = 0
    only_b: int = 0

    @property
    def p_for_verdict(self) -> float:
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    @property
    def note(self) -> str:
        if not (self.only_a or self.only_b):
            return f"compared on the same {self.n} utterances"
        return (f"compared on the {self.n} utterances both runs have "
                f"({self.only_a} only in the baseline, {self.only_b} only in the candidate left out)")


def _z(p: float) -> float:
    """The standard normal quantile (statistics.NormalDist, no SciPy needed)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def paired_compare(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]], *, confidence: float = 0.95,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, alpha: float = 0.05,
                   family: int = 1) -> PairedComparison | None:
    """``a`` and ``b`` map utterance id -> (errors, reference length). Compared on the intersection.

    ``alpha`` and ``family`` only size the minimum detectable effect (80% power, one-sided, at
    ``alpha / family``: the first step of Holm's procedure, a conservative figure)."""
    np = _np()
    common = sorted(set(a) & set(b))
    lengths = np.array([a[k][1] for k in common], float)
    if not common or lengths.sum() == 0:
        return None
    ea = np.array([a[k][0] for k in common], float)
    eb = np.array([b[k][0] for k in common], float)
    total = lengths.sum()
    diff = eb - ea
    delta = float(diff.sum() / total)
    rng = np.random.default_rng(seed)
    # Under "no difference" each utterance's pair is exchangeable: flip the signs of differences.
    negative = rng.random((resamples, len(common))) < 0.5
    # For a hypothesised true difference d0 the centred differences are diff - d0 * lengths; a
    # resample reaches the observed statistic exactly when d0 >= its cut point c = (sum of the
    # flipped differences) / (sum of the flipped lengths). So p(d0) counts cut points <= d0, the
    # one-sided p is p(0), and the interval is read off the sorted cut points: one set of
    # resamples for the p-value, the interval and the verdict.
    flipped_len = negative @ lengths
    flipped_diff = negative @ diff
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = flipped_diff / flipped_len
    # a resample that flips nothing equals the observed statistic for every d0: it counts in both tails
    below = np.sort(np.where(flipped_len > 0, ratio, -np.inf))
    above = np.sort(np.where(flipped_len > 0, ratio, np.inf))
    p_value = float((1 + np.sum(below <= 1e-12)) / (resamples + 1))
    r = int(np.ceil((1 - confidence) / 2 * (resamples + 1))) - 1  # cut points a bound may pass
    span = float(np.abs(diff).sum() / total)  # no true difference can exceed this in size
    low = float(below[r - 1]) if r >= 1 and np.isfinite(below[r - 1]) else -span
    high = float(above[resamples - r]) if r >= 1 and np.isfinite(above[resamples - r]) else span
    # Minimum detectable effect: (z_{1-level} + z_{0.8}) standard errors of the paired difference.
    se = float(np.sqrt((diff ** 2).sum()) / total)
    basis = "paired differences"
    if se == 0.0:  # identical error counts: no spread to measure; a binomial model of word errors
        rate = max(float(ea.sum() / total), 1.0 / total)
        se = math.sqrt(2 * rate * (1 - rate) / total)
        basis = "a binomial error model (the runs do not differ)"
    level = alpha / max(family, 1)
    mde = (_z(1 - level) + _z(0.8)) * se
    worse = [k for k, x, y in zip(common, ea, eb) if x == 0 and y > 0]
    better = [k for k, x, y in zip(common, ea, eb) if x > 0 and y == 0]
    return PairedComparison(
        n=len(common), rate_a=float(ea.sum() / total), rate_b=float(eb.sum() / total), delta=delta,
        ci=(low, high), p_value=p_value, confidence=confidence, mde=mde, mde_basis=basis,
        family=family, flipped_worse=worse, flipped_better=better,
        mcnemar_p=mcnemar_exact(len(worse), len(better)),
        only_a=len(set(a) - set(b)), only_b=len(set(b) - set(a)),
    )


CORRECTIONS = ("holm", "bh", "none")


@dataclass(frozen=True)
class GatePolicy:
    """``[tool.speechlab.regression]``: when a difference counts as a regression.

    ``correction`` controls false alarms over the gate's whole family of comparisons (every model x
    dataset x metric it judges): ``holm`` (default) keeps the chance of any false alarm in the run
    at most ``alpha``; ``bh`` (Benjamini-Hochberg) keeps the expected share of false alarms among
    the alarms at most ``alpha`` (more power, more false alarms in large families); ``none`` judges
    each comparison alone.
    """

    alpha: float = 0.05
    min_effect: float = 0.005  # absolute WER/CER: half a point
    rtf_tolerance: float = 0.5  # RTF may grow by 50% before it counts (shared machines are noisy)
    correction: str = "holm"
    hallucination: bool = True  # also judge the count of utterances with a hallucination finding


def adjust(p_values: list[float], method: str) -> list[float]:
    """Family-adjusted p-values (Holm step-down, or Benjamini-Hochberg step-up), in input order."""
    m = len(p_values)
    if method == "none" or m <= 1:
        return list(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p_values[i]))
            adjusted[i] = running
    elif method == "bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, p_values[i] * m / (rank + 1))
            adjusted[i] = min(1.0, running)
    else:
        raise ValueError(f"unknown correction {method!r} (known: {', '.join(CORRECTIONS)})")
    return adjusted


def apply_correction(comparisons: list, policy: GatePolicy) -> None:
    """Fill ``p_adjusted``/``family``/``correction`` on every comparison of one gate."""
    comparisons = [c for c in comparisons if c is not None]
    for cmp, p in zip(comparisons, adjust([c.p_value for c in comparisons], policy.correction)):
        cmp.p_adjusted, cmp.family, cmp.correction = p, len(comparisons), policy.correction


def is_regression(cmp: PairedComparison, policy: GatePolicy) -> bool:
    return cmp.delta >= policy.min_effect and cmp.p_for_verdict < policy.alpha


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion k/n (sensible at 0/n and n/n, unlike the normal one)."""
    if n <= 0:
        return None
    z = _z(1 - (1 - confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def format_rate(k: int, n: int) -> str:
    """'3/13 [0.08-0.50]': a count with its Wilson 95% interval."""
    ci = wilson(k, n)
    return f"{k}/{n}" + (f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci else "")
