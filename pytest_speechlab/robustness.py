"""Robustness: a model's WER as a perturbation gets harsher, against its own clean WER.

Each perturbation kind is evaluated at four severities (its ladder in ``_perturb``), every one an
ordinary perturbed dataset. Per severity: the WER with its interval, WERD, the spread across
seeds, and the utterances with a hallucination finding. Per kind: NWERD against a reference model,
and the first severity where WERD passes the ``werd`` threshold: where the model breaks.

WERD and NWERD are Speech Robust Bench's (Shah et al., "Speech Robust Bench: A Robustness Benchmark
for Speech Recognition", arXiv:2403.07937; as computed in its released analysis,
result_analysis_utility.ipynb): WERD at severity s = max(WER_s - WER_clean, 0), negative
degradation clipped at 0; NWERD = the mean over the severities of WERD_s / WERD_ref_s, the
reference's WERD floored at 1e-4 WER points (1e-6 as a fraction) where it is 0. A severity at which
the reference barely degrades makes that ratio large: SRB's figure, kept as defined. Beside it,
``nwerd_sum_ratio`` is ImageNet-C's mCE normalization (WERD summed over the severities over the
reference's sum; not given when the reference's sum is under MIN_REFERENCE_WERD), and each
severity keeps the signed, paired difference with its sign-flip interval (``werd_signed``,
``werd_ci``), which the ``werd`` threshold judges.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .batching import word_errors_by_id
from .metrics.results import EvalResult
from .metrics.stats import PairedComparison, paired_compare

MIN_REFERENCE_WERD = 0.05  # the reference's WERD summed over the severities, below which the sum ratio is not given
SRB_WERD_FLOOR = 1e-6  # SRB adds 1e-4 (in WER points) to a reference WERD of 0


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass
class SeverityPoint:
    severity: int  # 1 (mild) .. 4 (harsh)
    label: str  # the chain, canonical (seed 0's)
    results: list[EvalResult]  # one per seed, seed 0 first
    werd: PairedComparison | None = None  # seed 0 against the clean set

    @property
    def wer(self) -> float | None:
        rates = [r.wer for r in self.results if r.wer is not None]
        return sum(rates) / len(rates) if rates else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return self.results[0].wer_ci

    @property
    def seed_spread(self) -> float | None:
        """Largest minus smallest WER across seeds (None with one seed)."""
        rates = [r.wer for r in self.results if r.wer is not None]
        return max(rates) - min(rates) if len(rates) > 1 else None

    @property
    def hallucinated(self) -> tuple[int, int]:
        return self.results[0].speech_counts

    @property
    def snr_heard(self) -> dict | None:
        """The SNR the model heard (measured per utterance, background kinds only): mean, min, max."""
        values = [u.snr_db for u in self.results[0].utterances if u.snr_db is not None]
        return {"mean": round(sum(values) / len(values), 2), "min": min(values), "max": max(values)} if values else None


@dataclass
class Curve:
    """One model's WER along one perturbation's ladder."""

    model: str
    dataset: str
    kind: str
    clean: EvalResult
    points: list[SeverityPoint] = field(default_factory=list)
    nwerd: float | None = None  # SRB's, filled in against the reference
    nwerd_sum_ratio: float | None = None  # ImageNet-C's ratio of sums
    reference: str | None = None

    @classmethod
    def of(cls, clean: EvalResult, kind: str, points: list[tuple[str, list[EvalResult]]]) -> Curve:
        curve = cls(clean.model, clean.dataset, kind, clean)
        for severity, (label, results) in enumerate(points, start=1):
            werd = paired_compare(word_errors_by_id(clean), word_errors_by_id(results[0]), detectable=False)
            curve.points.append(SeverityPoint(severity, label, results, werd))
        return curve

    @property
    def werds(self) -> list[float | None]:
        """Signed WER differences (perturbed - clean), paired, per severity."""
        return [p.werd.delta if p.werd else None for p in self.points]

    @property
    def srb_werds(self) -> list[float | None]:
        """Speech Robust Bench's WERD per severity: negative differences clipped at 0."""
        return [None if w is None else max(w, 0.0) for w in self.werds]

    def breaks_at(self, limit: float) -> SeverityPoint | None:
        """The first severity whose WERD passes ``limit``."""
        return next((p for p in self.points if p.werd and p.werd.delta > limit), None)

    def normalize(self, reference: Curve | None) -> None:
        """NWERD against ``reference``'s curve of the same kind (SRB's mean of per-severity
        ratios), and the ratio of sums (not given where the reference's summed WERD is under
        MIN_REFERENCE_WERD)."""
        if reference is None:
            return
        mine, theirs = self.srb_werds, reference.srb_werds
        if None in mine or None in theirs or not mine or len(mine) != len(theirs):
            return
        self.reference = reference.model
        self.nwerd = sum(m / (t or SRB_WERD_FLOOR) for m, t in zip(mine, theirs)) / len(mine)
        signed, ref_signed = self.werds, reference.werds
        self.nwerd_sum_ratio = sum(signed) / sum(ref_signed) if sum(ref_signed) >= MIN_REFERENCE_WERD else None

    def serialized(self) -> dict:
        return {"model": self.model, "dataset": self.dataset, "kind": self.kind, "clean_wer": self.clean.wer,
                "clean_ci": self.clean.wer_ci, "nwerd": self.nwerd, "nwerd_sum_ratio": self.nwerd_sum_ratio,
                "reference": self.reference,
                "points": [{"severity": p.severity, "label": p.label, "wer": p.wer, "ci": p.ci,
                            "werd": None if p.werd is None else max(p.werd.delta, 0.0),
                            "werd_signed": p.werd.delta if p.werd else None, "werd_ci": p.werd.ci if p.werd else None,
                            "seeds": len(p.results), "seed_spread": p.seed_spread, "snr_heard": p.snr_heard,
                            "hallucinated": list(p.hallucinated), "errors": len(p.results[0].errors)}
                           for p in self.points]}


@dataclass
class RobustnessEval:
    """A model's curves over one dataset."""

    model: str
    dataset: str
    clean: EvalResult
    curves: list[Curve]
    gate_severity: int = 2

    def problems(self, limit: float) -> list[str]:
        """Each perturbation whose WERD passes ``limit`` at a severity up to the gate severity, and
        each severity where utterances failed (a transform or the model) or nothing was compared."""
        out = []
        for curve in self.curves:
            for p in curve.points:  # a severity that could not be measured is not a pass
                failed = [e for r in p.results for e in r.errors]
                if failed or p.werd is None:
                    out.append(f"{curve.kind} severity {p.severity} ({p.label}): " + (
                        f"{len(failed)} utterance(s) failed, e.g. {failed[0]}" if failed else "no utterance could be compared"))
            point = curve.breaks_at(limit)
            if point is not None and point.severity <= self.gate_severity:
                out.append(f"{curve.kind}: WER {_fmt(point.wer)} at severity {point.severity} ({point.label}) is "
                           f"{point.werd.delta:+.3f} over clean {_fmt(self.clean.wer)} "
                           f"[{point.werd.ci[0]:+.3f}, {point.werd.ci[1]:+.3f}] > {limit:.3f} allowed up to severity "
                           f"{self.gate_severity}")
        return out
