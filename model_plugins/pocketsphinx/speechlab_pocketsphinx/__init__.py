"""CMU PocketSphinx for pytest-speechlab: the en-us acoustic model, LM and dictionary in its wheel.

Any ``pocketsphinx.Decoder`` configuration key (``hmm``, ``lm``, ``dict``, ``beam``...) can be set
as a parameter in a ``[tool.speechlab.models.NAME]`` variant.
"""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from pytest_speechlab import Segment, Transcript, hookimpl, weights_digest

SAMPLE_RATE = 16000
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")
_ALTERNATE = re.compile(r"\(\d+\)$")


class PocketsphinxASR:
    sample_rate = SAMPLE_RATE

    def __init__(self, params: dict) -> None:
        from pocketsphinx import Decoder

        self.params = dict(params)
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **self.params)
        self.frame_rate = int(self.decoder.config["frate"])

    def transcribe(self, audio) -> Transcript:
        import numpy as np

        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        segments = tuple(
            Segment(
                start=s.start_frame / self.frame_rate,
                end=(s.end_frame + 1) / self.frame_rate,
                text=_ALTERNATE.sub("", s.word),
            )
            for s in d.seg()
            if not _FILLER.match(s.word)
        )
        return Transcript(text=hyp.hypstr if hyp else "", segments=segments, language="en")

    def info(self) -> dict:
        config = self.decoder.config
        files = [config["hmm"], config["lm"], config["dict"]]
        return {
            "backend_version": f"pocketsphinx {version('pocketsphinx')}",
            "device": "cpu",
            "threads": 1,
            "weights_path": str(Path(config["hmm"]).parent),
            "weights_sha256": weights_digest(*files),
            "decode": dict(self.params),
            "languages": ["en"],
        }


@hookimpl
def speechlab_register_models(register):
    register(
        "pocketsphinx", task="asr", load=PocketsphinxASR, backend="pocketsphinx",
        weights="package pocketsphinx (bundled en-us acoustic model, LM, dictionary)",
        description="CMU PocketSphinx 5, en-us, default decoder settings",
    )
