"""Whisper's log-Mel spectrogram of a long recording in bounded memory, for backend plugins.

Whisper frames the signal with a centred STFT (the signal, then ``pad_end`` zeros, reflect-padded
by ``n_fft // 2`` on both sides), keeps every frame but the last, and normalizes the log-Mel by the
*whole input's* maximum (``max(x, x.max() - 8)``, then ``(x + 4) / 4``). Computed at once, the
complex STFT of an hour of 16 kHz audio takes gigabytes (faster-whisper: 2.5 GB in double
precision). Here frames are computed ``block_frames`` at a time, each block's padded signal built
from indices (the padded recording is never held whole):

- ``whisper_log_mel`` fills one float32 array (80 x 100 frames per second: 115 MB per hour) and
  normalizes it by its maximum afterwards (openai-whisper, whose transcribe wants a tensor);
- ``LazyLogMel`` takes the whole input's maximum in a first streaming pass, keeping nothing, then
  computes the frames a decoder asks for (a 30 s window at a time) when it asks (faster-whisper):
  no array of the whole recording at all.

Either way the result is Whisper's own normalization, not a per-window approximation
(``tests/test_longmel.py`` compares both backends' features with their whole-recording ones).

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


def _raw_frames(signal, log_mel: Callable, n_fft: int, hop: int, pad_end: int, first: int, last: int):
    """The un-normalized log-Mel of frames ``first:last``, framed from their own padded segment."""
    segment = padded_segment(signal, pad_end, n_fft // 2, first * hop, (last - 1) * hop + n_fft)
    return log_mel(segment)[:, : last - first]


def _normalized(signal, log_mel: Callable, n_mels: int, n_fft: int, hop: int, pad_end: int, block_frames: int,
                first: int, last: int, maximum: float | None):
    """Frames ``first:last`` computed ``block_frames`` at a time into one float32 array, normalized
    as Whisper does by ``maximum`` (the whole input's; None: this array's own, for the whole input)."""
    import numpy as np

    out = np.empty((n_mels, last - first), dtype=np.float32)
    for a in range(first, last, block_frames):
        b = min(last, a + block_frames)
        out[:, a - first: b - first] = _raw_frames(signal, log_mel, n_fft, hop, pad_end, a, b)
    np.maximum(out, (out.max() if maximum is None else maximum) - 8.0, out=out)
    out += 4.0
    out /= 4.0
    return out


def whisper_log_mel(signal, log_mel: Callable, n_mels: int, n_fft: int = 400, hop: int = 160, pad_end: int = 0,
                    block_frames: int = 3000):
    """The normalized log-Mel (n_mels x frames, float32) of ``signal`` as Whisper computes it whole,
    ``block_frames`` frames at a time (3000: 30 s)."""
    frames = (len(signal) + pad_end) // hop  # 1 + (padded - n_fft) // hop, less the dropped last frame
    return _normalized(signal, log_mel, n_mels, n_fft, hop, pad_end, block_frames, 0, frames, None)


class LazyLogMel:
    """The normalized log-Mel of ``signal`` (n_mels x frames) as an array-like that computes the
    frames of a slice when it is taken: ``x[:, a:b]`` or ``x[..., a:b]`` gives a float32 array for a
    range of up to ``block_frames * 2`` frames and another LazyLogMel (a view) for a longer one;
    ``np.asarray(x)`` computes the whole range. The whole input's maximum is found first, block by
    block, so that every window is normalized as Whisper normalizes the whole recording."""

    ndim = 2

    def __init__(self, signal, log_mel: Callable, n_mels: int, n_fft: int = 400, hop: int = 160, pad_end: int = 0,
                 block_frames: int = 3000) -> None:
        import numpy as np

        self.signal, self.log_mel, self.n_fft, self.hop, self.pad_end = signal, log_mel, n_fft, hop, pad_end
        self.block_frames, self.dtype = block_frames, np.dtype(np.float32)
        self.start, self.stop = 0, (len(signal) + pad_end) // hop
        self.shape = (n_mels, self.stop)
        self.maximum = max(float(_raw_frames(signal, log_mel, n_fft, hop, pad_end, first,
                                             min(self.stop, first + block_frames)).max())
                           for first in range(0, self.stop, block_frames))

    def _frames(self, first: int, last: int):
        """Normalized frames ``first:last`` of the whole input (absolute indices)."""
        return _normalized(self.signal, self.log_mel, self.shape[0], self.n_fft, self.hop, self.pad_end,
                           self.block_frames, first, last, self.maximum)

    def __getitem__(self, key):
        if not (isinstance(key, tuple) and len(key) == 2 and (key[0] is Ellipsis or key[0] == slice(None))
                and isinstance(key[1], slice)):
            return self.__array__()[key]
        first, last, step = key[1].indices(self.shape[1])
        if step != 1:
            return self.__array__()[key]
        last = max(first, last)
        if last - first <= 2 * self.block_frames:
            return self._frames(self.start + first, self.start + last)
        view = object.__new__(LazyLogMel)
        view.__dict__.update(self.__dict__)
        view.start, view.stop = self.start + first, self.start + last
        view.shape = (self.shape[0], last - first)
        return view

    def __array__(self, dtype=None, copy=None):
        out = self._frames(self.start, self.stop)
        return out if dtype is None else out.astype(dtype)
