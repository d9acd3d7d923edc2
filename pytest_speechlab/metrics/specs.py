"""One declaration per judged metric: its threshold's name, how reports say it, which way is good,
its unit, the figure of a result it judges, the utterances it counts, and its default limit. Checks
(``_assertions``), grades, reports and the configuration read these instead of keeping their own
mappings; ``[tool.speechlab.thresholds]`` accepts exactly these names."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the threshold's name in [tool.speechlab.thresholds]
    label: str  # as a report or a failure message says it
    default: float
    direction: str = "max"  # "max": the figure must stay at or below the limit; "min": at or above
    unit: str = "fraction"  # fraction, seconds, ratio, words, score
    figure: str = ""  # the EvalResult attribute (and summary key) it judges; "" where another result holds it
    kind: str = ""  # the utterances a rate counts ("speech", "nonspeech")
    repeated: str = ""  # the figure each repeat is judged by (--speechlab-repeat), "" where not repeated
    min_samples: int | None = None  # the fewest samples a judged figure needs ([tool.speechlab.min_samples])
    about: str = ""

    def passes(self, value: float, limit: float) -> bool:
        return value <= limit if self.direction == "max" else value >= limit

    @property
    def worse(self) -> str:
        """The comparison a failing figure makes with its limit."""
        return ">" if self.direction == "max" else "<"


SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    # "wer" judges the headline: WER, CER for a language written without spaces, the macro average
    # over languages (and then every language's own figure too)
    MetricSpec("wer", "corpus WER", 0.20, figure="error_rate", repeated="error_rate", min_samples=10),
    MetricSpec("cer", "corpus CER", 0.10, figure="cer", min_samples=10),
    MetricSpec("rtf", "RTF", 1.0, unit="ratio", figure="speed_rtf", min_samples=3,
               about="processing seconds per audio second, load and one warm-up excluded"),
    MetricSpec("hallucination_rate", "hallucination rate on speech", 0.05, figure="speech_hallucination_rate",
               kind="speech", repeated="speech_hallucination_rate", min_samples=10,
               about="share of speech utterances with a hallucination finding"),
    MetricSpec("nonspeech_hallucination_rate", "hallucination rate on non-speech clips", 0.0,
               figure="nonspeech_hallucination_rate", kind="nonspeech", repeated="nonspeech_hallucination_rate",
               min_samples=10, about="share of non-speech clips with a hallucination finding"),
    # not 0: transformers pads the audio to 30 s before the log-mel, openai-whisper and faster-whisper
    # pad the log-mel itself, which flips near-tie tokens (2 of the 34 fixtures on tiny.en)
    MetricSpec("runtime_disagreement_rate", "runtime disagreement rate", 0.10,
               about="share of utterances whose greedy transcripts differ between runtimes of the same weights"),
    MetricSpec("batch_disagreement_rate", "batch disagreement rate", 0.10,
               about="share of utterances whose transcripts differ between batch N and batch 1"),
    # by slice (--speechlab-slice, [tool.speechlab.slices]): the worst slice large enough to judge, and
    # the largest gap between two, failed only where the heterogeneity test says the slices differ
    MetricSpec("slice_wer", "worst slice's error rate", 0.30,
               about="the highest error rate of a slice with at least [tool.speechlab.slices] min_size scored utterances"),
    MetricSpec("slice_gap", "largest gap between slices", 0.10,
               about="worst minus best slice's error rate; fails when above the limit and the slices differ "
                     "(permutation test, Holm over the fields)"),
    # a window dropped between two 30 s chunks loses some 60-80 words
    MetricSpec("longform_deleted_run", "longest run of deleted reference words", 30, unit="words"),
    MetricSpec("latency_p95_s", "95th percentile latency", 5.0, unit="seconds"),
    MetricSpec("latency_p99_s", "99th percentile latency", 10.0, unit="seconds"),
    MetricSpec("first_partial_p95_s", "95th percentile time to the first partial", 2.0, unit="seconds"),
    MetricSpec("after_audio_p95_s", "95th percentile time from the end of the audio to the final", 2.0, unit="seconds"),
    MetricSpec("service_error_rate", "share of requests that failed", 0.0),
    MetricSpec("service_fault_rate", "share of requests that needed a retry", 0.05),
    # absolute WER points (as a fraction) over the clean set, up to [tool.speechlab.robustness] gate_severity
    MetricSpec("werd", "WER degradation", 0.25, about="how far WER may rise over the clean set"),
    # without a reference speaker, the centroid of the voice's other clips: a voice that drifts fails
    MetricSpec("mos", "DNSMOS OVRL", 2.5, direction="min", unit="score", about="mean DNSMOS OVRL over the text set"),
    MetricSpec("human_mos", "listeners' mean opinion score (ACR)", 3.5, direction="min", unit="score", min_samples=20,
               about="mean of the ACR ratings (1-5) listeners gave the model's clips in listening tests"),
    MetricSpec("speaker_similarity", "speaker similarity", 0.75, direction="min", unit="score",
               about="mean cosine between each clip's speaker embedding and the reference speaker's"),
)}
