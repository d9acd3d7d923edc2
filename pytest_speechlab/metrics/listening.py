"""Figures of a listening test from its ratings: ACR mean opinion scores (ITU-T P.800: 1 Bad ...
5 Excellent) with a t interval, A/B preference with an exact two-sided sign test and a Wilson
interval, and how far the raters agree. Ratings are plain dicts as the results database holds them
(``test``, ``rater``, ``item``, ``shown``, ``score``)."""
from __future__ import annotations

import math
from itertools import combinations

from .stats import wilson

MIN_RATINGS = 20  # ratings a system's MOS needs to be judged (human_mos)
ACR_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}


def _t_quantile(df: int) -> float:
    """The 97.5th percentile of Student's t with ``df`` degrees of freedom (scipy when installed)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # a close approximation (Cornish-Fisher), within 0.5% for df >= 2
        z = 1.959964
        return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mos(scores: list[float]) -> dict:
    """Mean opinion score with its 95% t interval (None below two ratings)."""
    n = len(scores)
    if not n:
        return {"n": 0, "mos": None, "ci": None}
    mean = sum(scores) / n
    if n < 2:
        return {"n": n, "mos": mean, "ci": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1))
    half = _t_quantile(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mos": mean, "ci": [max(1.0, mean - half), min(5.0, mean + half)]}


def sign_test(k: int, n: int) -> float:
    """Exact two-sided binomial test of k successes in n against one half."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if not sx or not sy:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def acr_figures(ratings: list[dict], systems: list[str]) -> dict:
    """Per system its MOS (every rating of its clips); per pair of raters their agreement on the clips
    both rated (Pearson r over at least three, and the share rated within one point)."""
    by_system: dict[str, list[float]] = {s: [] for s in systems}
    by_rater: dict[str, dict[tuple, float]] = {}
    for r in ratings:
        for label, value in (r["score"] or {}).items():
            if label in by_system and isinstance(value, (int, float)):
                by_system[label].append(float(value))
                by_rater.setdefault(r["rater"], {})[(r["item"], label)] = float(value)
    pairs = []
    for a, b in combinations(sorted(by_rater), 2):
        common = sorted(set(by_rater[a]) & set(by_rater[b]))
        if common:
            xs, ys = [by_rater[a][k] for k in common], [by_rater[b][k] for k in common]
            pairs.append({"raters": [a, b], "clips": len(common), "pearson": _pearson(xs, ys),
                          "within_one": sum(abs(x - y) <= 1 for x, y in zip(xs, ys)) / len(common)})
    return {"kind": "acr", "systems": {s: mos(v) for s, v in by_system.items()}, "raters": sorted(by_rater),
            "ratings": len(ratings), "agreement": pairs}


def ab_figures(ratings: list[dict], systems: list[str]) -> dict:
    """How often each of two systems was preferred, the exact sign test of "neither is preferred",
    the Wilson interval of the second system's share, and per pair of raters how often they agreed."""
    first, second = systems
    votes = [r["score"].get("choice") for r in ratings if isinstance(r.get("score"), dict)]
    a, b = votes.count(first), votes.count(second)
    by_rater: dict[str, dict[str, str]] = {}
    for r in ratings:
        if isinstance(r.get("score"), dict):
            by_rater.setdefault(r["rater"], {})[r["item"]] = r["score"].get("choice")
    pairs = []
    for x, y in combinations(sorted(by_rater), 2):
        common = sorted(set(by_rater[x]) & set(by_rater[y]))
        if common:
            pairs.append({"raters": [x, y], "items": len(common),
                          "agreed": sum(by_rater[x][i] == by_rater[y][i] for i in common) / len(common)})
    share = wilson(b, a + b)
    return {"kind": "ab", "systems": {first: a, second: b}, "n": a + b, "p": sign_test(b, a + b),
            "share_second": b / (a + b) if a + b else None, "share_ci": list(share) if share else None,
            "raters": sorted(by_rater), "ratings": len(ratings), "agreement": pairs}


def figures(test: dict, ratings: list[dict]) -> dict:
    systems = [s["label"] for s in test["spec"]["systems"]]
    return (ab_figures if test["kind"] == "ab" else acr_figures)(ratings, systems)
