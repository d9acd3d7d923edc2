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


def test_faster_whisper_blockwise_features_equal_its_own():
    pytest.importorskip("faster_whisper", reason="the faster-whisper plugin's backend (installed by .ci/run)")
    from faster_whisper.feature_extractor import FeatureExtractor
    from speechlab_faster_whisper import blockwise

    x = signal(150.0)
    own = FeatureExtractor()
    ours = blockwise(own)
    assert np.abs(ours(x) - own(x)).max() < 1e-6 and ours(x).shape == own(x).shape
    assert np.array_equal(ours(x[: 16000 * 30]), own(x[: 16000 * 30]))  # a short clip is the original's code


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
