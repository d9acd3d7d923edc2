"""False alarms of the slice test, by simulation: datasets where no slice differs (every utterance's
errors drawn from the same distribution, three fields of 3, 2 and 6 slices), the heterogeneity test
of each field adjusted over the fields (Holm); the share of datasets with any field flagged at alpha
must stay within alpha. Also the power: the share flagged when one slice's error rate is higher.

    python benchmarks/slice_false_alarms.py [--runs 1000] [--utterances 120]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_slices import dataset  # noqa: E402

from pytest_speechlab.metrics.slices import slice_report  # noqa: E402
from pytest_speechlab.metrics.stats import wilson  # noqa: E402


def rate(runs: int, n: int, worse: float, alpha: float, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    flagged = 0
    for _ in range(runs):
        report = slice_report(dataset(rng, n, worse), ["accent", "gender", "region"], minimum=10)
        flagged += any(f.differs(alpha) for f in report)
    return flagged, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--utterances", type=int, default=120)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    for label, worse in (("no slice differs", 0.0), ("accent b +0.10", 0.10), ("accent b +0.05", 0.05)):
        k, n = rate(args.runs, args.utterances, worse, args.alpha, 20261207)
        low, high = wilson(k, n)
        print(f"{label}: {k}/{n} datasets flagged = {k / n:.3f} [95% CI {low:.3f}-{high:.3f}] "
              f"(alpha {args.alpha}, {args.utterances} utterances, 3 fields, Holm)")


if __name__ == "__main__":
    main()
