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
from functools import lru_cache
from typing import Sequence

from .specs import SPECS

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20261125
# The fewest samples each judged figure needs ([tool.speechlab.min_samples]): below it the figure is
# shown "too few to judge (n = 3 < 10)" and no threshold, grade or gate uses it. Error rates count
# scored utterances (per language where there are several: a language below it is listed, not
# averaged into the macro), hallucination rates the clips of their kind, RTF the timed calls.
# At 10 utterances the error-rate interval covered 0.85-0.94 of the time in simulation (few
# utterances with skewed errors), 0.94-0.945 at 30: raise it where decisions need that.
MIN_SAMPLES = {name: spec.min_samples for name, spec in SPECS.items() if spec.min_samples is not None}


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


CHUNK_CELLS = 1 << 20  # a (resamples x utterances) draw is made this many cells at a time


def chunks(rows: int, width: int):
    """Row counts that split ``rows`` resamples of ``width`` utterances into draws of at most
    CHUNK_CELLS cells: memory stays bounded however large the set (8 MB per int64 draw), and
    the numbers drawn are the same as in one draw (numpy's generators fill row after row)."""
    step = max(1, CHUNK_CELLS // max(width, 1))
    for start in range(0, rows, step):
        yield min(step, rows - start)


def resampled_sums(rng, columns, resamples: int):
    """For each of ``resamples`` resamples of the utterances (drawn with replacement), the sum of
    each of ``columns`` (arrays over the utterances) in it: one array of ``resamples`` per column."""
    np = _np()
    n = len(columns[0])
    parts: list[list] = [[] for _ in columns]
    for rows in chunks(resamples, n):
        idx = rng.integers(0, n, size=(rows, n))
        for part, column in zip(parts, columns):
            part.append(column[idx].sum(axis=1))
    return [np.concatenate(part) for part in parts]


def bootstrap_ci(errors: Sequence[int], lengths: Sequence[int], *, confidence: float = 0.95,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of sum(errors)/sum(lengths), resampling utterances."""
    np = _np()
    errors, lengths = np.asarray(errors, float), np.asarray(lengths, float)
    if len(errors) == 0 or lengths.sum() == 0:
        return None
    total, denom = resampled_sums(np.random.default_rng(seed), [errors, lengths], resamples)
    rates = np.divide(total, denom, out=np.zeros(resamples), where=denom > 0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(rates, [tail, 100 - tail])
    return float(low), float(high)


def _binomial_pmf(n: int, p: float) -> list[float]:
    """P(K = k) for K ~ Binomial(n, p), k = 0..n (in log space: n may be large)."""
    if p <= 0 or p >= 1:
        return [1.0 if k == (0 if p <= 0 else n) else 0.0 for k in range(n + 1)]
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p)
            + (n - k) * math.log1p(-p) for k in range(n + 1)]
    return [math.exp(v) for v in logs]


@lru_cache(maxsize=1024)
def quantile_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """Ranks (l, u), 1-based, of the order statistics X(l) <= X(u) that cover the ``q``-th
    quantile (0 < q < 1) of a continuous distribution with probability at least ``confidence``,
    for any distribution (distribution-free: the number of values below the quantile is
    Binomial(n, q)): the narrowest such pair, grown from the quantile's own rank toward the
    likelier side. None when even (1, n) does not reach ``confidence``: too few values."""
    pmf = _binomial_pmf(n, q)
    # X(l) <= x_q < X(u) exactly when l <= K <= u - 1, K the count of values below x_q
    if 1 - pmf[0] - pmf[n] < confidence:
        return None
    lo = hi = min(max(int(math.floor(n * q)), 1), n - 1)  # K in [lo, hi]: ranks (lo, hi + 1)
    covered = pmf[lo]
    while covered < confidence:
        left = pmf[lo - 1] if lo > 1 else -1.0
        right = pmf[hi + 1] if hi < n - 1 else -1.0
        if left >= right:
            lo -= 1
            covered += left
        else:
            hi += 1
            covered += right
    return lo, hi + 1


def min_samples_for_quantile(q: float, confidence: float = 0.95) -> int:
    """The fewest values that give the ``q``-th quantile a distribution-free interval at
    ``confidence``: 6 for the median, 59 for p95, 299 for p99 at 95%."""
    n = 2
    while quantile_ranks(n, q, confidence) is None:
        n += 1
    return n


def percentile_ci(values: Sequence[float], q: float, *, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval of the ``q``-th percentile (0-100) of ``values``: two order
    statistics that cover it with probability at least ``confidence`` whatever the distribution
    (:func:`quantile_ranks`). None when there are too few values for one (p95 needs 59, p99 299 at
    95%): a bootstrap never reaches past the sample's maximum, so it cannot cover a high
    percentile of few values, and no interval is better than a false one."""
    ranks = quantile_ranks(len(values), q / 100, confidence)
    if ranks is None:
        return None
    ordered = sorted(float(v) for v in values)
    return ordered[ranks[0] - 1], ordered[ranks[1] - 1]


# The fewest utterances an error-rate interval is given for: below it a resample has too few
# distinct values for its spread to mean anything (one utterance: a zero-width "95%" interval).
MIN_INTERVAL = 3


def _ratio_parts(errors, lengths):
    """(ratio, variance) of sum(errors)/sum(lengths) by linearisation: the residuals e - R n."""
    np = _np()
    errors, lengths = np.asarray(errors, float), np.asarray(lengths, float)
    n, total = len(errors), lengths.sum()
    ratio = errors.sum() / total
    residual = errors - ratio * lengths
    return ratio, float(residual @ residual) * n / (n - 1) / total**2


def _resampled_parts(errors, lengths, rng, resamples: int):
    """The ratio and its linearised variance in each of ``resamples`` resamples of the utterances."""
    np = _np()
    errors, lengths = np.asarray(errors, float), np.asarray(lengths, float)
    n = len(errors)
    e, w, ee, ew, ww = resampled_sums(rng, [errors, lengths, errors * errors, errors * lengths, lengths * lengths],
                                      resamples)
    ok = w > 0
    ratios = np.divide(e, w, out=np.zeros(resamples), where=ok)
    spread = ee - 2 * ratios * ew + ratios * ratios * ww  # sum of (e - R n)^2 in the resample
    variances = np.divide(spread * n / (n - 1), w * w, out=np.zeros(resamples), where=ok)
    return ratios, variances


def _studentized(value: float, variance: float, ratios, variances, confidence: float) -> tuple[float, float] | None:
    np = _np()
    ok = variances > 0
    if variance <= 0 or ok.sum() < 10:
        return None
    t = (ratios[ok] - value) / np.sqrt(variances[ok])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(t, [tail, 100 - tail])
    se = math.sqrt(variance)
    return max(0.0, float(value - high * se)), float(value - low * se)


def ratio_ci(errors: Sequence[int], lengths: Sequence[int], *, confidence: float = 0.95,
             resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """Interval of a corpus error rate sum(errors)/sum(lengths): a studentized (bootstrap-t)
    interval, utterances resampled, each resample's ratio standardised by its own linearised
    standard error. Its coverage was measured by simulation (tests/test_small_samples.py): 0.945
    at 30 utterances, where the percentile bootstrap gave 0.92 (it is too narrow for a skewed
    ratio of few utterances). None below ``MIN_INTERVAL`` utterances. Without spread (every
    utterance at the same rate, as with no errors at all) the Wilson interval of the errors over
    the reference units is given: a bootstrap would print a zero-width interval."""
    np = _np()
    errors, lengths = np.asarray(errors, float), np.asarray(lengths, float)
    if len(errors) < MIN_INTERVAL or lengths.sum() <= 0:
        return None
    value, variance = _ratio_parts(errors, lengths)
    ratios, variances = _resampled_parts(errors, lengths, np.random.default_rng(seed), resamples)
    found = _studentized(value, variance, ratios, variances, confidence)
    return found or wilson(int(min(errors.sum(), lengths.sum())), int(lengths.sum()), confidence)


def macro_ratio_ci(groups: Sequence[tuple[Sequence[int], Sequence[int]]], *, confidence: float = 0.95,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float] | None:
    """Interval of the mean over groups (languages) of each group's sum(errors)/sum(lengths): the
    same studentized bootstrap, utterances resampled within their group (stratified, so every
    resample keeps every language), the macro average standardised by its own standard error.
    None when a group has fewer than ``MIN_INTERVAL`` utterances: a language of one clip is not
    "known exactly", and is left out of a macro average by the caller (EvalResult.headline)."""
    np = _np()
    groups = [(np.asarray(e, float), np.asarray(n, float)) for e, n in groups]
    if not groups or any(len(e) < MIN_INTERVAL or n.sum() <= 0 for e, n in groups):
        return None
    rng = np.random.default_rng(seed)
    value = variance = 0.0
    ratios, variances = np.zeros(resamples), np.zeros(resamples)
    for errors, lengths in groups:
        r, v = _ratio_parts(errors, lengths)
        value, variance = value + r, variance + v
        rs, vs = _resampled_parts(errors, lengths, rng, resamples)
        ratios, variances = ratios + rs, variances + vs
    k = len(groups)
    found = _studentized(value / k, variance / k**2, ratios / k, variances / k**2, confidence)
    if found:
        return found
    errors, lengths = sum(int(e.sum()) for e, _ in groups), sum(int(n.sum()) for _, n in groups)
    return wilson(min(errors, lengths), lengths, confidence)


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
    testable: bool = True  # False: even every utterance worse could not reach the level (n too small)
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
                   family: int = 1, detectable: bool = True) -> PairedComparison | None:
    """``a`` and ``b`` map utterance id -> (errors, reference length). Compared on the intersection.

    ``alpha`` and ``family`` only size the minimum detectable effect (80% power, one-sided, at
    ``alpha / family``: the first step of Holm's procedure, a conservative figure), and say whether
    the comparison is testable at all (with n utterances the smallest p a sign-flip test can give is
    2^-n); ``detectable=False`` skips the (simulated) minimum detectable effect."""
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
    flipped_len, flipped_diff = [], []
    for rows in chunks(resamples, len(common)):
        negative = rng.random((rows, len(common))) < 0.5
        flipped_len.append(negative @ lengths)
        flipped_diff.append(negative @ diff)
    # For a hypothesised true difference d0 the centred differences are diff - d0 * lengths; a
    # resample reaches the observed statistic exactly when d0 >= its cut point c = (sum of the
    # flipped differences) / (sum of the flipped lengths). So p(d0) counts cut points <= d0, the
    # one-sided p is p(0), and the interval is read off the sorted cut points: one set of
    # resamples for the p-value, the interval and the verdict.
    flipped_len, flipped_diff = np.concatenate(flipped_len), np.concatenate(flipped_diff)
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
    level = alpha / max(family, 1)
    testable = 2.0 ** -len(common) <= level
    mde = minimum_detectable_effect(diff, lengths, level, seed=seed) if testable and detectable else None
    basis = ("simulated power of this test at the observed spread (80%, at the first Holm level)" if testable else
             f"not testable with n = {len(common)}: the smallest p the test can give, 2^-{len(common)} = "
             f"{2.0 ** -len(common):.3f}, is above {level:.3g}")
    worse = [k for k, x, y in zip(common, ea, eb) if x == 0 and y > 0]
    better = [k for k, x, y in zip(common, ea, eb) if x > 0 and y == 0]
    return PairedComparison(
        n=len(common), rate_a=float(ea.sum() / total), rate_b=float(eb.sum() / total), delta=delta,
        ci=(low, high), p_value=p_value, confidence=confidence, mde=mde, mde_basis=basis, testable=testable,
        family=family, flipped_worse=worse, flipped_better=better,
        mcnemar_p=mcnemar_exact(len(worse), len(better)),
        only_a=len(set(a) - set(b)), only_b=len(set(b) - set(a)),
    )


def _binomial_quantile(u, trials, p: float):
    """The Binomial(trials, p) quantile at each uniform ``u`` (arrays): with the same ``u`` it
    never falls as ``p`` rises, so simulations at different effects share their randomness."""
    np = _np()
    if p <= 0:
        return np.zeros_like(trials)
    if p >= 1:
        return trials.copy()
    ratio = p / (1 - p)
    pmf = np.exp(trials * math.log1p(-p))
    cdf, k = pmf.copy(), np.zeros_like(trials)
    while True:
        need = (u > cdf) & (k < trials)
        if not need.any():
            return k
        pmf = np.where(need, pmf * (trials - k) / (k + 1) * ratio, pmf)
        k = k + need
        cdf = cdf + np.where(need, pmf, 0.0)


def minimum_detectable_effect(diff, lengths, level: float, power: float = 0.8, *, sims: int | None = None,
                              flips: int | None = None, seed: int = DEFAULT_SEED) -> float | None:
    """The smallest rise of the error rate this paired sign-flip test detects with ``power`` at
    ``level``, by simulating the test itself. A simulated candidate has, per utterance (resampled
    from the observed ones, with its length), the observed paired difference with a random sign
    (the run-to-run spread as measured; an observed rise only widens it), plus Binomial(words,
    effect) extra errors (the effect). The spread of n utterances is itself uncertain, and an
    effect planned on it has less than its power on average over what n utterances show: the
    figure is raised by 1/n, which brings the power measured at the printed figure (averaged over
    samples) to 0.8 at n = 20, 50 and 300 (tests/test_small_samples.py). The same random numbers
    serve every effect tried, so power rises with the effect and a bisection finds it. With no observed spread (identical runs) the extra
    errors alone are the signal: the figure does not jump when one utterance's count changes. None
    when no effect up to every word wrong reaches ``power``."""
    np = _np()
    diff, lengths = np.asarray(diff, float), np.asarray(lengths, float)
    n, total = len(diff), float(lengths.sum())
    if n == 0 or total == 0:
        return None
    # 400 simulated runs of 400 sign flips each up to 300 utterances; fewer beyond, where the test's
    # power curve is steep and the cost (sims x flips x n) would grow with the set
    sims = sims or max(100, min(400, int(400 * math.sqrt(300 / n))))
    flips = flips or sims
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n, size=(sims, n))
    # the observed differences with random signs: the run-to-run spread as the test's own null sees
    # it (kept whole numbers: ties between flips are part of the test's power)
    noise = diff[pick] * np.where(rng.random((sims, n)) < 0.5, -1.0, 1.0)
    words, uniforms = lengths[pick], rng.random((sims, n))
    signs = np.where(rng.random((flips, n)) < 0.5, -1.0, 1.0)

    def reached(effect: float) -> bool:
        data = noise + _binomial_quantile(uniforms, words, effect)  # sims x n
        observed = data.sum(axis=1)
        p = (1 + (data @ signs.T >= observed[:, None] - 1e-9).sum(axis=1)) / (flips + 1)
        return float((p <= level).mean()) >= power

    high = min(1.0, 4.0 / total)
    while not reached(high):
        if high >= 1.0:
            return None
        high = min(1.0, high * 2)
    low = 0.0 if high <= 4.0 / total else high / 2
    for _ in range(14):
        mid = (low + high) / 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return min(1.0, high * (1 + 1 / n))


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
    # utterances in common a comparison needs to be judged (below: "too few to judge"); by default
    # [tool.speechlab.min_samples] wer
    min_samples: int = MIN_SAMPLES["wer"]


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
    return cmp.n >= policy.min_samples and cmp.delta >= policy.min_effect and cmp.p_for_verdict < policy.alpha


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
