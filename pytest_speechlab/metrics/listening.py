"""Figures of a listening test from its ratings: ACR mean opinion scores (ITU-T P.800: 1 Bad ...
5 Excellent) with a t interval, A/B preference with an exact two-sided sign test and a Wilson
interval, MUSHRA scores (ITU-R BS.1534: 0-100, a hidden reference and a low-pass anchor, raters who
rate the hidden reference below 90 on more than 15% of items screened out), how far the raters agree,
and how listeners' scores go with an automatic predictor's (DNSMOS) on the same clips. Ratings are
plain dicts as the results database holds them (``test``, ``rater``, ``item``, ``shown``, ``score``)."""
from __future__ import annotations

import math
from itertools import combinations

from .stats import wilson

MIN_RATINGS = 20  # ratings a system's MOS needs to be judged (human_mos)
ACR_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
REFERENCE, ANCHOR = "REF", "ANCHOR"  # a MUSHRA test's hidden reference and anchor, among its systems
SCREEN_BELOW, SCREEN_SHARE = 90, 0.15  # BS.1534-3: hidden reference below 90 on more than 15% of items


def _t_quantile(df: int) -> float:
    """The 97.5th percentile of Student's t with ``df`` degrees of freedom (scipy when installed)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # a close approximation (Cornish-Fisher), within 0.5% for df >= 2
        z = 1.959964
        return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mos(scores: list[float], low: float = 1.0, high: float = 5.0) -> dict:
    """Mean opinion score with its 95% t interval, within the scale [low, high] (None below two ratings)."""
    n = len(scores)
    if not n:
        return {"n": 0, "mos": None, "ci": None}
    mean = sum(scores) / n
    if n < 2:
        return {"n": n, "mos": mean, "ci": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1))
    half = _t_quantile(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mos": mean, "ci": [max(low, mean - half), min(high, mean + half)]}


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


def correlation(xs: list[float], ys: list[float]) -> dict:
    """Pearson r of paired values with its 95% interval (Fisher's z; None below four pairs)."""
    r, n = _pearson(xs, ys), len(xs)
    ci = None
    if r is not None and n >= 4:
        z, half = math.atanh(max(-0.999999, min(0.999999, r))), 1.959964 / math.sqrt(n - 3)
        ci = [math.tanh(z - half), math.tanh(z + half)]
    return {"n": n, "pearson": r, "ci": ci}


def _scores(ratings: list[dict], systems: list[str]) -> tuple[dict[str, list[float]], dict[str, dict[tuple, float]]]:
    """Every numeric score per system, and per rater their score of each (item, system)."""
    by_system: dict[str, list[float]] = {s: [] for s in systems}
    by_rater: dict[str, dict[tuple, float]] = {}
    for r in ratings:
        score = r.get("score")
        for label, value in (score.items() if isinstance(score, dict) else ()):
            if label in by_system and isinstance(value, (int, float)) and not isinstance(value, bool):
                by_system[label].append(float(value))
                by_rater.setdefault(r["rater"], {})[(r["item"], label)] = float(value)
    return by_system, by_rater


def _agreement(by_rater: dict[str, dict[tuple, float]], within: float) -> list[dict]:
    """Per pair of raters, on the clips both rated: Pearson r (over at least three) and the share
    within ``within`` points of each other."""
    pairs = []
    for a, b in combinations(sorted(by_rater), 2):
        common = sorted(set(by_rater[a]) & set(by_rater[b]))
        if common:
            xs, ys = [by_rater[a][k] for k in common], [by_rater[b][k] for k in common]
            pairs.append({"raters": [a, b], "clips": len(common), "pearson": _pearson(xs, ys),
                          "within": within, "close": sum(abs(x - y) <= within for x, y in zip(xs, ys)) / len(common)})
    return pairs


def acr_figures(ratings: list[dict], systems: list[str]) -> dict:
    """Per system its MOS (every rating of its clips); per pair of raters their agreement on the clips
    both rated (Pearson r over at least three, and the share rated within one point)."""
    by_system, by_rater = _scores(ratings, systems)
    return {"kind": "acr", "systems": {s: mos(v) for s, v in by_system.items()}, "raters": sorted(by_rater),
            "ratings": len(ratings), "agreement": _agreement(by_rater, 1)}


def mushra_figures(ratings: list[dict], systems: list[str]) -> dict:
    """Per rater how often they rated the hidden reference below 90, and whether that screens them
    out (more than 15% of their items, BS.1534-3); per system (the hidden reference and the anchor
    among them) the mean score 0-100 with its t interval over the raters kept; their agreement."""
    _, by_rater = _scores(ratings, systems)
    screening, kept = [], []
    for rater in sorted(by_rater):
        refs = [v for (_, label), v in by_rater[rater].items() if label == REFERENCE]
        below = sum(v < SCREEN_BELOW for v in refs)
        out = bool(refs) and below / len(refs) > SCREEN_SHARE
        screening.append({"rater": rater, "items": len(refs), "reference_below_90": below, "screened_out": out})
        if not out:
            kept.append(rater)
    by_system, _ = _scores([r for r in ratings if r["rater"] in kept], systems)
    return {"kind": "mushra", "systems": {s: mos(v, 0.0, 100.0) for s, v in by_system.items()},
            "raters": sorted(by_rater), "kept": kept, "screening": screening, "ratings": len(ratings),
            "agreement": _agreement({r: by_rater[r] for r in kept}, 10)}


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


def beside_predictor(test: dict, ratings: list[dict], kept: list[str] | None = None) -> dict | None:
    """Each rated clip's mean listener score beside its DNSMOS OVRL (recorded with the test when it
    was made): per system both means over the same clips, and their correlation over every clip
    (None when the test has no DNSMOS or is an A/B test)."""
    if test["kind"] == "ab":
        return None
    predicted = {}
    for i in test["spec"]["items"]:  # read from the database: any shape
        given = i.get("dnsmos") if isinstance(i.get("dnsmos"), dict) else {}
        predicted.update({(i["item"], label): float(v) for label, v in given.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)})
    _, by_rater = _scores([r for r in ratings if kept is None or r["rater"] in kept], sorted({k[1] for k in predicted}))
    per_clip: dict[tuple, list[float]] = {}
    for scores in by_rater.values():
        for clip, value in scores.items():
            per_clip.setdefault(clip, []).append(value)
    pairs = [(sum(v) / len(v), predicted[k], k[1]) for k, v in per_clip.items() if k in predicted]
    if not pairs:
        return None
    systems = {}
    for label in dict.fromkeys(p[2] for p in pairs):
        mine = [p for p in pairs if p[2] == label]
        systems[label] = {"clips": len(mine), "listeners": sum(p[0] for p in mine) / len(mine),
                          "dnsmos": sum(p[1] for p in mine) / len(mine)}
    return {"systems": systems, **correlation([p[0] for p in pairs], [p[1] for p in pairs])}


def figures(test: dict, ratings: list[dict]) -> dict:
    systems = [s["label"] for s in test["spec"]["systems"]]
    found = {"ab": ab_figures, "acr": acr_figures, "mushra": mushra_figures}[test["kind"]](ratings, systems)
    found["beside_dnsmos"] = beside_predictor(test, ratings, found.get("kept"))
    return found
