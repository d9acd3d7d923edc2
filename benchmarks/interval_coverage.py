"""How often the error-rate intervals cover the truth, by simulation: the figures the README quotes
under "Figures that cannot judge". Sets of n utterances of 5-25 words, each utterance with its own
error probability drawn from Beta(a, b), so that the corpus error rate's truth is a / (a + b); for
each n, the share of simulated sets whose 95% interval contains it, for the studentized bootstrap
the tool uses (one language, and the macro average over 11 languages) and for the percentile
bootstrap used before. tests/test_small_samples.py asserts the n = 30 figures within their Monte
Carlo margin.

    python benchmarks/interval_coverage.py [--trials 600]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POPULATIONS = {"typical (Beta 1.2, 6)": (1.2, 6.0), "accurate, most clips perfect (Beta 0.5, 9)": (0.5, 9.0)}


def main() -> int:
    import numpy as np

    from pytest_speechlab.metrics.stats import bootstrap_ci, macro_ratio_ci, ratio_ci

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=600, help="simulated sets per figure (the macro: 250)")
    args = parser.parse_args()

    def language(rng, n, a, b):
        lengths = rng.integers(5, 26, n)
        return rng.binomial(lengths, rng.beta(a, b, n)), lengths

    def covers(ci, truth):
        return ci is not None and ci[0] <= truth <= ci[1]

    print("population | n per language | studentized, one language | percentile, one language | "
          "studentized, macro over 11")
    for name, (a, b) in POPULATIONS.items():
        truth = a / (a + b)
        for n in (10, 30):
            rng = np.random.default_rng(30)
            sets = [language(rng, n, a, b) for _ in range(args.trials)]
            student = sum(covers(ratio_ci(*s, resamples=1000), truth) for s in sets) / len(sets)
            percentile = sum(covers(bootstrap_ci(*s, resamples=1000), truth) for s in sets) / len(sets)
            rng = np.random.default_rng(11)
            macros = max(args.trials * 5 // 12, 50)
            macro = sum(covers(macro_ratio_ci([language(rng, n, a, b) for _ in range(11)], resamples=1000), truth)
                        for _ in range(macros)) / macros
            print(f"{name} | {n} | {student:.3f} | {percentile:.3f} | {macro:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
