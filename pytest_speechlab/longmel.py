"""Whisper's log-Mel spectrogram of a long recording in bounded memory, for backend plugins.

Whisper frames the signal with a centred STFT (the signal, then ``pad_end`` zeros, reflect-padded
by ``n_fft // 2`` on both sides), keeps every frame but the last, and normalizes the log-Mel by the
*whole input's* maximum (``max(x, x.max() - 8)``, then ``(x + 4) / 4``). Computed at once, the
complex STFT of an hour of 16 kHz audio takes gigabytes (faster-whisper: 2.5 GB in double
precision). Here the frames are computed ``block_frames`` at a time, each block's padded signal
built from indices (the padded recording is never held whole), into one float32 array
(80 x 100 frames per second: 115 MB per hour); the maximum is taken over that whole array
afterwards, so the result is Whisper's own, not a per-window approximation
(``tests/test_longform.py`` compares both backends' features with their whole-recording ones).

The backend passes ``log_mel(segment)``: the base-10 log-Mel of a segment framed without centring,
with its own STFT and filters (numpy for faster-whisper, torch for openai-whisper).
"""
from __future__ import annotations

from typing import Callable

LONG_S = 60.0  # recordings longer than this are framed in blocks (shorter ones: the backend's own code)


def padded_segment(signal, pad_end: int, half: int, start: int, stop: int):
    """Samples ``start:stop`` of ``reflect_pad(signal ++ zeros(pad_end), half)``, made from indices."""
    import numpy as np

    n = len(signal) + pad_end
    idx = np.arange(start - half, stop - half)
    idx = np.where(idx < 0, -idx, idx)
    idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
    out = np.zeros(len(idx), dtype=np.float32)
    inside = idx < len(signal)
    out[inside] = signal[idx[inside]]
    return out


def whisper_log_mel(signal, log_mel: Callable, n_mels: int, n_fft: int = 400, hop: int = 160, pad_end: int = 0,
                    block_frames: int = 3000):
    """The normalized log-Mel (n_mels x frames, float32) of ``signal`` as Whisper computes it whole,
    ``block_frames`` frames at a time (3000: 30 s)."""
    import numpy as np

    frames = (len(signal) + pad_end) // hop  # 1 + (padded - n_fft) // hop, less the dropped last frame
    out = np.empty((n_mels, frames), dtype=np.float32)
    for first in range(0, frames, block_frames):
        last = min(frames, first + block_frames)
        segment = padded_segment(signal, pad_end, n_fft // 2, first * hop, (last - 1) * hop + n_fft)
        out[:, first:last] = log_mel(segment)[:, : last - first]
    np.maximum(out, out.max() - 8.0, out=out)
    out += 4.0
    out /= 4.0
    return out
