"""Batch equivalence: a model at batch size N against the same model at batch 1, on the same
utterances. Batched pipelines are reported to lose segments and switch languages; this says whether
that happens to a given model: the paired WER difference with its interval (the gate's sign-flip
test), every utterance whose normalized transcript differs, and the throughput of each."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._text import format_table
from .metrics.results import EvalResult
from .metrics.stats import PairedComparison, paired_compare


def batched_name(model: str, size: int) -> str:
    return f"{model}[batch{size}]"


def word_errors_by_id(result: EvalResult) -> dict[str, tuple[int, int]]:
    """utterance id -> (word errors, reference words): what paired_compare takes."""
    return {u.utterance.id: (u.words.errors, u.words.reference_length) for u in result.scored}


@dataclass
class BatchComparison:
    single: EvalResult
    batched: EvalResult
    size: int
    compared: int = 0
    differing: list[tuple[str, str, str]] = field(default_factory=list)  # id, batch-1 text, batch-N text
    wer: PairedComparison | None = None

    @classmethod
    def of(cls, single: EvalResult, batched: EvalResult, size: int) -> BatchComparison:
        one = {u.utterance.id: u for u in single.processed}
        many = {u.utterance.id: u for u in batched.processed}
        common = [i for i in one if i in many]
        differing = [(i, one[i].hypothesis, many[i].hypothesis) for i in common
                     if one[i].hypothesis_normalized != many[i].hypothesis_normalized]
        paired = paired_compare(word_errors_by_id(single), word_errors_by_id(batched), detectable=False)
        return cls(single, batched, size, len(common), differing, paired)

    @property
    def disagreement_rate(self) -> float:
        return len(self.differing) / self.compared if self.compared else 0.0

    @property
    def throughput_ratio(self) -> float | None:
        a, b = self.single.throughput, self.batched.throughput
        return b / a if a and b else None

    def report(self) -> list[str]:
        header = ["model", "batch", "WER", "RTF", "throughput (audio s / wall s)"]
        rows = [[r.model, str(n), *(("-" if v is None else f"{v:.3f}") for v in (r.wer, r.rtf)),
                 "-" if r.throughput is None else f"{r.throughput:.2f}"]
                for r, n in ((self.single, 1), (self.batched, self.size))]
        lines = [f"batch equivalence: {self.single.model} at batch {self.size} against batch 1 on {self.single.dataset}"]
        lines += ["  " + line for line in format_table(header, rows, text_columns=1)]
        if self.wer is not None:
            lines.append(f"  WER difference (batch {self.size} - batch 1): {self.wer.delta:+.4f} "
                         f"[{self.wer.ci[0]:+.4f}, {self.wer.ci[1]:+.4f}] (paired, {self.wer.n} utterances, "
                         f"one-sided p {self.wer.p_value:.3f})")
        ratio = self.throughput_ratio
        lines.append(f"  transcripts (normalized) identical on {self.compared - len(self.differing)}/{self.compared}"
                     + (f"; throughput ratio {ratio:.2f}x" if ratio else "; throughput not measured (cached outputs)"))
        for utterance_id, one, many in self.differing:
            lines.append(f"    {utterance_id}: batch 1 {one[:80]!r} / batch {self.size} {many[:80]!r}")
        return lines
