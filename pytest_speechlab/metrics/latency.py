"""The latency of a model behind a service, as its users feel it: per-request end-to-end time,
time to the first partial transcript and time from the end of the audio to the final transcript
(streaming), as p50/p95/p99 with distribution-free intervals (order statistics; none where there are
too few requests for one: p95 needs 59, p99 299) under the declared concurrency; throughput on
the wall clock, separately; the pacing ratio (seconds taken to send the audio / its length: 1.0 is
real time); and every fault, counted per request and never folded into a latency figure.

Timings come from the runner (``Output.latency`` and the timed call); one warm-up request per
model is excluded. Cached outputs keep the timing measured when they were computed, and are said.
"""
from __future__ import annotations

import re
from collections import Counter
from statistics import median
from typing import Any

from .stats import min_samples_for_quantile, percentile_ci

PERCENTILES = (50, 95, 99)
# what an error message says about its cause (the plugins name it: "HTTP 503", "timed out"...)
CAUSES = (
    ("timeout", re.compile(r"time[sd]? ?out|no result after", re.I)),
    ("http", re.compile(r"\bHTTP (\d{3})\b")),
    ("connection", re.compile(r"connect|refused|reset by peer|closed|unreachable|EOF", re.I)),
    ("malformed response", re.compile(r"malformed|not (valid )?JSON|UTF-8|too large|unexpected|content-type", re.I)),
)


def error_cause(message: str) -> str:
    for name, pattern in CAUSES:
        found = pattern.search(message)
        if found:
            return f"HTTP {found.group(1)}" if name == "http" else name
    return "other"


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    import numpy as np

    out: dict[str, Any] = {"n": len(values), "mean": float(np.mean(values)), "max": float(np.max(values))}
    for q in PERCENTILES:
        out[f"p{q}"] = float(np.percentile(values, q))
        ci = percentile_ci(values, q)
        out[f"p{q}_ci"] = list(ci) if ci else None
        if ci is None:  # too few values for a distribution-free interval: said, never a false one
            out[f"p{q}_ci_needs"] = min_samples_for_quantile(q / 100)
    return out


def is_request(u) -> bool:
    """Whether an utterance reached the model (a service: was a request): it was transcribed, or the
    model call failed (the runner's ``raised`` / ``no result after`` errors); skipped inputs and
    unreadable files never did."""
    return u.transcript is not None or (u.error is not None and (
        " raised " in u.error.message or ": no result after" in u.error.message))


def latency_summary(utterances: list, concurrency: int, wall_seconds: float | None,
                    throughput: float | None) -> dict:
    """The latency figures of one evaluation (see the module docstring), in the serialized form
    every sink reads. ``throughput``: the evaluation's audio seconds per wall-clock second (None
    when some outputs came from the cache: then no throughput is claimed)."""
    requests = [u for u in utterances if is_request(u)]
    done = [u for u in requests if u.transcript is not None]
    failed = [u for u in requests if u.transcript is None]
    pacing = [u.latency["sending_s"] / u.audio_seconds for u in done if "sending_s" in u.latency and u.audio_seconds]
    return {
        "concurrency": concurrency, "requests": len(requests), "succeeded": len(done), "failed": len(failed),
        "warmup_requests_excluded": 1 if requests else 0,
        "cached": sum(1 for u in done if u.cached),
        "end_to_end_s": _percentiles([u.processing_seconds for u in done]),
        "first_partial_s": _percentiles([u.latency["first_partial_s"] for u in done if "first_partial_s" in u.latency]),
        "after_audio_s": _percentiles([u.latency["after_audio_s"] for u in done if "after_audio_s" in u.latency]),
        "pacing_ratio": {"median": median(pacing), "min": min(pacing), "max": max(pacing)} if pacing else None,
        "throughput_requests_per_s": len(done) / wall_seconds if throughput and wall_seconds else None,
        "throughput_audio_s_per_s": throughput,
        "faults": dict(Counter(kind for u in requests for kind in u.latency.get("faults", ()))),
        "requests_with_faults": sum(1 for u in requests if u.latency.get("faults")),
        "errors_by_cause": dict(Counter(error_cause(u.error.message) for u in failed)),
        "error_rate": len(failed) / len(requests) if requests else None,
    }
