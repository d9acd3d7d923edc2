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


def mcnemar_exact(worse: int, better: int) -> float:
    """One-sided exact p-value that utterances flipping correct->wrong outnumber wrong->correct
    by chance alone (binomial with p = 1/2 on the discordant pairs)."""
    n = worse + better
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(worse, n + 1)) / 2**n


@dataclass
class PairedComparison:
    """Candidate (b) against baseline (a) on the utterances both have."""

    n: int
    rate_a: float
    rate_b: float
    delta: float  # b - a; positive means the candidate makes more errors
    ci: tuple[float, float]
    p_value: float  # one-sided: is b worse than a?
    flipped_worse: list[str] = field(default_factory=list)  # correct in a, wrong in b
    flipped_better: list[str] = field(default_factory=list)
    mcnemar_p: float = 1.0
    only_a: int = 0
    only_b: int = 0

    @property
    def note(self) -> str:
        if not (self.only_a or self.only_b):
            return f"compared on the same {self.n} utterances"
        return (f"compared on the {self.n} utterances both runs have "
                f"({self.only_a} only in the baseline, {self.only_b} only in the candidate left out)")


def paired_compare(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]], *, confidence: float = 0.95,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> PairedComparison | None:
    """``a`` and ``b`` map utterance id -> (errors, reference length). Compared on the intersection."""
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
    # Permutation: under "no difference" each utterance's pair is exchangeable, so flip signs.
    signs = rng.choice((-1.0, 1.0), size=(resamples, len(common)))
    permuted = (signs * diff).sum(axis=1) / total
    p_value = float((1 + np.sum(permuted >= delta - 1e-12)) / (resamples + 1))
    idx = rng.integers(0, len(common), size=(resamples, len(common)))
    boot = diff[idx].sum(axis=1) / np.maximum(lengths[idx].sum(axis=1), 1e-12)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    worse = [k for k, x, y in zip(common, ea, eb) if x == 0 and y > 0]
    better = [k for k, x, y in zip(common, ea, eb) if x > 0 and y == 0]
    return PairedComparison(
        n=len(common), rate_a=float(ea.sum() / total), rate_b=float(eb.sum() / total), delta=delta,
        ci=(float(low), float(high)), p_value=p_value, flipped_worse=worse, flipped_better=better,
        mcnemar_p=mcnemar_exact(len(worse), len(better)),
        only_a=len(set(a) - set(b)), only_b=len(set(b) - set(a)),
    )


@dataclass(frozen=True)
class GatePolicy:
    """``[tool.speechlab.regression]``: when a difference counts as a regression."""

    alpha: float = 0.05
    min_effect: float = 0.005  # absolute WER/CER: half a point
    rtf_tolerance: float = 0.5  # RTF may grow by 50% before it counts (shared machines are noisy)


def is_regression(cmp: PairedComparison, policy: GatePolicy) -> bool:
    return cmp.delta >= policy.min_effect and cmp.p_value < policy.alpha
