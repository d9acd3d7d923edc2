"""Reading audio from disk and turning it into what a model takes (mono float32 at its rate)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class AudioError(Exception):
    """The audio file cannot be used; the message says why."""


@dataclass
class RawAudio:
    samples: np.ndarray  # (frames,) or (frames, channels), float32
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[1]


def read_audio(path: str) -> RawAudio:
    """Read a file with soundfile and check it. Raises AudioError with the problem stated."""
    import numpy as np
    import soundfile as sf

    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=False)
    except FileNotFoundError:
        raise AudioError("audio file not found") from None
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"cannot decode audio ({type(exc).__name__}: {exc})") from None
    if samples.size == 0:
        raise AudioError("audio is empty (0 samples)")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioError(f"audio contains {bad} NaN or infinite samples")
    return RawAudio(samples, int(rate))


def to_model_input(audio: RawAudio, target_rate: int) -> np.ndarray:
    """Downmix to mono and resample to ``target_rate`` (soxr, high quality)."""
    import numpy as np

    samples = audio.samples
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    if audio.sample_rate != target_rate:
        import soxr

        samples = soxr.resample(samples, audio.sample_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)
