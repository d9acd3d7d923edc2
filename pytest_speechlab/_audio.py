"""Reading audio from disk and turning it into what a model takes (mono float32 at its rate)."""
from __future__ import annotations

import os
import struct
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
    silences: tuple[tuple[float, float], ...] = ()  # (start, end) s of long silent stretches, when measured
    snr_db: float | None = None  # a perturbed input: the SNR the model hears (_perturb.heard)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[1]


MIN_SECONDS = 0.01  # shorter than one 10 ms frame: nothing a model can be judged on
MAX_PEAK = 2.0  # float samples are expected in [-1, 1]; beyond twice that the file is broken
DURATION_TOLERANCE_S = 0.5  # declared vs decoded length, or 5% of it, whichever is larger


def read_audio(path: str, offset: float | None = None, duration: float | None = None) -> RawAudio:
    """Read a file (or, with ``offset``, the segment from there for ``duration`` seconds, or to the
    end) with soundfile and check it. Raises AudioError with the problem stated: these are input
    problems, never charged to the model. Nothing beyond the samples is copied: a one-hour file is
    held once, as float32."""
    import numpy as np
    import soundfile as sf

    try:
        start = 0
        frames = -1
        if offset is not None:
            info = sf.info(path)
            start = int(round(offset * info.samplerate))
            if start >= info.frames:
                raise AudioError(f"offset {offset:g} s is at or past the end of the audio ({info.duration:.2f} s)")
            frames = -1 if duration is None else int(round(duration * info.samplerate))
        samples, rate = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=False)
    except AudioError:
        raise
    except FileNotFoundError:
        raise AudioError("audio file not found") from None
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"cannot decode audio ({type(exc).__name__}: {exc})") from None
    if samples.size == 0:
        raise AudioError("audio is empty (0 samples)")
    if not np.isfinite(samples.sum(dtype=np.float64)):  # NaN or inf anywhere makes the sum so, without a copy
        bad = int((~np.isfinite(samples)).sum())
        raise AudioError(f"audio contains {bad} NaN or infinite samples")
    if rate <= 0 or len(samples) / rate < MIN_SECONDS:
        raise AudioError(f"audio is too short ({len(samples)} sample(s) at {rate} Hz; at least "
                         f"{MIN_SECONDS * 1000:.0f} ms needed)")
    peak = max(float(samples.max()), -float(samples.min()))
    if peak > MAX_PEAK:
        raise AudioError(f"samples far outside [-1, 1] (peak {peak:.3g}): the file's scaling is broken")
    short = _wav_shortfall(path)
    if short:
        raise AudioError(short)
    return RawAudio(samples, int(rate))


SILENCE_DBFS = -50.0  # a 50 ms frame quieter than this (RMS) is silent
MIN_SILENCE_S = 2.0  # stretches at least this long are recorded


def silent_spans(audio: RawAudio, threshold_dbfs: float = SILENCE_DBFS,
                 min_seconds: float = MIN_SILENCE_S) -> tuple[tuple[float, float], ...]:
    """(start, end) in seconds of every stretch of at least ``min_seconds`` whose 50 ms frames are
    all below ``threshold_dbfs`` RMS; computed block by block (bounded extra memory)."""
    import numpy as np

    rate = audio.sample_rate
    frame = max(1, rate // 20)
    limit = 10 ** (threshold_dbfs / 20)
    samples = audio.samples
    quiet = []
    block = frame * 2000  # 100 s at a time
    for begin in range(0, len(samples) - frame + 1, block):
        chunk = samples[begin:begin + block]
        chunk = chunk[:len(chunk) // frame * frame]
        if chunk.ndim == 2:
            chunk = chunk.mean(axis=1)
        rms = np.sqrt(np.square(chunk, dtype=np.float64).reshape(-1, frame).mean(axis=1))
        quiet.append(rms < limit)
    if not quiet:
        return ()
    flags = np.concatenate(quiet)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    spans = []
    for first, last in zip(edges[::2], edges[1::2]):
        if (last - first) * frame / rate >= min_seconds:
            spans.append((round(float(first * frame / rate), 2), round(float(last * frame / rate), 2)))
    return tuple(spans)


def _wav_shortfall(path: str) -> str | None:
    """For a RIFF WAV file: whether its data chunk holds fewer bytes than its header declares
    (a truncated file, which decoders read silently as a shorter clip)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.path.getsize(path)
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"data":
                    available = size - fh.tell()
                    if length not in (0, 0xFFFFFFFF) and available < length:
                        return (f"truncated WAV file: its header declares {length:,} bytes of audio, "
                                f"the file holds {available:,}")
                    return None
                fh.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return None


def header_duration(path: str) -> float:
    """The duration a file's header gives (no decoding), 0.0 when it cannot be read: for ordering
    work by length, never for a figure."""
    import soundfile as sf

    try:
        return float(sf.info(path).duration)
    except Exception:  # noqa: BLE001 - the runner reports an unreadable file when it decodes it
        return 0.0


def duration_mismatch(declared: float | None, decoded: float) -> str | None:
    """The manifest's duration against the decoded length, beyond the tolerance."""
    if declared is None:
        return None
    if abs(declared - decoded) > max(DURATION_TOLERANCE_S, 0.05 * declared):
        return (f"decoded length {decoded:.2f} s differs from the declared duration {declared:.2f} s "
                "(wrong file, or wrong duration in the manifest)")
    return None


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
