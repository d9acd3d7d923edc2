"""Perceptual quality of synthesized speech, offline: DNSMOS / P.808 MOS and speaker similarity.

DNSMOS (Microsoft's non-intrusive MOS predictor, the ``speechmos`` wheel: its ONNX models ship
inside it) gives per clip OVRL, SIG, BAK and the P.808 MOS, each on 1-5. Its traps, measured here:
digital silence scores above noise (so a silent clip is reported, not scored), and the input must
be 16 kHz in [-1, 1]. Speaker similarity is the cosine between Resemblyzer's d-vector of a clip and
the centroid of a reference speaker's clips (the encoder ships inside the wheel); same-speaker pairs
measured 0.75-0.95 here, different speakers 0.55 on average (max 0.78).

Both libraries are optional (``pip install 'pytest-speechlab[quality]'``); their models are built
once per process, never downloaded.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib.util import find_spec

from .._audio import RawAudio, to_model_input
from .stats import bootstrap_ci

MOS_RATE = 16000
SILENT_RMS = 1e-4  # below this a clip is silence: DNSMOS scores silence above noise
MOS_FIELDS = ("ovrl", "sig", "bak", "p808")
# the thresholds (minimums) on these figures: threshold -> (figure, label)
QUALITY_MINIMUMS = {"mos": ("ovrl", "DNSMOS OVRL"), "speaker_similarity": ("speaker_similarity", "speaker similarity")}
_LOCK = threading.Lock()
_ENCODER = None


def missing_quality_library() -> str | None:
    """Why the quality figures cannot be measured here, or None. Imports them (only when a TTS
    model is about to be scored): an installed Resemblyzer can still fail to import."""
    absent = [name for name in ("speechmos", "onnxruntime", "librosa", "resemblyzer") if find_spec(name) is None]
    if absent:
        return f"{', '.join(absent)} not installed: pip install 'pytest-speechlab[quality]'"
    try:
        import resemblyzer  # noqa: F401
        import speechmos  # noqa: F401
    except ImportError as exc:  # webrtcvad 2.0.10 imports pkg_resources, gone from setuptools >= 81
        return (f"the quality libraries do not import ({type(exc).__name__}: {exc}); for webrtcvad: "
                "pip uninstall -y webrtcvad && pip install --force-reinstall webrtcvad-wheels")
    return None


def _mono16k(samples, rate: int):
    import numpy as np

    x = to_model_input(RawAudio(np.nan_to_num(np.asarray(samples, dtype=np.float32)), rate), MOS_RATE)
    return np.clip(x, -1.0, 1.0)  # resampling overshoots; DNSMOS refuses |x| > 1


def mos(samples, rate: int) -> dict | None:
    """{ovrl, sig, bak, p808} of one clip; None for silence (not scored: DNSMOS rates it above noise)."""
    import numpy as np

    x = _mono16k(samples, rate)
    if len(x) == 0 or float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < SILENT_RMS:
        return None
    from speechmos import dnsmos

    with _LOCK:  # speechmos keeps its ONNX sessions in a module global
        out = dnsmos.run(x, sr=MOS_RATE)
    return {"ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]),
            "p808": float(out["p808_mos"])}


def speaker_embedding(samples, rate: int):
    """Resemblyzer's unit-length d-vector of a clip (None when its voice-activity trim leaves nothing)."""
    global _ENCODER
    import numpy as np
    from resemblyzer import VoiceEncoder, preprocess_wav

    with _LOCK:
        if _ENCODER is None:
            _ENCODER = VoiceEncoder("cpu", verbose=False)
        wav = preprocess_wav(_mono16k(samples, rate), source_sr=MOS_RATE)
        if len(wav) < MOS_RATE // 4:
            return None
        return np.asarray(_ENCODER.embed_utterance(wav), dtype=np.float64)


def centroid(embeddings: list):
    import numpy as np

    kept = [e for e in embeddings if e is not None]
    if not kept:
        return None
    mean = np.mean(kept, axis=0)
    return mean / (np.linalg.norm(mean) or 1.0)


def similarity(embedding, reference) -> float | None:
    if embedding is None or reference is None:
        return None
    return float(embedding @ reference / ((embedding @ embedding) ** 0.5 * (reference @ reference) ** 0.5 or 1.0))


def mean_ci(values: list[float]) -> tuple[float, float] | None:
    """95% bootstrap interval of a mean over items."""
    return bootstrap_ci(values, [1] * len(values)) if values else None


@dataclass
class QualityResult:
    """Per-item MOS and speaker similarity of one TTS model on one text set."""

    mos: dict[str, dict] = field(default_factory=dict)  # item id -> {ovrl, sig, bak, p808}
    similarity: dict[str, float] = field(default_factory=dict)  # item id -> cosine to the reference speaker
    silent: list[str] = field(default_factory=list)  # items not scored (silence)
    failed: dict[str, str] = field(default_factory=dict)  # item id -> why a scorer failed on it
    reference: str | None = None  # the reference speaker's clips (where they came from)
    problem: str | None = None  # why nothing was measured

    def mean(self, name: str) -> float | None:
        values = self._values(name)
        return sum(values) / len(values) if values else None

    def ci(self, name: str) -> tuple[float, float] | None:
        return mean_ci(self._values(name))

    def _values(self, name: str) -> list[float]:
        if name == "speaker_similarity":
            return list(self.similarity.values())
        return [m[name] for m in self.mos.values()]

    def summary(self) -> dict:
        figures = {name: {"mean": self.mean(name), "ci": self.ci(name), "n": len(self._values(name))}
                   for name in (*MOS_FIELDS, "speaker_similarity")}
        return {"figures": figures, "silent": list(self.silent), "failed": dict(self.failed), "reference": self.reference,
                "problem": self.problem, "ovrl": {item: round(m["ovrl"], 4) for item, m in self.mos.items()}}
