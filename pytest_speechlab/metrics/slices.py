"""Error rates by slice: "is it worse for some speakers?"

A slice field is any manifest field (gender, age, accent, speaker; Common Voice's columns, lhotse's
speaker and custom fields, a Hugging Face dataset's columns), the utterance's language, or a derived
band: ``duration``, ``speaking_rate`` (reference words per second) or ``snr`` (a perturbed input's
measured SNR). Per slice: the utterances, the error rate with its interval and the hallucination
count with its Wilson interval. Per field: the largest gap between two slices large enough to judge,
with a bootstrap interval, and a permutation test of heterogeneity (slice labels shuffled over the
field's utterances, the gap recomputed: exact under "no slice differs"); the p-values are adjusted
over every field of the evaluation (Holm). A slice below the minimum is listed, never ranked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .results import ScoredGroup, UtteranceResult
from .stats import DEFAULT_RESAMPLES, DEFAULT_SEED, adjust, chunks, resampled_sums, wilson

MIN_SLICE = 10  # scored utterances a slice needs to be judged ([tool.speechlab.slices] min_size)
# derived fields: (name, unit, upper bounds of the bands)
BANDS = {"duration": ("s", (2.0, 5.0, 10.0, 30.0)), "speaking_rate": ("words/s", (2.0, 3.0, 4.0)),
         "snr": ("dB", (0.0, 10.0, 20.0, 30.0))}
DERIVED = ("language", *BANDS)


def _band(value: float | None, name: str) -> str | None:
    if value is None:
        return None
    unit, bounds = BANDS[name]
    low = None
    for high in bounds:
        if value < high:
            return f"< {high:g} {unit}" if low is None else f"{low:g}-{high:g} {unit}"
        low = high
    return f">= {bounds[-1]:g} {unit}"


def value_of(u: UtteranceResult, name: str) -> str | None:
    """The slice ``u`` falls in for field ``name`` (None: the utterance does not have that field)."""
    if name == "language":
        return u.language or u.utterance.language or None
    if name == "duration":
        return _band(u.audio_seconds or u.utterance.duration, name)
    if name == "speaking_rate":
        words = u.words.reference_length if u.words is not None and u.unit == "word" else None
        return _band(words / u.audio_seconds if words and u.audio_seconds else None, name)
    if name == "snr":
        return _band(u.snr_db, name)
    return dict(u.utterance.fields).get(name)


@dataclass
class Slice(ScoredGroup):
    field: str
    value: str
    utterances: list[UtteranceResult]
    minimum: int = MIN_SLICE

    @property
    def hallucinated(self) -> int:
        return sum(u.hallucinated for u in self.utterances if u.transcript is not None)

    @property
    def processed(self) -> int:
        return sum(u.transcript is not None for u in self.utterances)

    def summary(self) -> dict:
        return {"value": self.value, "utterances": len(self.utterances), "scored": len(self.scored),
                "error_rate": self.rate, "ci": list(self.ci) if self.ci else None,
                "hallucinated": self.hallucinated, "processed": self.processed,
                "hallucination_ci": list(wilson(self.hallucinated, self.processed) or ()) or None,
                "too_few": self.too_few, "ids": [u.utterance.id for u in self.utterances]}


@dataclass
class FieldSlices:
    """One field's slices, its largest gap and the heterogeneity test."""

    field: str
    slices: list[Slice]
    missing: int = 0  # utterances without the field
    gap: float | None = None  # worst judged slice's rate - best judged slice's
    gap_ci: tuple[float, float] | None = None
    p_value: float | None = None  # heterogeneity (permutation), None with fewer than two judged slices
    p_adjusted: float | None = None
    family: int = 1
    judged: list[Slice] = field(default_factory=list)

    @property
    def worst(self) -> Slice | None:
        return max(self.judged, key=lambda s: s.rate, default=None)

    @property
    def best(self) -> Slice | None:
        return min(self.judged, key=lambda s: s.rate, default=None)

    @property
    def unjudged(self) -> list[Slice]:
        return [s for s in self.slices if s.too_few]

    def differs(self, alpha: float) -> bool:
        """The slices differ: the family-adjusted heterogeneity p-value is below ``alpha``."""
        p = self.p_adjusted if self.p_adjusted is not None else self.p_value
        return p is not None and p < alpha

    def summary(self) -> dict:
        worst, best = self.worst, self.best
        return {"field": self.field, "slices": [s.summary() for s in self.slices], "missing": self.missing,
                "gap": self.gap, "gap_ci": list(self.gap_ci) if self.gap_ci else None,
                "worst": worst.value if worst else None, "best": best.value if best else None,
                "p_value": self.p_value, "p_adjusted": self.p_adjusted, "family": self.family,
                "too_few": [s.value for s in self.unjudged]}


