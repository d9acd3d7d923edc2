"""Comparing two evaluations of the same utterances: what `speechlab compare` prints and what
``--speechlab-fail-on-regression`` gates on."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._stats import GatePolicy, PairedComparison, is_regression, paired_compare


@dataclass
class Side:
    """One model x dataset evaluation, reduced to what a comparison needs."""

    label: str  # "run 1a2b3c tiny.en" or "this session"
    model: str
    dataset: str
    words: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (errors, reference words)
    chars: dict[str, tuple[int, int]] = field(default_factory=dict)
    hypotheses: dict[str, str] = field(default_factory=dict)
    processing_seconds: float = 0.0
    audio_seconds: float = 0.0
    cpu: str = ""

    @property
    def rtf(self) -> float | None:
        return self.processing_seconds / self.audio_seconds if self.audio_seconds else None

    @classmethod
    def from_rows(cls, label: str, model: str, dataset: str, rows: list[dict], cpu: str = "") -> Side:
        side = cls(label, model, dataset, cpu=cpu)
        for r in rows:
            if r.get("error"):
                continue
            uid = r["utterance_id"]
            side.hypotheses[uid] = r.get("hypothesis") or ""
            side.processing_seconds += r.get("processing_seconds") or 0.0
            side.audio_seconds += r.get("audio_seconds") or 0.0
            if r.get("hits") is not None:
                side.words[uid] = (r["substitutions"] + r["deletions"] + r["insertions"],
                                   r["hits"] + r["substitutions"] + r["deletions"])
            if r.get("char_length"):
                side.chars[uid] = (r["char_errors"], r["char_length"])
        return side

    @classmethod
    def from_result(cls, label: str, result) -> Side:
        from ._store import utterance_row

        return cls.from_rows(label, result.model, result.dataset,
                             [utterance_row(u) for u in result.utterances], result.environment.get("cpu", ""))


@dataclass
class Comparison:
    baseline: Side
    candidate: Side
    wer: PairedComparison | None
    cer: PairedComparison | None
    policy: GatePolicy

    @property
    def rtf_ratio(self) -> float | None:
        a, b = self.baseline.rtf, self.candidate.rtf
        return b / a if a and b is not None else None

    @property
    def regressions(self) -> list[str]:
        found = []
        for name, cmp in (("WER", self.wer), ("CER", self.cer)):
            if cmp is not None and is_regression(cmp, self.policy):
                found.append(f"{name} {cmp.rate_a:.4f} -> {cmp.rate_b:.4f} (+{cmp.delta:.4f}, "
                             f"95% CI [{cmp.ci[0]:+.4f}, {cmp.ci[1]:+.4f}], p = {cmp.p_value:.4f} < "
                             f"{self.policy.alpha}, effect >= {self.policy.min_effect})")
        ratio = self.rtf_ratio
        if ratio is not None and ratio > 1 + self.policy.rtf_tolerance:
            found.append(f"RTF {self.baseline.rtf:.3f} -> {self.candidate.rtf:.3f} (x{ratio:.2f} > "
                         f"x{1 + self.policy.rtf_tolerance:.2f}; machines: {self.baseline.cpu or '?'} -> "
                         f"{self.candidate.cpu or '?'})")
        return found

    def changed(self) -> list[str]:
        common = sorted(set(self.baseline.hypotheses) & set(self.candidate.hypotheses))
        return [k for k in common if self.baseline.hypotheses[k] != self.candidate.hypotheses[k]]

    def worse(self) -> list[str]:
        a, b = self.baseline.words, self.candidate.words
        return sorted((k for k in set(a) & set(b) if b[k][0] > a[k][0]), key=lambda k: (a[k][0] - b[k][0], k))

    def report(self, limit: int = 10) -> str:
        a, b = self.baseline, self.candidate
        lines = [f"{a.model} ({a.label}) -> {b.model} ({b.label}) on {b.dataset}"]
        for name, cmp in (("WER", self.wer), ("CER", self.cer)):
            if cmp is None:
                lines.append(f"  {name}: no scored utterances in common")
                continue
            verdict = "REGRESSION" if is_regression(cmp, self.policy) else (
                "better" if cmp.delta < 0 and cmp.ci[1] < 0 else "within noise")
            lines.append(
                f"  {name} {cmp.rate_a:.4f} -> {cmp.rate_b:.4f}  difference {cmp.delta:+.4f} "
                f"[95% CI {cmp.ci[0]:+.4f}, {cmp.ci[1]:+.4f}]  p(worse) = {cmp.p_value:.4f}  {verdict}"
            )
        if self.wer is not None:
            lines.append(f"  {self.wer.note}; utterances correct->wrong {len(self.wer.flipped_worse)}, "
                         f"wrong->correct {len(self.wer.flipped_better)} (exact test p = {self.wer.mcnemar_p:.4f})")
        ratio = self.rtf_ratio
        if ratio is not None:
            verdict = "REGRESSION" if ratio > 1 + self.policy.rtf_tolerance else "within tolerance"
            lines.append(f"  RTF {a.rtf:.3f} -> {b.rtf:.3f} (x{ratio:.2f}, tolerance x{1 + self.policy.rtf_tolerance:.2f}: "
                         f"{verdict}; machines: {a.cpu or '?'} -> {b.cpu or '?'})")
        worse = self.worse()
        if worse:
            lines.append(f"  got worse ({len(worse)}):")
            for k in worse[:limit]:
                lines.append(f"    {k}: errors {a.words[k][0]} -> {b.words[k][0]}: {a.hypotheses[k]!r} -> {b.hypotheses[k]!r}")
        changed = [k for k in self.changed() if k not in worse]
        if changed:
            lines.append(f"  other changed transcripts ({len(changed)}):")
            for k in changed[:limit]:
                lines.append(f"    {k}: {a.hypotheses[k]!r} -> {b.hypotheses[k]!r}")
        return "\n".join(lines)


def compare(baseline: Side, candidate: Side, policy: GatePolicy | None = None) -> Comparison:
    return Comparison(baseline, candidate, paired_compare(baseline.words, candidate.words),
                      paired_compare(baseline.chars, candidate.chars), policy or GatePolicy())


def pair_sides(run_a: dict, rows_a: dict, run_b: dict, rows_b: dict, model_a: str | None = None,
               model_b: str | None = None) -> list[tuple[Side, Side]]:
    """Pair evaluations of two stored runs: same model and dataset; or, with model_a/model_b (or
    one model per run), the two models on each dataset both runs have."""
    def sides(run, rows, model):
        label = f"run {run['id'][:8]}"
        return {(m, d): Side.from_rows(label, m, d, r, run.get("cpu") or "")
                for (m, d), r in rows.items() if model is None or m == model}

    sa, sb = sides(run_a, rows_a, model_a), sides(run_b, rows_b, model_b)
    same = sorted(set(sa) & set(sb))
    if same and not (model_a or model_b):
        return [(sa[k], sb[k]) for k in same]
    pairs = []
    for dataset in sorted({d for _, d in sa} & {d for _, d in sb}):
        left = [s for (m, d), s in sa.items() if d == dataset]
        right = [s for (m, d), s in sb.items() if d == dataset]
        if len(left) == 1 and len(right) == 1:
            pairs.append((left[0], right[0]))
    return pairs
