"""Whisper's log-Mel of a long recording computed in blocks (pytest_speechlab.longmel) is the
backends' own whole-recording log-Mel: the same frames, the same global-maximum normalization."""
from __future__ import annotations

import numpy as np
import pytest

from pytest_speechlab import longmel


def signal(seconds: float, rate: int = 16000) -> np.ndarray:
    """Noise under a slow envelope, quiet at the start: the maximum lies far from the first block."""
    rng = np.random.default_rng(7)
    n = int(seconds * rate)
    x = rng.standard_normal(n) * np.sin(np.linspace(0, 40, n)) ** 2 * 0.3
    x[: 5 * rate] *= 0.001
    return x.astype(np.float32)


@pytest.mark.parametrize("pad_end", [0, 160, 480000])
def test_a_padded_segment_is_that_slice_of_the_padded_signal(pad_end):
    x = signal(2.0)
    whole = np.pad(np.concatenate([x, np.zeros(pad_end, np.float32)]), 200, mode="reflect")
    for start, stop in [(0, 400), (0, 1000), (150, 20000), (len(whole) - 900, len(whole)), (31000, 32400)]:
        assert np.array_equal(longmel.padded_segment(x, pad_end, 200, start, stop), whole[start:stop])


def test_blocks_give_the_whole_recordings_features_with_a_plain_numpy_log_mel():
    x, filters = signal(95.0), np.random.default_rng(1).uniform(0, 1, (80, 201)).astype(np.float32)
    window = np.hanning(401)[:-1].astype(np.float32)

    def frames(padded):
        count = 1 + (len(padded) - 400) // 160
        return np.stack([padded[i * 160: i * 160 + 400] * window for i in range(count)], axis=1)

    def log_mel(segment):
        return np.log10(np.clip(filters @ (np.abs(np.fft.rfft(frames(segment), axis=0)) ** 2), 1e-10, None))

    whole = log_mel(np.pad(np.concatenate([x, np.zeros(160, np.float32)]), 200, mode="reflect"))[:, :-1]
    whole = (np.maximum(whole, whole.max() - 8.0) + 4.0) / 4.0
    blocks = longmel.whisper_log_mel(x, log_mel, 80, pad_end=160, block_frames=700)
    assert blocks.shape == whole.shape == (80, (len(x) + 160) // 160) and blocks.dtype == np.float32
    assert np.abs(blocks - whole).max() < 1e-5
    lazy = longmel.LazyLogMel(x, log_mel, 80, pad_end=160, block_frames=700)
    assert lazy.maximum == pytest.approx(float(log_mel(np.pad(np.concatenate([x, np.zeros(160, np.float32)]), 200,
                                                              mode="reflect"))[:, :-1].max()), abs=1e-5)
    assert np.abs(lazy[:, 777:2100] - whole[:, 777:2100]).max() < 1e-5  # 1,323 frames across two blocks


def test_faster_whisper_blockwise_features_equal_its_own():
    pytest.importorskip("faster_whisper", reason="the faster-whisper plugin's backend (installed by .ci/run)")
    from faster_whisper.feature_extractor import FeatureExtractor
    from speechlab_faster_whisper import blockwise

    x = signal(150.0)
    own = FeatureExtractor()
    whole, lazy = own(x), blockwise(own)(x)
    assert isinstance(lazy, longmel.LazyLogMel) and lazy.shape == whole.shape
    assert np.abs(np.asarray(lazy) - whole).max() < 1e-6
    # the slices faster-whisper takes: a window, a language-detection view, a window of that view
    window = lazy[:, 4500:7500]
    assert isinstance(window, np.ndarray) and np.abs(window - whole[:, 4500:7500]).max() < 1e-6
    view = lazy[..., 1234:]
    assert isinstance(view, longmel.LazyLogMel) and view.shape == (80, whole.shape[1] - 1234)
    assert np.abs(view[..., :3000] - whole[:, 1234:4234]).max() < 1e-6
    assert np.array_equal(blockwise(own)(x[: 16000 * 30]), own(x[: 16000 * 30]))  # a short clip: the original


def test_openai_whisper_blockwise_features_equal_its_own():
    torch = pytest.importorskip("torch", reason="the openai-whisper plugin's backend (installed by .ci/run)")
    pytest.importorskip("whisper", reason="the openai-whisper plugin's backend (installed by .ci/run)")
    import sys

    from speechlab_openai_whisper import blockwise_log_mel
    from whisper.audio import N_SAMPLES, log_mel_spectrogram

    blockwise_log_mel()
    ours = sys.modules["whisper.transcribe"].log_mel_spectrogram
    x = signal(150.0)
    assert ours.blockwise and torch.equal(ours(x, 80, padding=N_SAMPLES), log_mel_spectrogram(x, 80, padding=N_SAMPLES))
