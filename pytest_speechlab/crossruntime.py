"""Cross-runtime comparison: one set of weights on several runtimes, decoded the same way.

Models whose backends report the same ``source_weights_sha256`` (the file the weights came from,
before any conversion) are one model on different runtimes. Each is rebuilt as a derived variant
with the same greedy, float32, no-timestamp decoding, so that any difference in the transcripts comes
from the runtime (its kernels, its feature extraction), not from settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ._text import format_table, terminal
from .metrics.results import EvalResult

# The shared decode vocabulary (see the Whisper plugins): greedy, no sampling fallback, full precision.
COMPARABLE_DECODE = {"beam_size": 1, "temperature": 0.0, "without_timestamps": True, "dtype": "float32"}
SUFFIX = "[greedy]"


def comparable_name(model: str) -> str:
    return model + SUFFIX


@dataclass
class RuntimeComparison:
    """The same weights on several runtimes over one dataset. The first result is the reference."""

    weights: str
    dataset: str
    results: list[EvalResult]
    compared: int = 0  # utterances every runtime processed
    differing: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # id -> model -> text

    @classmethod
    def of(cls, weights: str, results: list[EvalResult]) -> RuntimeComparison:
        by_model = [{u.utterance.id: u for u in r.processed} for r in results]
        common = [i for i in by_model[0] if all(i in other for other in by_model[1:])]
        differing = []
        for utterance_id in common:
            normalized = {u[utterance_id].hypothesis_normalized for u in by_model}
            if len(normalized) > 1:
                differing.append((utterance_id, {r.model: u[utterance_id].hypothesis
                                                 for r, u in zip(results, by_model)}))
        return cls(weights, results[0].dataset, results, len(common), differing)

    @property
    def disagreement_rate(self) -> float:
        return len(self.differing) / self.compared if self.compared else 0.0

    def report(self) -> list[str]:
        header = ["runtime", "backend version", "WER", "CER", "RTF", "RTFx", "load s", "threads"]
        rows = [[r.model, str(r.model_info.get("backend_version", "-")),
                 *(("-" if v is None else f"{v:.3f}") for v in (r.wer, r.cer, r.rtf)),
                 "-" if r.rtfx is None else f"{r.rtfx:.1f}",
                 "-" if r.load_seconds is None else f"{r.load_seconds:.2f}",
                 str(r.environment.get("threads", "-"))] for r in self.results]
        lines = [f"cross-runtime: {self.dataset}, weights {self.weights[:19]}, decoding "
                 + ", ".join(f"{k}={v}" for k, v in COMPARABLE_DECODE.items())]
        lines += ["  " + line for line in format_table(header, rows, text_columns=2)]
        lines.append(f"  transcripts (normalized) identical on {self.compared - len(self.differing)}"
                     f"/{self.compared} utterances")
        for utterance_id, texts in self.differing:
            lines.append(f"  differs: {utterance_id}")
            lines.extend(f"    {model}: {text!r}" for model, text in texts.items())

        return [terminal(line, one_line=True) for line in lines]


def runtime_groups(loaded_models) -> dict[str, list]:
    """Selected models grouped by the weights they came from, one per backend, in selection order."""
    groups: dict[str, dict[str, object]] = {}
    for loaded in loaded_models:
        weights = loaded.info.get("source_weights_sha256")
        if weights:
            groups.setdefault(weights, {}).setdefault(loaded.spec.backend or loaded.name, loaded)
    return {weights: list(by_backend.values()) for weights, by_backend in groups.items() if len(by_backend) > 1}
