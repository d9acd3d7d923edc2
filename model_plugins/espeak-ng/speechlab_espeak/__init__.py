"""eSpeak NG (formant synthesis) for pytest-speechlab, registered as a third-party plugin would.

Model ``espeak-ng/en-us``. The library and its data come from the ``espeakng-loader`` wheel (no
system package needed); ``library = "system"`` uses the system's libespeak-ng instead. Synthesis goes
through the C API with ctypes (espeak_Initialize, espeak_SetSynthCallback, espeak_SetVoiceByName,
espeak_Synth, espeak_Synchronize). Parameters: ``voice`` (en-us), ``rate`` (words per minute, 175),
``pitch`` (0-100, 50). Not bit-exact: the same sentence comes out a few samples longer or shorter
from call to call (61401-61413 samples measured for one sentence), so it claims no determinism. The
library keeps one global state per process:
every espeak-ng model in a session shares it (the voice and rate are set before each synthesis).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Audio, hookimpl

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_PITCH = 1, 3
_LOCK = threading.Lock()
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class ESpeakTTS:
    deterministic = False

    def __init__(self, params: dict) -> None:
        params = dict(params)
        if params.pop("library", "bundled") == "system":
            name = ctypes.util.find_library("espeak-ng")
            if name is None:
                raise FileNotFoundError("no system libespeak-ng (apt-get install libespeak-ng1)")
            self.lib, data = ctypes.CDLL(name), None
        else:
            import espeakng_loader

            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.library = getattr(self.lib, "_name", "")
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}) with data at {data!r}")
        self.voice = str(params.pop("voice", "en-us"))
        self.rate, self.pitch = int(params.pop("rate", 175)), int(params.pop("pitch", 50))
        if params:
            raise ValueError(f"unknown espeak-ng parameter(s) {sorted(params)}; known: voice, rate, pitch, library")
        self._chunks: list = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the model
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def synthesize(self, text: str) -> Audio:
        import numpy as np

        data = text.encode("utf-8") + b"\0"
        with _LOCK:
            self.lib.espeak_SetSynthCallback(self._callback)
            if self.lib.espeak_SetVoiceByName(self.voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {self.voice!r}")
            self.lib.espeak_SetParameter(ESPEAK_RATE, self.rate, 0)
            self.lib.espeak_SetParameter(ESPEAK_PITCH, self.pitch, 0)
            self._chunks = []
            status = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            raw = b"".join(self._chunks)
        if status != 0:
            raise RuntimeError(f"espeak_Synth returned {status}")
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        return Audio(samples, self.sample_rate)

    def info(self) -> dict:
        return {"backend_version": f"espeakng-loader {version('espeakng-loader')} ({self.library})",
                "device": "cpu", "threads": 1, "weights_path": self.library,
                "decode": {"voice": self.voice, "rate": self.rate, "pitch": self.pitch},
                "sample_rate": self.sample_rate, "deterministic": False}


@hookimpl
def speechlab_register_models(register):
    register("espeak-ng/en-us", task="tts", load=ESpeakTTS, backend="espeak-ng",
             weights="libespeak-ng and its data from the espeakng-loader package",
             params={"voice": "en-us", "rate": 175, "pitch": 50},
             description="eSpeak NG formant synthesis, US English, 175 words per minute")