def _gap_statistic(errors, lengths, labels, groups: int):
    """Per resample row: max - min of the groups' pooled error rates (labels: group of each utterance)."""
    import numpy as np

    e = np.zeros((labels.shape[0], groups))
    n = np.zeros((labels.shape[0], groups))
    rows = np.repeat(np.arange(labels.shape[0]), labels.shape[1])
    np.add.at(e, (rows, labels.ravel()), np.tile(errors, labels.shape[0]))
    np.add.at(n, (rows, labels.ravel()), np.tile(lengths, labels.shape[0]))
    rates = np.divide(e, n, out=np.zeros_like(e), where=n > 0)
    return rates.max(axis=1) - rates.min(axis=1)


def field_slices(utterances: list[UtteranceResult], name: str, minimum: int = MIN_SLICE,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> FieldSlices:
    """Slices of ``utterances`` by ``name``: the gap between the worst and best slices large enough
    to judge, its 95% bootstrap interval (utterances resampled within each slice), and the
    permutation p-value of "no slice differs" (the gap over shuffled slice labels, 2,000 times)."""
    import numpy as np

    groups: dict[str, list[UtteranceResult]] = {}
    missing = 0
    for u in utterances:
        value = value_of(u, name)
        if value is None:
            missing += 1
        else:
            groups.setdefault(value, []).append(u)
    slices = [Slice(name, value, members, minimum) for value, members in sorted(groups.items())]
    found = FieldSlices(name, slices, missing)
    found.judged = [s for s in slices if not s.too_few and s.rate is not None]
    if len(found.judged) < 2:
        return found
    scored = [(i, u) for i, s in enumerate(found.judged) for u in s.scored]
    errors = np.array([u.words.errors for _, u in scored], float)
    lengths = np.array([u.words.reference_length for _, u in scored], float)
    labels = np.array([i for i, _ in scored])
    k = len(found.judged)
    observed = float(_gap_statistic(errors, lengths, labels[None, :], k)[0])
    rng = np.random.default_rng(seed)
    as_large = sum(int((_gap_statistic(errors, lengths, np.array([rng.permutation(labels) for _ in range(rows)]), k)
                        >= observed - 1e-12).sum()) for rows in chunks(resamples, len(labels)))
    found.gap, found.p_value = observed, (1 + as_large) / (1 + resamples)
    # the worst minus the best slice, each resampled within itself
    worst, best = found.worst, found.best
    rates = []
    for s in (worst, best):
        e, n = resampled_sums(rng, [np.array([u.words.errors for u in s.scored], float),
                                    np.array([u.words.reference_length for u in s.scored], float)], resamples)
        rates.append(e / np.maximum(n, 1))
    low, high = np.percentile(rates[0] - rates[1], [2.5, 97.5])
    found.gap_ci = (float(low), float(high))
    return found


def slice_report(utterances: list[UtteranceResult], names: list[str], minimum: int = MIN_SLICE,
                 correction: str = "holm") -> list[FieldSlices]:
    """Every field's slices, the heterogeneity p-values adjusted over the fields tested (Holm)."""
    found = [field_slices(utterances, name, minimum) for name in names]
    tested = [f for f in found if f.p_value is not None]
    for f, p in zip(tested, adjust([f.p_value for f in tested], correction)):
        f.p_adjusted, f.family = p, len(tested)
    return found
